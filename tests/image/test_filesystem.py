"""The runtime file system: user 65532, no shell, no package manager, no pip, no Poetry, and no
`courier.testing` (the tests' testcontainers module, which the build drops)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from tests.image.conftest import RunContainer

PYTHON = "/opt/venv/bin/python"
SITE_PACKAGES = "/opt/venv/lib/python3.13/site-packages"
ABSENT = (
    "/bin/sh",
    "/usr/bin/sh",
    "/bin/bash",
    "/usr/bin/bash",
    "/bin/dash",
    "/usr/bin/dash",
    "/bin/busybox",
    "/usr/bin/apt",
    "/usr/bin/apt-get",
    "/usr/bin/dpkg",
    "/var/lib/dpkg/status",
    "/usr/bin/pip",
    "/usr/bin/pip3",
    "/usr/local/bin/pip",
    "/opt/venv/bin/pip",
    "/opt/venv/bin/pip3",
    "/opt/venv/bin/poetry",
    "/usr/local/bin/poetry",
    "/opt/tools",
    f"{SITE_PACKAGES}/pip",
    f"{SITE_PACKAGES}/poetry",
    f"{SITE_PACKAGES}/courier/testing",
    "/root/.cache",
)
# Positive controls: the checks below find what is there.
PRESENT = (PYTHON, "/usr/bin/python3.13", f"{SITE_PACKAGES}/courier/__init__.py")

REPORT_SCRIPT = """
import importlib.util, json, os, shutil, sys
site = sys.argv[1]
print(json.dumps({
    "uid": os.getuid(),
    "gid": os.getgid(),
    "euid": os.geteuid(),
    "exists": {p: os.path.lexists(p) for p in sys.argv[2:]},
    "which": {n: shutil.which(n) for n in ("sh", "bash", "dash", "busybox", "apt-get", "apt",
                                          "dpkg", "pip", "pip3", "poetry", "courier")},
    "importable": {m: importlib.util.find_spec(m) is not None
                   for m in ("pip", "poetry", "courier", "celery", "courier.testing",
                             "testcontainers")},
    "site_packages": sorted(os.listdir(site)),
}))
"""


@pytest.fixture(scope="module")
def stopped_container(docker_client: docker.DockerClient, image_id: str) -> Iterator[Any]:
    """A created, never-started container: its file system can be read without a shell."""
    container = docker_client.containers.create(image_id)
    yield container
    container.remove(force=True)


@pytest.fixture(scope="module")
def report(docker_client: docker.DockerClient, image_id: str) -> dict[str, Any]:
    """What the image's own Python sees, running as the image's user."""
    output = docker_client.containers.run(
        image_id,
        ["-c", REPORT_SCRIPT, SITE_PACKAGES, *ABSENT, *PRESENT],
        entrypoint=[PYTHON],
        remove=True,
        stderr=False,
    )
    result: dict[str, Any] = json.loads(bytes(output))
    print(f"\nruntime report: uid {result['uid']}, site-packages {result['site_packages']}")
    return result


def test_configured_user_is_65532(image_attrs: dict[str, Any]) -> None:
    assert image_attrs["Config"]["User"] in ("65532", "65532:65532")


def test_processes_run_as_65532(report: dict[str, Any]) -> None:
    assert (report["uid"], report["euid"], report["gid"]) == (65532, 65532, 65532)


@pytest.mark.parametrize("path", ABSENT)
def test_path_is_absent_from_the_file_system(stopped_container: Any, path: str) -> None:
    with pytest.raises(docker.errors.NotFound):
        stopped_container.get_archive(path)


@pytest.mark.parametrize("path", PRESENT)
def test_control_path_is_found(stopped_container: Any, path: str) -> None:
    stream, stat = stopped_container.get_archive(path)
    for _ in stream:  # drain the response
        pass
    assert stat["size"] > 0 or stat["linkTarget"]


def test_runtime_python_sees_no_shell_package_manager_pip_poetry_or_test_module(
    report: dict[str, Any],
) -> None:
    assert not any(report["exists"][p] for p in ABSENT), report["exists"]
    assert all(report["exists"][p] for p in PRESENT), report["exists"]
    which = report["which"]
    assert which.pop("courier") == "/opt/venv/bin/courier"
    assert all(found is None for found in which.values()), which
    importable = report["importable"]
    assert importable.pop("courier")
    assert importable.pop("celery")
    assert not any(importable.values()), importable
    forbidden = [
        name
        for name in report["site_packages"]
        if name.lower().split("-")[0] in ("pip", "poetry", "poetry_core", "poetry_plugin_export")
    ]
    assert not forbidden, forbidden
    assert "courier" in report["site_packages"]


def test_shell_entrypoint_cannot_start(run_container: RunContainer, image_id: str) -> None:
    with pytest.raises(docker.errors.APIError) as raised:
        run_container(image_id, entrypoint=["/bin/sh"], command=["-c", "id"])
    print(f"\n--entrypoint /bin/sh: {raised.value.explanation}")
    assert "/bin/sh" in str(raised.value.explanation)
    assert "no such file" in str(raised.value.explanation).lower()
