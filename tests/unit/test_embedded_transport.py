"""The embedded broker keeps a job's message until it is acknowledged: a worker that dies with it
unacknowledged leaves it behind, and the next worker runs it again. Real kombu connections on the
transport, real files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Queue

from courier.queue import embedded_transport
from courier.queue.embedded_transport import requeue_unacknowledged


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    found = {name: tmp_path / name for name in ("queue", "unacked", "control")}
    for folder in found.values():
        folder.mkdir()
    embedded_transport.install()
    return found


def connection(folders: dict[str, Path]) -> Connection:
    return Connection(
        "filesystem://",
        transport_options={
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "control_folder": str(folders["control"]),
            embedded_transport.UNACKED_OPTION: str(folders["unacked"]),
        },
    )


def publish(folders: dict[str, Path], *bodies: str) -> None:
    with connection(folders) as conn:
        producer = conn.Producer()
        for body in bodies:
            producer.publish(body, routing_key="jobs", declare=[Queue("jobs")])
            time.sleep(0.01)  # kombu names message files by the millisecond: keep their order


def take(conn: Connection) -> Any:
    """One message, unacknowledged (`basic_get`: nothing else is prefetched)."""
    message = Queue("jobs", channel=conn.default_channel).get(no_ack=False)
    assert message is not None, "the queue is empty"
    return message


def test_an_acknowledged_message_is_gone(folders: dict[str, Path]) -> None:
    publish(folders, "one")
    with connection(folders) as conn:
        message = take(conn)
        assert message.payload == "one"
        assert len(list(folders["unacked"].glob("*.msg"))) == 1  # kept while it runs
        message.ack()
        assert list(folders["unacked"].glob("*.msg")) == []
    assert list(folders["queue"].glob("*.msg")) == []


def test_a_message_left_unacknowledged_by_a_dead_worker_runs_again(
    folders: dict[str, Path],
) -> None:
    publish(folders, "first", "second")
    dead = connection(folders)
    taken = take(dead)  # the worker dies here: never acknowledged, never closed
    assert taken.payload == "first"
    assert len(list(folders["queue"].glob("*.msg"))) == 1

    assert requeue_unacknowledged(folders["unacked"], folders["queue"]) == 1
    with connection(folders) as conn:
        again = [take(conn), take(conn)]
        assert [m.payload for m in again] == ["first", "second"]  # in their original order
        for message in again:
            message.ack()
    assert list(folders["unacked"].glob("*.msg")) == []


def test_a_message_put_back_on_a_clean_stop_is_not_doubled(folders: dict[str, Path]) -> None:
    publish(folders, "only")
    with connection(folders) as conn:
        queue = conn.SimpleQueue("jobs")
        assert queue.get(timeout=2).payload == "only"
        queue.close()  # a graceful stop restores what it did not acknowledge
    assert requeue_unacknowledged(folders["unacked"], folders["queue"]) == 0
    with connection(folders) as conn:
        message = take(conn)
        assert message.payload == "only"
        message.ack()
        with pytest.raises(conn.SimpleQueue("jobs").Empty):
            conn.SimpleQueue("jobs").get(timeout=0.5)


def test_an_unreadable_message_file_is_moved_aside_never_a_crash(
    folders: dict[str, Path],
) -> None:
    """A file a kill or a bad disk left unreadable stops neither the restart's requeue nor the
    worker's next take: it is moved into broker-corrupt beside the broker's folders."""
    publish(folders, "first", "second")
    dead = connection(folders)
    assert take(dead).payload == "first"
    (folders["unacked"] / "0_damaged.jobs.msg").write_bytes(b"")  # empty: killed mid-write
    (folders["unacked"] / "0_shapeless.jobs.msg").write_bytes(b"[1, 2]")  # JSON, no message
    # Named to sort before any real message (kombu names them by a monotonic clock's
    # milliseconds, never starting with 0), so the worker meets it before the jobs.
    (folders["queue"] / "0_broken.jobs.msg").write_bytes(b'{"body": "trunc')

    assert requeue_unacknowledged(folders["unacked"], folders["queue"]) == 1
    with connection(folders) as conn:
        messages = [take(conn), take(conn)]
        assert [m.payload for m in messages] == ["first", "second"]
        for message in messages:
            message.ack()
    corrupt = folders["unacked"].parent / embedded_transport.CORRUPT_FOLDER
    assert sorted(p.name for p in corrupt.iterdir()) == [
        "0_broken.jobs.msg",
        "0_damaged.jobs.msg",
        "0_shapeless.jobs.msg",
    ]
    assert list(folders["queue"].glob("*")) == []
    assert list(folders["unacked"].glob("*")) == []


def test_a_message_is_never_seen_half_written(folders: dict[str, Path]) -> None:
    """Messages are written under a name no reader takes, then renamed into place."""
    (folders["queue"] / ".d0c.partial").write_bytes(b'{"body": ')  # a writer killed midway
    publish(folders, "whole")
    with connection(folders) as conn:
        message = take(conn)
        assert message.payload == "whole"
        message.ack()
        assert conn.default_channel._size("jobs") == 0
    assert [p.name for p in folders["queue"].iterdir()] == [".d0c.partial"]
