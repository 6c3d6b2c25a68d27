"""tinyshop's tasks: pricing an order and the average price of items (public), and a periodic
restock (private, sent by beat)."""

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


@task("tinyshop.average", public=True)
def average(
    total_cents: Annotated[int, Param("the items' total", minimum=0, maximum=10**9)],
    items: Annotated[int, Param("how many items", minimum=0, maximum=1000)],
) -> float:
    """The average price of an item; of no items, not a number (which is not JSON)."""
    return total_cents / items if items else float("nan")


@task("tinyshop.restock", bind=True, ignore_result=True)
def restock(self: Task) -> None:
    """Count a restock run (beat sends one a second; one beat, so no race)."""
    self.app.backend.set(RESTOCKS_KEY, str(restocks(self.app) + 1))


def restocks(celery: Celery) -> int:
    return int(celery.backend.get(RESTOCKS_KEY) or 0)
