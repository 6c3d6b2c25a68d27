"""invoicing's image, started with its broker by courier.testing's `courier_stack` fixture."""

from courier.testing import CourierStack


def test_total_includes_vat(courier_stack: CourierStack) -> None:
    assert courier_stack.run("invoicing.total", {"net_cents": 1999, "vat_percent": 20}) == 2399
    # The image runs this service's tasks, not courier's demo.
    tasks = courier_stack.client().get("/v1/tasks")["tasks"]
    assert [entry["name"] for entry in tasks] == ["invoicing.total"]
