"""Labels, tags and version of the image, and the bake definition that sets them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import docker

from tests.conftest import ROOT
from tests.image.conftest import bake_env, bake_print, head_commit, project_version

OCI = "org.opencontainers.image."
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_labels_name_head_commit_and_version(image_attrs: dict[str, Any], head: str) -> None:
    labels = image_attrs["Config"]["Labels"]
    print(f"\nimage labels: {labels}")
    assert labels[OCI + "revision"] == head
    assert labels[OCI + "version"] == project_version()
    assert RFC3339_UTC.match(labels[OCI + "created"]), labels[OCI + "created"]
    created = datetime.strptime(labels[OCI + "created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    age = (datetime.now(UTC) - created).total_seconds()
    # Built by this session (scripts/build stamps the current time), not a stale image.
    assert -120 < age < 6 * 3600, f"created label is {age:.0f}s old"
    assert labels[OCI + "source"].startswith("https://")
    assert labels[OCI + "title"] == "courier"
    assert labels[OCI + "description"].strip()
    assert labels[OCI + "licenses"] == "MIT"
    assert labels[OCI + "base.name"]


def test_tags_include_version_and_short_commit(
    docker_client: docker.DockerClient, courier_image: str, image_attrs: dict[str, Any], head: str
) -> None:
    commit = head
    assert courier_image == f"courier:sha-{commit[:7]}"
    assert f"courier:sha-{commit[:7]}" in image_attrs["RepoTags"]
    # Another build may have moved the version tag since (the build date differs), so compare
    # what the tag says it is rather than image ids.
    by_version = docker_client.images.get(f"courier:{project_version()}").attrs
    assert by_version["Config"]["Labels"][OCI + "version"] == project_version()
    assert by_version["Config"]["Labels"][OCI + "revision"] == commit


def test_version_command_names_the_same_commit(
    docker_client: docker.DockerClient, image_id: str, image_attrs: dict[str, Any], head: str
) -> None:
    labels = image_attrs["Config"]["Labels"]
    output = bytes(
        docker_client.containers.run(image_id, ["version"], remove=True, stderr=True)
    ).decode()
    print(f"\n`docker run IMAGE version`: {output.strip()}")
    assert output.strip() == (
        f"courier {project_version()} (commit {head}, built {labels[OCI + 'created']})"
    )


def test_bake_print_uses_git_sha_and_version_from_the_environment() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = bake_env(GIT_SHA=sha, VERSION="9.8.7+build.5", BUILD_DATE="2030-01-02T03:04:05Z")
    image = bake_print(env)["target"]["image"]
    labels = image["labels"]
    assert labels[OCI + "revision"] == sha
    assert labels[OCI + "version"] == "9.8.7+build.5"
    assert labels[OCI + "created"] == "2030-01-02T03:04:05Z"
    assert image["args"]["GIT_SHA"] == sha
    assert image["args"]["VERSION"] == "9.8.7+build.5"
    assert image["args"]["BUILD_DATE"] == "2030-01-02T03:04:05Z"
    # "+" is not allowed in a tag.
    assert set(image["tags"]) == {"courier:9.8.7-build.5", "courier:sha-0123456", "courier:latest"}


def test_bake_print_without_git_sha_says_unknown() -> None:
    image = bake_print(bake_env())["target"]["image"]
    assert image["labels"][OCI + "revision"] == "unknown"
    assert RFC3339_UTC.match(image["labels"][OCI + "created"])
    assert not any(":sha-" in tag for tag in image["tags"]), image["tags"]


def test_build_script_stamps_head_and_pyproject_version() -> None:
    commit = head_commit()
    image = bake_print(bake_env(), command=[str(ROOT / "scripts" / "build")])["target"]["image"]
    labels = image["labels"]
    assert labels[OCI + "revision"] == commit
    assert labels[OCI + "version"] == project_version()
    assert RFC3339_UTC.match(labels[OCI + "created"])
    assert f"courier:{project_version()}" in image["tags"]
    assert f"courier:sha-{commit[:7]}" in image["tags"]


def test_bake_passes_ca_bundle_as_a_secret_not_an_argument() -> None:
    bundle = str(ROOT / "pyproject.toml")  # any existing file: --print does not read it
    image = bake_print(bake_env(CA_BUNDLE=bundle))["target"]["image"]
    assert image["secret"] == [f"id=ca_bundle,src={bundle}"]
    assert bundle not in str(image["args"])
    assert bundle not in str(image["labels"])
    # The Dockerfile reads the bundle only as a mounted secret, never as a build argument.
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "--mount=type=secret,id=ca_bundle" in dockerfile
    assert not re.search(r"^\s*ARG\s+(CA_BUNDLE|PIP_CERT|REQUESTS_CA_BUNDLE)", dockerfile, re.M)
