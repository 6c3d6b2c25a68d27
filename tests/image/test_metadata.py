"""Labels, tags and version of the image, and the bake definition that sets them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import docker

from tests.conftest import ROOT, commit_epoch
from tests.image.conftest import (
    bake_env,
    bake_print,
    bare_bake_env,
    head_commit,
    project_version,
)

OCI = "org.opencontainers.image."
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def commit_time(commit: str) -> str:
    """The commit's time as RFC 3339 UTC, what scripts/build stamps (never the wall clock)."""
    return datetime.fromtimestamp(commit_epoch(commit), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_labels_name_head_commit_and_version(image_attrs: dict[str, Any], head: str) -> None:
    labels = image_attrs["Config"]["Labels"]
    print(f"\nimage labels: {labels}")
    assert labels[OCI + "revision"] == head
    assert labels[OCI + "version"] == project_version()
    # The commit's time, in the label and in the image configuration alike.
    assert labels[OCI + "created"] == commit_time(head)
    assert image_attrs["Created"].startswith(commit_time(head).rstrip("Z")), image_attrs["Created"]
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


def test_bake_print_uses_git_sha_version_and_commit_time_from_the_environment() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = bake_env(GIT_SHA=sha, VERSION="9.8.7+build.5", SOURCE_DATE_EPOCH="1893553445")
    image = bake_print(env)["target"]["image"]
    assert image["args"]["GIT_SHA"] == sha
    assert image["args"]["VERSION"] == "9.8.7+build.5"
    assert image["args"]["SOURCE_DATE_EPOCH"] == "1893553445"
    assert image["args"]["BUILD_DATE"] == "2030-01-02T03:04:05Z"
    # "+" is not allowed in a tag.
    assert set(image["tags"]) == {"courier:9.8.7-build.5", "courier:sha-0123456", "courier:latest"}
    # The labels are the Dockerfile's, filled from these arguments; bake sets none over them.
    assert "labels" not in image


def test_bake_print_without_anything_leaves_the_defaults_to_the_dockerfile() -> None:
    bare = bare_bake_env()
    image = bake_print(bare)["target"]["image"]
    args = image["args"]
    assert args["GIT_SHA"] == "unknown"
    assert RFC3339_UTC.match(args["BUILD_DATE"])  # now: nothing says when the commit was
    # default = null: the Dockerfile's ARG is the one default of each.
    for name in ("VERSION", "BUILD_IMAGE", "RUNTIME_IMAGE", "SOURCE", "SOURCE_DATE_EPOCH"):
        assert name not in args, args
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for name in ("VERSION", "BUILD_IMAGE", "RUNTIME_IMAGE", "SOURCE"):
        assert len(re.findall(rf"^ARG {name}=", dockerfile, re.M)) == 1, name
    assert image["tags"] == ["courier:latest"]


def test_build_script_stamps_head_pyproject_version_and_commit_time() -> None:
    commit = head_commit()
    image = bake_print(bake_env(), command=[str(ROOT / "scripts" / "build")])["target"]["image"]
    args = image["args"]
    assert args["GIT_SHA"] == commit
    assert args["VERSION"] == project_version()
    assert args["BUILD_DATE"] == commit_time(commit)
    assert f"courier:{project_version()}" in image["tags"]
    assert f"courier:sha-{commit[:7]}" in image["tags"]


def test_bake_passes_ca_bundle_as_a_secret_not_an_argument() -> None:
    bundle = str(ROOT / "pyproject.toml")  # any existing file: --print does not read it
    image = bake_print(bake_env(CA_BUNDLE=bundle))["target"]["image"]
    assert image["secret"] == [f"id=ca_bundle,src={bundle}"]
    assert bundle not in str(image["args"])
    # The Dockerfile reads the bundle only as a mounted secret, never as a build argument.
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "--mount=type=secret,id=ca_bundle" in dockerfile
    assert not re.search(r"^\s*ARG\s+(CA_BUNDLE|PIP_CERT|REQUESTS_CA_BUNDLE)", dockerfile, re.M)


def test_bake_passes_package_indexes_as_secrets_not_arguments() -> None:
    index = "https://user:s3cret@pypi.example.invalid/simple"
    extra = "https://mirror.example.invalid/simple"
    image = bake_print(bake_env(PIP_INDEX_URL=index, PIP_EXTRA_INDEX_URL=extra))["target"]["image"]
    assert [s for s in image["secret"] if not s.startswith("id=ca_bundle,")] == [
        "id=pip_index_url,env=PIP_INDEX_URL",
        "id=pip_extra_index_url,env=PIP_EXTRA_INDEX_URL",
    ]
    assert index not in json.dumps(image)
    assert extra not in json.dumps(image)
