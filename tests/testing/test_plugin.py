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


WITHOUT_THE_EXTRA = """
import pytest


def test_other_tests_run():
    assert True


def test_the_image_fixture_needs_no_extra(courier_image):
    assert courier_image == "my-service:latest"


def test_what_needs_no_testcontainers_imports():
    from courier.testing import CourierClient, parse_json_lines

    assert CourierClient("http://127.0.0.1:1", None).base_url == "http://127.0.0.1:1"
    assert parse_json_lines('{"a": 1}') == [{"a": 1}]


def test_importing_the_rest_says_what_to_install():
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'courier\\[testing\\]'"):
        from courier.testing import CourierStack  # noqa: F401


def test_add(courier_stack):
    assert courier_stack.run("demo.add", {"a": 2, "b": 3}) == 5
"""
# What `import testcontainers` / `import docker` do where the extra is not installed.
MISSING = 'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'


def test_without_the_extra_the_plugin_loads_and_the_stack_fixture_says_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    """courier without `[testing]` (the wheel's `pytest11` entry point is there all the same):
    testcontainers and docker are shadowed by packages that fail to import as missing ones do.
    The session runs; only the test on `courier_stack` errors, in one line."""
    for name in ("testcontainers", "docker"):
        pytester.mkpydir(name).joinpath("__init__.py").write_text(MISSING.format(name=name))
    pytester.makepyfile(test_service=WITHOUT_THE_EXTRA)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--courier-image", "my-service:latest", timeout=120
    )
    result.assert_outcomes(passed=4, errors=1)
    expected = (
        "courier_stack: courier.testing needs the `testing` extra: "
        "pip install 'courier[testing]' (no module named 'docker')"
    )
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_add _*",
            expected,
            "*= short test summary info =*",
            "ERROR test_service.py::test_add - Failed: courier_stack: courier.testing*",
        ],
        consecutive=True,
    )
    assert "Traceback" not in result.stdout.str()
