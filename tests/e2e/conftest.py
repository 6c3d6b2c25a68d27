"""End-to-end fixtures: a failed test marks itself (and its module) so that the fixtures holding
containers print those containers' logs before removing them."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.e2e.system import FAILED


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
    return node.stash.get(FAILED, False)
