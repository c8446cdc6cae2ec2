"""The order example through a real `maestro serve`, against the real inventory and billing
demo services: items reserved by a for_each step, a cooling-off sleep, then the payment as a
sub-workflow (a child execution) that charges the card and awaits the payment provider's
confirmation as a signal; and an order that runs out of stock."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from demo_services import billing, inventory
from demo_services.grpc_server import start

from maestro_client import EventType, ExecutionState, MaestroClient, WorkflowEvent, plain
from tests.api.conftest import maestro_serve
from tests.conftest import ROOT

ORDER = ROOT / "examples" / "order"
WORKFLOW = ORDER / "workflow.yaml"
CONFIRMATION = {"reference": "psp-77"}


@dataclass
class Shop:
    """The order example's services in this process, and a server that calls them."""

    inventory: inventory.Inventory
    billing: billing.Billing
    client: MaestroClient

    async def run(self, execution_id: str, input_file: str) -> list[WorkflowEvent]:
        """Run the order to its end, confirming the payment when its child execution waits
        for it; the order's log."""
        data = json.loads((ORDER / input_file).read_text())
        await self.client.start(WORKFLOW, data, execution_id=execution_id)
        log = []
        async for event in self.client.watch(execution_id):
            log.append(event)
            if event.type == EventType.STEP_WAITING and event.child_execution_id:
                child = await self.until_waiting(event.child_execution_id)
                await self.client.signal_execution(
                    child, "payment_confirmed", CONFIRMATION, signal_id="psp-event-77"
                )
        return log

    async def until_waiting(self, child: str) -> str:
        """Follow the payment's execution until it waits for the confirmation; its id."""
        async for event in self.client.watch(child):
            if event.type == EventType.STEP_WAITING and event.signal_name == "payment_confirmed":
                return child
        raise AssertionError(f"{child} ended without waiting for the payment")


@pytest_asyncio.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    """Inventory and billing over gRPC with reflection, and `maestro serve` on SQLite."""
    stock, payments = inventory.Inventory(), billing.Billing()
    stock_server, stock_port = await start([inventory.SERVICE], inventory.add(stock), 0)
    billing_server, billing_port = await start([billing.SERVICE], billing.add(payments), 0)
    endpoints = [
        f"--endpoint=inventory_service=127.0.0.1:{stock_port}",
        f"--endpoint=billing_service=127.0.0.1:{billing_port}",
    ]
    try:
        with maestro_serve(f"--store=sqlite:///{tmp_path / 'm.db'}", *endpoints) as server:
            async with MaestroClient(server.address) as client:
                yield Shop(stock, payments, client)
    finally:
        await stock_server.stop(None)
        await billing_server.stop(None)


def _keys(service: Any, method: str) -> list[str]:
    return [c["key"] for c in service.ledger.calls if c["method"] == method]


