"""tinyshop's tasks: pricing an order (public) and a periodic restock (private, sent by beat)."""

from __future__ import annotations

from typing import Annotated

from celery import Celery, Task

from courier.names import backend_key
from courier.tasks import Param, task

RESTOCKS_KEY = backend_key("tinyshop-restocks")


@task("tinyshop.price", public=True)
def price(
    quantity: Annotated[int, Param("items ordered", minimum=1, maximum=1000)],
    unit_cents: Annotated[int, Param("price of one item", minimum=0, maximum=10**6)],
    coupon: str = "",
) -> int:
    """The total of an order, in cents."""
    total = quantity * unit_cents
    return total * 9 // 10 if coupon == "TENOFF" else total


@task("tinyshop.restock", bind=True, ignore_result=True)
def restock(self: Task) -> None:
    """Count a restock run (beat sends one a second; one beat, so no race)."""
    self.app.backend.set(RESTOCKS_KEY, str(restocks(self.app) + 1))


def restocks(celery: Celery) -> int:
    return int(celery.backend.get(RESTOCKS_KEY) or 0)
