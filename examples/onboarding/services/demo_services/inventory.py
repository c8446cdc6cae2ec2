"""The inventory service of the order example: stock held for an order, and released."""

from __future__ import annotations

import itertools
from typing import Any

import grpc

from demo_services.grpc_server import Context, DemoService, Rejected, load

protos, services = load("inventory/v1/inventory.proto")
SERVICE = "inventory.v1.InventoryService"
STOCK = {"keyboard": 20, "mouse": 50, "usb-cable": 200, "webcam": 0}
"""What each SKU starts with; the webcam is sold out, for the demo's failing order."""


class Inventory(DemoService, services.InventoryServiceServicer):  # type: ignore[misc,name-defined]
    """Stock and reservations in memory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stock = dict(STOCK)
        self.reservations: dict[str, Any] = {}
        self._ids = itertools.count(1)

    async def Reserve(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            if request.sku not in self.stock:
                raise Rejected(grpc.StatusCode.NOT_FOUND, f"unknown SKU {request.sku!r}")
            if request.quantity <= 0:
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT, f"cannot reserve {request.quantity}"
                )
            left = self.stock[request.sku]
            if left < request.quantity:
                raise Rejected(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"out of stock: {request.sku} ({left} left, {request.quantity} wanted)",
                )
            self.stock[request.sku] = left - request.quantity
            reservation = protos.Reservation(
                reservation_id=f"res_{next(self._ids):04d}",
                order_id=request.order_id,
                sku=request.sku,
                quantity=request.quantity,
                status="HELD",
                in_stock=self.stock[request.sku],
            )
            self.reservations[reservation.reservation_id] = reservation
            return reservation

        return await self.guarded("Reserve", request, context, act)

    async def Release(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            reservation = self.reservations.get(request.reservation_id)
            if reservation is None:  # nothing to undo is not an error for a compensation
                return protos.Reservation(reservation_id=request.reservation_id, status="UNKNOWN")
            if reservation.status == "HELD":
                self.stock[reservation.sku] += reservation.quantity
                reservation.status = "RELEASED"
            reservation.in_stock = self.stock[reservation.sku]
            return reservation

        return await self.guarded("Release", request, context, act)

    async def ListReservations(self, request: Any, context: Context) -> Any:
        return protos.ListReservationsResponse(reservations=list(self.reservations.values()))


def add(servicer: Inventory) -> Any:
    """The function that adds the servicer to a server."""
    return lambda server: services.add_InventoryServiceServicer_to_server(servicer, server)