async def test_an_order_completes_once_the_payment_is_confirmed(shop: Shop) -> None:
    """Each item reserved under its element's key, the cooling-off waited out, the card
    charged, and the confirmation's payload in the output; nothing released or refunded."""
    log = await shop.run("ord-1", "input.json")
    assert log[-1].type == EventType.WORKFLOW_COMPLETED
    held = list(shop.inventory.reservations.values())
    assert [(r.sku, r.quantity, r.status) for r in held] == [
        ("keyboard", 1, "HELD"),
        ("mouse", 2, "HELD"),
        ("usb-cable", 3, "HELD"),
    ]
    left = {"keyboard": 19, "mouse": 48, "usb-cable": 197}
    assert shop.inventory.stock == {**inventory.STOCK, **left}
    assert _keys(shop.inventory, "Reserve") == [f"ord-1:reserve_items[{i}]" for i in range(3)]
    (payment,) = shop.billing.payments.values()
    assert (payment.order_id, payment.amount_cents, payment.status) == (
        "ord-1001",
        15400,
        "CHARGED",
    )
    assert plain(log[-1].output) == {
        "order_id": "ord-1001",
        "reservations": [r.reservation_id for r in held],
        "payment": {"payment_id": payment.id, "amount_cents": 15400, "confirmation": "psp-77"},
    }
    steps = [(e.type, e.step_id) for e in log if e.element_index is None and e.step_id]
    assert steps == [
        (EventType.STEP_SUCCEEDED, "reserve_items"),
        (EventType.STEP_WAITING, "cooling_off"),
        (EventType.STEP_SUCCEEDED, "cooling_off"),
        (EventType.STEP_STARTED, "charge"),
        (EventType.STEP_WAITING, "charge"),
        (EventType.STEP_SUCCEEDED, "charge"),
    ]
    payment_log = [e async for e in shop.client.watch("ord-1:charge")]
    assert [(e.type, e.step_id) for e in payment_log if e.step_id] == [
        (EventType.STEP_STARTED, "charge_card"),
        (EventType.STEP_SUCCEEDED, "charge_card"),
        (EventType.STEP_WAITING, "await_confirmation"),
        (EventType.SIGNAL_RECEIVED, "await_confirmation"),
        (EventType.STEP_SUCCEEDED, "await_confirmation"),
    ]
    assert _keys(shop.billing, "Charge") == ["ord-1:charge:charge_card"]
    nap, woke = (e for e in log if e.step_id == "cooling_off")
    assert nap.time is not None and nap.deadline is not None and woke.time is not None
    assert (woke.time - nap.time).total_seconds() >= 0.99, "the cooling-off is waited out"
    assert woke.time >= nap.deadline
    assert _keys(shop.inventory, "Release") == [] and _keys(shop.billing, "Refund") == []


async def test_an_out_of_stock_item_releases_the_items_reserved_before_it(shop: Shop) -> None:
    """The sold-out webcam fails for good: the mouse, then the keyboard, are released under
    their elements' compensation keys, stock is as it was, and no payment is taken."""
    log = await shop.run("ord-2", "input-out-of-stock.json")
    assert log[-1].type == EventType.WORKFLOW_COMPENSATED
    assert log[-1].state == ExecutionState.COMPENSATED
    assert log[-1].error is not None and log[-1].error.code == "FAILED_PRECONDITION"
    assert "out of stock: webcam" in log[-1].error.message
    assert _keys(shop.inventory, "Release") == [
        "ord-2:reserve_items[1]:compensate",
        "ord-2:reserve_items[0]:compensate",
    ]
    released = [(r.sku, r.status) for r in shop.inventory.reservations.values()]
    assert released == [("keyboard", "RELEASED"), ("mouse", "RELEASED")]
    assert shop.inventory.stock == inventory.STOCK
    assert shop.billing.ledger.calls == []
    assert not any(e.type == EventType.STEP_WAITING for e in log)


async def test_an_order_cancelled_while_awaiting_the_payment_refunds_and_releases(
    shop: Shop,
) -> None:
    """Cancelled while its payment waits for the confirmation: the cancel reaches the payment's
    execution, which refunds the charge; then the items are released, last first."""
    data = json.loads((ORDER / "input.json").read_text())
    await shop.client.start(WORKFLOW, data, execution_id="ord-3")
    log = []
    async for event in shop.client.watch("ord-3"):
        log.append(event)
        if event.type == EventType.STEP_WAITING and event.child_execution_id:
            await shop.until_waiting(event.child_execution_id)
            await shop.client.cancel("ord-3", "the customer changed their mind")
    assert log[-1].type == EventType.WORKFLOW_CANCELLED
    undone = [
        (e.step_id, e.element_index) for e in log if e.type == EventType.COMPENSATION_SUCCEEDED
    ]
    assert undone == [("charge", None)] + [("reserve_items", i) for i in (2, 1, 0)]
    payment = await shop.client.get("ord-3:charge")
    assert payment.state == ExecutionState.CANCELLED  # it refunded the charge itself
    assert _keys(shop.billing, "Refund") == ["ord-3:charge:charge_card:compensate"]
    assert _keys(shop.inventory, "Release") == [
        f"ord-3:reserve_items[{i}]:compensate" for i in (2, 1, 0)
    ]
    assert [p.status for p in shop.billing.payments.values()] == ["REFUNDED"]
    assert shop.inventory.stock == inventory.STOCK
