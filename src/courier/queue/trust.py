"""The broker is a trust boundary: a worker runs only the tasks it was told about, with the
arguments they declare, whoever put the message on the queue.

A message for a task that is neither public nor periodic (Celery's own `celery.*` tasks
included) finds no such task in the worker: Celery logs it, rejects the message (no
redelivery) and records the job as failed with `NotRegistered`. A public task's arguments are
checked against its declaration before it runs, exactly as the API checks them; arguments that do
not fit fail the job with `InvalidArguments` (acknowledged, never retried).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

from celery import Celery, Task

from courier.tasks import PublicError, TaskDeclaration

# Celery's own periodic task: beat sends it only where results do not expire on their own (the
# embedded file backend), and only there may a worker run it.
BACKEND_CLEANUP: Final = "celery.backend_cleanup"
_MAX_REPORTED = 10


class InvalidArguments(PublicError):
    """A message's arguments do not fit the task's declaration (its message names the
    parameters and what is wrong, never the values)."""


class DeclaredTask(Task):  # type: ignore[misc]
    """The base of every task declared with `@courier.tasks.task`."""

    declaration: ClassVar[TaskDeclaration]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.declaration.public:
            kwargs = self.declaration.normalize(kwargs)
            problems = {"arguments": "must be named"} if args else {}
            problems.update(self.declaration.validate(kwargs))
            if problems:
                shown = list(problems.items())[:_MAX_REPORTED]
                raise InvalidArguments(
                    "; ".join(f"{name[:64]}: {problem}" for name, problem in shown)
                )
        return super().__call__(*args, **kwargs)


def allowed_tasks(
    catalog: Mapping[str, TaskDeclaration],
    periodic_jobs: Mapping[str, Mapping[str, Any]],
    results_expire: bool,
) -> frozenset[str]:
    """The tasks a worker may run: the public ones and those beat sends (Celery's result
    cleanup among them where results do not expire on their own)."""
    periodic = {str(entry["task"]) for entry in periodic_jobs.values()}
    cleanup = set() if results_expire else {BACKEND_CLEANUP}
    return frozenset(catalog) | periodic | cleanup


def keep_only(celery: Celery, allowed: Iterable[str]) -> None:
    """Unregister every other task (Celery registers its own when the app is finalized)."""
    names = set(allowed)
    for name in [name for name in celery.tasks if name not in names]:
        celery.tasks.unregister(name)
