"""A second business package runs in the image by the `PLUGIN` setting alone: mounted read-only,
put on `PYTHONPATH`, with no kit file edited (the README's "Make it yours" steps)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.conftest import ROOT
from tests.image.conftest import (
    LOOPBACK,
    RunContainer,
    logs,
    published_port,
    wait_for_health,
    wait_for_http,
)
from tests.image.test_modes import TOKEN, hardened

PLUGINS = ROOT / "tests" / "plugins"


def test_tinyshop_plugs_in_by_the_setting_alone(run_container: RunContainer, image_id: str) -> None:
    kwargs = hardened(PLUGIN="tinyshop:plugin", PYTHONPATH="/plugins", API_TOKENS=TOKEN)
    kwargs["volumes"] = {str(PLUGINS): {"bind": "/plugins", "mode": "ro"}}
    container = run_container(image_id, **kwargs)
    base = f"http://{LOOPBACK}:{published_port(container)}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    wait_for_http(container, f"{base}/readyz")

    tasks = requests.get(f"{base}/v1/tasks", headers=auth, timeout=10).json()["tasks"]
    assert [task["name"] for task in tasks] == ["tinyshop.price", "tinyshop.average"]

    def run(task: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The job's id and its final state, read as strict JSON (no NaN, no Infinity)."""
        submitted = requests.post(
            f"{base}/v1/jobs", json={"task": task, "args": args}, headers=auth, timeout=10
        )
        assert submitted.status_code == 202, submitted.text
        job: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.get("state") not in ("SUCCESS", "FAILURE"):
            answer = requests.get(base + submitted.headers["Location"], headers=auth, timeout=10)
            job = json.loads(answer.text, parse_constant=lambda name: pytest.fail(name))
            time.sleep(0.3)
        return submitted.json()["id"], job

    job_id, job = run("tinyshop.price", {"quantity": 4, "unit_cents": 250, "coupon": "TENOFF"})
    assert job == {
        "id": job_id,
        "task": "tinyshop.price",
        "state": "SUCCESS",
        "result": 900,
    }, logs(container)[-3000:]
    # A result that is no JSON (NaN) fails the job; reading it back is still valid JSON.
    job_id, nan = run("tinyshop.average", {"total_cents": 0, "items": 0})
    assert nan == {
        "id": job_id,
        "task": "tinyshop.average",
        "state": "FAILURE",
        "error": {"type": "EncodeError"},
    }, logs(container)[-3000:]

    # Its periodic job: beat sends tinyshop.restock every second, the worker counts the runs.
    def restocks() -> int:
        body = requests.get(f"{base}/v1/tinyshop/restocks", headers=auth, timeout=10).json()
        return int(body["restocks"])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and restocks() < 2:
        time.sleep(0.5)
    assert restocks() >= 2, logs(container)[-3000:]
    assert requests.get(f"{base}/v1/demo/heartbeat", headers=auth, timeout=10).status_code == 404
    wait_for_health(container)
    print(f"\ntinyshop in the image: price job {job['result']}, {restocks()} restocks")
