"""invoicing's one task: the gross amount of an invoice."""

from __future__ import annotations

from typing import Annotated

from courier.tasks import Param, task


@task("invoicing.total", public=True)
def total(
    net_cents: Annotated[int, Param("the net amount, in cents", minimum=0, maximum=10**12)],
    vat_percent: Annotated[int, Param("the VAT rate, in percent", minimum=0, maximum=100)],
) -> int:
    """The gross amount in cents: net plus VAT, the VAT rounded half up to a cent."""
    return net_cents + (net_cents * vat_percent + 50) // 100
