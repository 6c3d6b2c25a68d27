"""The runtime image stays small: at most half of a plain single-stage image of the project."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid

import docker
import docker.errors

from tests.conftest import ROOT
from tests.image.conftest import mb, secret_args

MAX_RATIO = 0.5


def test_image_is_at_most_half_a_single_stage_build(
    docker_client: docker.DockerClient, courier_image: str, image_id: str
) -> None:
    tag = f"courier-single-stage:test-{uuid.uuid4().hex[:8]}"
    build_args = []
    if os.environ.get("BUILD_IMAGE"):
        build_args = ["--build-arg", f"BUILD_IMAGE={os.environ['BUILD_IMAGE']}"]
    started = time.monotonic()
    try:
        result = subprocess.run(
            [
                "docker",
                "buildx",
                "build",
                "--load",
                "--progress=plain",
                "-f",
                "tests/images/single-stage.Dockerfile",
                *build_args,
                *secret_args(),
                "-t",
                tag,
                ".",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        build_seconds = time.monotonic() - started
        assert result.returncode == 0, f"single-stage build failed:\n{result.stderr[-4000:]}"
        single = docker_client.images.get(tag)
        # The baseline really is the project, installed: courier runs from it.
        version = docker_client.containers.run(
            tag, ["python", "-m", "courier", "version"], remove=True
        )
        assert bytes(version).startswith(b"courier "), version
        ours = int(docker_client.images.get(image_id).attrs["Size"])
        theirs = int(single.attrs["Size"])
        ratio = ours / theirs
        print(
            f"\nimage size: {courier_image} {mb(ours):.1f} MB, single-stage {mb(theirs):.1f} MB "
            f"(built in {build_seconds:.0f}s), ratio {ratio:.2f} (limit {MAX_RATIO})"
        )
        assert ratio <= MAX_RATIO, (
            f"{courier_image} is {mb(ours):.1f} MB, {ratio:.2f} of the single-stage "
            f"{mb(theirs):.1f} MB (limit {MAX_RATIO})"
        )
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag)
