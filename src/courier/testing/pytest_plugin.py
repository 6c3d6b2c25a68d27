"""The pytest plugin of `courier.testing`, registered by the `testing` extra (`pytest11` entry
point), so a service's tests need no set-up of their own:

    def test_add(courier_stack):
        assert courier_stack.run("demo.add", {"a": 2, "b": 3}) == 5

- `courier_image`: the image under test, from `--courier-image` or `COURIER_IMAGE`;
- `courier_stack`: a started `CourierStack` on it (removed at the end of its scope);
- `courier_stack_options`: the stack's keyword arguments (`workers`, `beat`, `env`, ...):
  override this fixture, with the same scope, to change them.

Both stack fixtures are session-scoped unless `--courier-scope` or the `courier_scope` ini value
names another scope. pytest loads the plugin wherever courier is installed, with or without the
`testing` extra (an entry point cannot depend on an extra), so loading it imports nothing from
testcontainers; `courier_stack` does, and without the extra fails in one line saying to install
`courier[testing]`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, cast

import pytest

if TYPE_CHECKING:
    from courier.testing.stack import CourierStack

Scope = Literal["session", "package", "module", "class", "function"]
SCOPES: tuple[Scope, ...] = ("session", "package", "module", "class", "function")
BROKERS = ("redis", "rabbitmq")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("courier", "courier.testing: a courier stack for the tests")
    group.addoption(
        "--courier-image",
        metavar="IMAGE",
        help="the courier image (or an image derived from it) to test; default: $COURIER_IMAGE",
    )
    group.addoption(
        "--courier-broker",
        choices=BROKERS,
        help="the broker of courier_stack (default: courier_stack_options, else redis)",
    )
    group.addoption(
        "--courier-scope",
        choices=SCOPES,
        help="the scope of courier_stack (default: the courier_scope ini value, session)",
    )
    parser.addini("courier_scope", "the scope of courier_stack (default: session)")


def pytest_configure(config: pytest.Config) -> None:
    configured_scope(config)


def configured_scope(config: pytest.Config) -> Scope:
    """`--courier-scope`, else the `courier_scope` ini value, else session."""
    scope = config.getoption("courier_scope") or config.getini("courier_scope") or "session"
    if scope not in SCOPES:
        raise pytest.UsageError(f"courier_scope must be one of {', '.join(SCOPES)}: {scope!r}")
    return cast(Scope, scope)


def stack_scope(fixture_name: str, config: pytest.Config) -> Scope:
    """The scope of the stack fixtures (checked once, at configuration)."""
    return configured_scope(config)


@pytest.fixture(scope="session")
def courier_image(pytestconfig: pytest.Config) -> str:
    """The image under test: `--courier-image`, else `COURIER_IMAGE`."""
    image = pytestconfig.getoption("courier_image") or os.environ.get("COURIER_IMAGE", "")
    if not image:
        pytest.fail(
            "no courier image to test: pass --courier-image IMAGE or set COURIER_IMAGE "
            "(build the image first)",
            pytrace=False,
        )
    return str(image)


@pytest.fixture(scope=stack_scope)
def courier_stack_options() -> dict[str, Any]:
    """Keyword arguments of `courier_stack`'s `CourierStack`; none by default (Redis, an API,
    one worker, no beat)."""
    return {}


@pytest.fixture(scope=stack_scope)
def courier_stack(
    pytestconfig: pytest.Config, courier_image: str, courier_stack_options: dict[str, Any]
) -> Iterator[CourierStack]:
    """A started `CourierStack` on `courier_image`. A stack that cannot start fails the
    fixture at once, naming the container, its exit code and its last log lines."""
    from courier.testing import MissingExtraError, import_submodule

    try:
        import_submodule("stack")
    except MissingExtraError as error:
        raise pytest.fail.Exception(f"courier_stack: {error}", pytrace=False) from None
    from courier.testing.containers import CourierStartError
    from courier.testing.stack import CourierStack, CourierStopError

    options = dict(courier_stack_options)
    broker = pytestconfig.getoption("courier_broker")
    if broker:
        options["broker"] = broker
    stack = CourierStack(courier_image, **options)
    try:
        stack.start()
    except CourierStartError as error:
        # The notes: a failure to remove the stack afterwards.
        message = "\n".join(
            [f"courier_stack could not start: {error}", *getattr(error, "__notes__", [])]
        )
        failure = pytest.fail.Exception(message, pytrace=False)
        raise failure from None
    try:
        yield stack
    finally:
        try:
            stack.stop()
        except CourierStopError as error:
            raise pytest.fail.Exception(f"courier_stack: {error}", pytrace=False) from None
