"""The release path against a real registry: one pair of no-cache two-platform releases, shared.

`published` runs `scripts/release --no-cache` twice for the same commit, into two repositories of
one Debian `docker-registry` on 127.0.0.1: the first is the release the tests read (tags, labels,
attestations, SBOM, a pulled image running a job, arm64 under QEMU), the second is the fresh
rebuild that must give bit-identical platform manifests. A third, amd64-only release is timed
beside them. Images are inspected with skopeo, never pulled, except where a test runs one.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.image.conftest import bake_env

VERSION = "1.2.3"
PLATFORMS = ("linux/amd64", "linux/arm64")
TOKEN = "release-test-token-0123456789abcdef"
OCI = "org.opencontainers.image."
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def dockerfile_arg(name: str) -> str:
    """The default of the Dockerfile's `ARG name=...`."""
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert match, f"no ARG {name}=... in docker/Dockerfile"
    return match.group(1)


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: install Debian's {package} package (.ci/run does)"
    return found


@dataclass(frozen=True)
class Registry:
    """A Debian docker-registry (Distribution 2.8) on 127.0.0.1, plain HTTP, no auth."""

    host: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen(
        [tool("docker-registry", "docker-registry"), "serve", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://{host}/v2/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, (folder / "registry.log").read_text()
            assert time.monotonic() < deadline, "docker-registry did not answer within 30s"
            time.sleep(0.2)
        yield Registry(host, process)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
        log.close()


@dataclass(frozen=True)
class Release:
    repository: str  # e.g. 127.0.0.1:5000/acme/courier
    printed: str  # the last line scripts/release printed: repository@sha256:...
    seconds: float
    output: str

    @property
    def digest(self) -> str:
        return self.printed.rpartition("@")[2]

    def ref(self, tag: str = VERSION) -> str:
        return f"{self.repository}:{tag}"


def run_release(host: str, namespace: str, **env: str) -> Release:
    environment = bake_env(REGISTRY=f"{host}/{namespace}", VERSION=VERSION, **env)
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "release"), "--no-cache", "--progress=plain"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"scripts/release failed:\n{result.stderr[-6000:]}"
    lines = result.stdout.strip().splitlines()
    assert lines, f"scripts/release printed nothing on stdout:\n{result.stderr[-3000:]}"
    return Release(f"{host}/{namespace}/courier", lines[-1], seconds, result.stderr)


@dataclass(frozen=True)
class Published:
    release: Release  # REGISTRY=.../acme: what the tests read
    rebuild: Release  # the same commit again, --no-cache, into .../rebuild
    amd64_only: Release  # PLATFORMS=linux/amd64, for the timing


@pytest.fixture(scope="session")
def published(registry: Registry) -> Published:
    release = run_release(registry.host, "acme")
    rebuild = run_release(registry.host, "rebuild")
    amd64_only = run_release(registry.host, "amd64only", PLATFORMS="linux/amd64")
    print(
        f"\nno-cache releases: two platforms {release.seconds:.0f}s and {rebuild.seconds:.0f}s, "
        f"amd64 only {amd64_only.seconds:.0f}s "
        f"(ratio {release.seconds / amd64_only.seconds:.2f})"
    )
    return Published(release, rebuild, amd64_only)


def skopeo(*args: str) -> str:
    result = subprocess.run(
        [tool("skopeo", "skopeo"), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def raw_manifest(ref: str) -> dict[str, Any]:
    """The manifest (an index for a release) that `ref` names, straight from the registry."""
    document: dict[str, Any] = json.loads(
        skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")
    )
    return document


def image_config(ref: str, platform: str) -> dict[str, Any]:
    """One platform's image configuration (labels included), read without pulling."""
    os_name, arch = platform.split("/")
    config: dict[str, Any] = json.loads(
        skopeo(
            "inspect",
            "--tls-verify=false",
            "--override-os",
            os_name,
            "--override-arch",
            arch,
            "--config",
            f"docker://{ref}",
        )
    )
    return config


def platform_digests(index: dict[str, Any]) -> dict[str, str]:
    """platform -> manifest digest, attestation manifests left out."""
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m.get("platform", {}).get("os") != "unknown"
    }


def imagetools(ref: str, template: str) -> Any:
    result = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", ref, "--format", template],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"imagetools inspect {ref} failed: {result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture
def pulled(docker_client: Any) -> Iterator[list[str]]:
    """References a test pulled; removed from the engine afterwards."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        with contextlib.suppress(Exception):
            docker_client.images.remove(ref, force=True)
