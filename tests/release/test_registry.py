"""What `REGISTRY=... VERSION=1.2.3 scripts/release` pushed, read from the registry without pulling:
an index of both platforms with their attestations, the labels operators read, one index under
every tag, an SBOM per platform, provenance, and bit-identical manifests from a fresh rebuild."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime

import pytest

from tests.conftest import ROOT, commit_epoch
from tests.image.conftest import head_commit, project_version
from tests.release.conftest import (
    OCI,
    PLATFORMS,
    VERSION,
    Published,
    Release,
    dockerfile_arg,
    image_config,
    imagetools,
    platform_digests,
    raw_manifest,
    skopeo,
)

EXPECTED_TAGS = ("1.2.3", "1.2", "latest")


def release_source(release: Release) -> str:
    """The source label scripts/release derived: the `origin` remote's web address (through
    scripts/lib/source-url.sh, tested on its own), else, as in a clone without that remote, the
    Dockerfile's default. The script names it in its log too."""
    derived = subprocess.run(
        ["bash", "-c", "source scripts/lib/source-url.sh && source_url origin"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if derived.returncode == 0:
        expected = logged_as = derived.stdout.strip()
    else:
        expected, logged_as = dockerfile_arg("SOURCE"), "the Dockerfile default"
    print(f"\nsource label expected: {expected} (scripts/release: {logged_as})")
    assert expected.startswith("https://")
    assert f", source {logged_as})" in release.output, release.output[-2000:]
    return expected


def test_index_holds_both_platforms_and_their_attestations(published: Published) -> None:
    index = raw_manifest(published.release.ref())
    print(f"\nindex {published.release.digest}:")
    for entry in index["manifests"]:
        kind = entry.get("annotations", {}).get("vnd.docker.reference.type", "image")
        print(f"  {entry['digest']} {entry.get('platform')} {kind}")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    images = platform_digests(index)
    assert set(images) == set(PLATFORMS)
    attestations = {
        entry["annotations"]["vnd.docker.reference.digest"]
        for entry in index["manifests"]
        if entry.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"
    }
    assert attestations == set(images.values()), "an attestation manifest per platform"


def test_printed_digest_is_the_index_under_every_tag(published: Published) -> None:
    release = published.release
    commit = head_commit()
    tags = [*EXPECTED_TAGS, f"sha-{commit}"]
    digests = {}
    for tag in tags:
        raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{release.ref(tag)}")
        digests[tag] = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    print(f"\nprinted {release.printed}; tags {digests}")
    assert release.printed.startswith(f"{release.repository}@sha256:")
    assert set(digests.values()) == {release.digest}
    listed = skopeo("list-tags", "--tls-verify=false", f"docker://{release.repository}")
    for tag in tags:
        assert f'"{tag}"' in listed


@pytest.mark.parametrize("platform", PLATFORMS)
def test_labels_of_each_platform_name_the_commit_and_version(
    published: Published, platform: str
) -> None:
    config = image_config(published.release.ref(), platform)
    labels = config["config"]["Labels"]
    commit = head_commit()
    created = datetime.fromtimestamp(commit_epoch(commit), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"\n{platform} labels: {labels}")
    assert config["architecture"] == platform.split("/")[1]
    assert labels[OCI + "revision"] == commit
    assert labels[OCI + "version"] == VERSION
    assert labels[OCI + "created"] == created
    assert config["created"].startswith(created.rstrip("Z")), config["created"]
    assert labels[OCI + "source"] == release_source(published.release)
    assert labels[OCI + "base.name"]
    assert all(value.strip() for value in labels.values()), labels


def test_a_fresh_no_cache_rebuild_gives_bit_identical_platform_manifests(
    published: Published,
) -> None:
    first = platform_digests(raw_manifest(published.release.ref()))
    second = platform_digests(raw_manifest(published.rebuild.ref()))
    print("\nplatform manifests of two --no-cache releases of one commit:")
    for platform in PLATFORMS:
        print(f"  {platform}: {first[platform]}  {second[platform]}")
    assert first == second
    # The indexes differ only by their attestations (provenance records the build's times).
    amd64_only = platform_digests(raw_manifest(published.amd64_only.ref()))
    assert amd64_only == {"linux/amd64": first["linux/amd64"]}


def test_sbom_of_each_platform_lists_the_python_and_debian_packages(
    published: Published,
) -> None:
    sboms = imagetools(published.release.ref(), "{{ json .SBOM }}")
    assert set(sboms) == set(PLATFORMS)
    for platform in PLATFORMS:
        document = sboms[platform]["SPDX"]
        assert document["spdxVersion"] == "SPDX-2.3"
        packages = {p["name"]: p for p in document["packages"]}
        # The purl among a package's references (syft, BuildKit's default, lists CPEs first).
        purls = {
            name: ref["referenceLocator"]
            for name, package in packages.items()
            for ref in package.get("externalRefs", [])
            if ref.get("referenceType") == "purl"
        }
        print(f"\n{platform}: {len(packages)} packages, e.g. {purls.get('falcon')}")
        for name in ("celery", "falcon", "gunicorn", "redis", "structlog", "courier"):
            assert name in packages, f"{name} not in the {platform} SBOM"
            version = packages[name]["versionInfo"]
            assert purls[name] == f"pkg:pypi/{name}@{version}"
        assert packages["courier"]["versionInfo"] == project_version()
        arch = platform.split("/")[1]
        assert "python3.13-minimal" in packages, "the base's Debian packages are missing"
        assert f"arch={arch}" in purls["libc6"], purls["libc6"]


def test_provenance_is_mode_max_for_each_platform(published: Published) -> None:
    provenance = imagetools(published.release.ref(), "{{ json .Provenance }}")
    assert set(provenance) == set(PLATFORMS)
    for platform in PLATFORMS:
        slsa = provenance[platform]["SLSA"]
        # mode=max records the build's definition (the LLB) and its steps; min does not.
        assert slsa["buildConfig"]["llbDefinition"], f"{platform}: no build definition"
        args = slsa["invocation"]["parameters"]["args"]
        assert args["build-arg:VERSION"] == VERSION
        assert args["build-arg:GIT_SHA"] == head_commit()


def test_release_needs_a_registry_and_a_semver_version() -> None:
    for env, message in (
        ({"VERSION": "1.2.3"}, "REGISTRY is not set"),
        ({"REGISTRY": "127.0.0.1:9/acme", "VERSION": "v1.2"}, "VERSION must be a SemVer"),
    ):
        result = subprocess.run(
            [str(ROOT / "scripts" / "release")],
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 64, (result.returncode, result.stderr)
        assert message in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
