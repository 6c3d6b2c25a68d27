"""The pytest plugin as a downstream project uses it: a pytest session of its own (a
subprocess, the plugin loaded by the `pytest11` entry point, nothing imported from this suite),
whose test is the README's three lines. A stack that cannot start fails the fixture at once,
naming the container and why, and leaves nothing behind."""

from __future__ import annotations

import time

import docker
import pytest

from courier.testing import CourierStack, default_redis_image
from tests.testing.conftest import leftovers, stack_name

pytestmark = pytest.mark.timeout(300)

DOWNSTREAM_TESTS = """
def test_add(courier_stack):
    assert courier_stack.run("demo.add", {"a": 2, "b": 3}) == 5


def test_the_session_shares_one_stack(courier_stack):
    assert courier_stack.name == STACK
    assert courier_stack.logs("worker").count("demo.add") >= 1
"""


def downstream_project(pytester: pytest.Pytester, name: str, **options: object) -> None:
    """A project with two tests on `courier_stack`, whose options name the stack `name`."""
    pytester.makeconftest(
        "import pytest\n\n\n"
        '@pytest.fixture(scope="session")\n'
        "def courier_stack_options():\n"
        f"    return {{'name': {name!r}, **{options!r}}}\n"
    )
    pytester.makepyfile(test_service=f"STACK = {name!r}\n" + DOWNSTREAM_TESTS)


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, float]:
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", *args, timeout=240)
    return result, time.monotonic() - started


def test_the_three_line_test_runs_on_courier_image(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    courier_image: str,
) -> None:
    name = stack_name("plugin")
    downstream_project(pytester, name)
    monkeypatch.setenv("COURIER_IMAGE", courier_image)
    result, seconds = run(pytester)
    print(f"\ndownstream session (image from COURIER_IMAGE) in {seconds:.1f}s")
    result.assert_outcomes(passed=2)
    assert leftovers(docker_client, name) == []


def test_a_stack_that_exits_fails_the_fixture_at_once(
    pytester: pytest.Pytester, docker_client: docker.DockerClient, courier_image: str
) -> None:
    name = stack_name("plugin-78")
    downstream_project(pytester, name, env={"WEB_CONCURRENCY": "0"})
    result, seconds = run(pytester, "--courier-image", courier_image)
    print(f"\nbad setting: both tests errored after {seconds:.1f}s (session included)")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            f"*courier_stack could not start: container {name}-api exited while starting "
            "with exit code 78 (configuration: a setting is invalid)",
            "*WEB_CONCURRENCY: must be from 1 to 64*",
        ]
    )
    assert leftovers(docker_client, name) == []


def test_a_broker_never_ready_is_named_with_the_reason(
    pytester: pytest.Pytester, docker_client: docker.DockerClient, courier_image: str
) -> None:
    """`--courier-broker rabbitmq` picks the broker; Redis posing as RabbitMQ never logs that its
    start-up is complete."""
    name = stack_name("plugin-broker")
    downstream_project(pytester, name, rabbitmq_image=default_redis_image(), startup_timeout=5)
    result, seconds = run(
        pytester, "--courier-image", courier_image, "--courier-broker", "rabbitmq"
    )
    print(f"\nbroker never ready: errored after {seconds:.1f}s")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            f"*container {name}-rabbitmq not ready within 5s: "
            "no 'Server startup complete' in its log yet"
        ]
    )
    assert leftovers(docker_client, name) == []


def test_in_this_suite_the_stack_runs_on_the_session_image(
    courier_stack: CourierStack, courier_image: str
) -> None:
    """tests/conftest.py's `courier_image` (the image this session built) overrides the
    plugin's: the plugin's `courier_stack` runs on it."""
    assert courier_stack.image == courier_image
    assert courier_stack.run("demo.add", {"a": 2, "b": 3}) == 5
