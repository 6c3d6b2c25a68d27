"""Shared test set-up: markers by folder, Docker (required, never skipped), the image under test.

Broker images come from the same variables as the build and compose (`REDIS_IMAGE`,
`RABBITMQ_IMAGE`, read by `courier.testing`); on a machine that cannot pull, point them at the
local stand-ins that `scripts/build-local-images` makes.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parent.parent
_MARKER_BY_FOLDER = {
    "unit": "unit",
    "integration": "integration",
    "image": "image",
    "e2e": "e2e",
    "faults": "faults",
    "release": "release",
    "testing": "testing",
}
# `pytester` runs pytest sessions of a downstream project in tests/testing.
pytest_plugins = ("pytester",)

# Testcontainers' reaper image cannot always be pulled; fixtures remove their own containers.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        marker = _MARKER_BY_FOLDER.get(folder)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


# Set on a failed test and on its module and session, so that fixtures holding containers or
# processes print their logs before removing them.
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for node in item.listchain():
            node.stash[FAILED] = True
    return report


def failed(node: pytest.Item | pytest.Collector) -> bool:
    """Did this test, or a test of this module, fail?"""
    return node.stash.get(FAILED, False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI every test runs: a skipped test fails the run instead of passing silently."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(
                f"CI: {skipped} test(s) skipped; every test must run in CI", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The local Docker engine. Missing Docker fails the test loudly; it never skips it."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:
        pytest.fail(f"a Docker engine is required for this test and none answered: {error}")
    yield client
    client.close()


def git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def commit_epoch(commit: str) -> int:
    """The commit's time in seconds since the epoch: what the build stamps (SOURCE_DATE_EPOCH)."""
    result = subprocess.run(
        ["git", "log", "-1", "--format=%ct", commit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


@pytest.fixture(scope="session")
def courier_image(docker_client: docker.DockerClient) -> str:
    """The runtime image, built once per session with the README's build command (bake). This
    overrides the fixture of the same name of courier.testing's pytest plugin.

    `COURIER_TEST_IMAGE` names an image to test instead (for quick local iterations only:
    the image tests then check that image's labels against HEAD).
    """
    prebuilt = os.environ.get("COURIER_TEST_IMAGE")
    if prebuilt:
        return prebuilt
    subprocess.run([str(ROOT / "scripts" / "build")], cwd=ROOT, check=True)
    commit = git_commit()
    return f"courier:sha-{commit[:7]}" if commit != "unknown" else "courier:latest"
