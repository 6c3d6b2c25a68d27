"""courier.testing without Docker: bad arguments are refused before anything starts, and the
pytest plugin's options (image, scope) as a downstream session sees them."""

from __future__ import annotations

import pytest

from courier.testing import CourierContainer, CourierStack


def test_a_setting_must_be_an_environment_variable_name() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'mdoe'"):
        CourierContainer("courier:latest", mdoe="api")


def test_stack_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="broker must be one of"):
        CourierStack("courier:latest", broker="kafka")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        CourierStack("courier:latest", workers=-1)
    with pytest.raises(ValueError, match="image"):
        CourierStack("")


def plan(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """`--setup-plan` of a one-test project on courier_stack: fixtures are planned, not run."""
    pytester.makepyfile(test_plan="def test_it(courier_stack):\n    pass\n")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--setup-plan", *args)


def test_without_an_image_the_fixture_says_how_to_name_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COURIER_IMAGE", raising=False)
    pytester.makepyfile(test_image="def test_it(courier_image):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*no courier image to test: pass --courier-image IMAGE or set COURIER_IMAGE*"]
    )


def test_the_stack_is_session_scoped_by_default(pytester: pytest.Pytester) -> None:
    plan(pytester, "--courier-image", "courier:planned").stdout.fnmatch_lines(
        ["*SETUP    S courier_stack*"]
    )


def test_the_scope_comes_from_the_option_then_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncourier_scope = function\n")
    plan(pytester, "--courier-image", "x").stdout.fnmatch_lines(["*SETUP    F courier_stack*"])
    plan(pytester, "--courier-image", "x", "--courier-scope", "module").stdout.fnmatch_lines(
        ["*SETUP    M courier_stack*"]
    )


def test_an_unknown_scope_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncourier_scope = forever\n")
    result = plan(pytester, "--courier-image", "x")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*courier_scope must be one of session, package*"])


def test_a_stack_gives_every_role_its_broker_and_a_token() -> None:
    rabbitmq = CourierStack("courier:latest", "rabbitmq")
    assert rabbitmq.env["BROKER_URL"] == "amqp://guest:guest@rabbitmq:5672//"
    assert rabbitmq.env["RESULT_BACKEND"] == "redis://redis:6379/1"
    assert rabbitmq.env["API_TOKENS"] == rabbitmq.token
    assert len(rabbitmq.token) >= 32
    own = "own-token-0123456789abcdef"
    configured = CourierStack(
        "courier:latest", env={"API_TOKENS": f"{own},second-token-0123456789"}
    )
    assert configured.token == own
