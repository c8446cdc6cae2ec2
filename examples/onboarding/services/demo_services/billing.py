"""The billing service: subscriptions, created and cancelled; payments, charged and refunded."""

from __future__ import annotations

import itertools
from typing import Any

import grpc

from demo_services.grpc_server import Context, DemoService, Rejected, load

protos, services = load("billing/v1/billing.proto")
SERVICE = "billing.v1.BillingService"
PLANS = {
    "free": ("free", "Free", 0),
    "pro": ("gold", "Pro", 1900),
    "team": ("platinum", "Team", 4900),
}


class Billing(DemoService, services.BillingServiceServicer):  # type: ignore[misc,name-defined]
    """Subscriptions and payments in memory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: dict[str, Any] = {}
        self.payments: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._payment_ids = itertools.count(1)

    async def CreateSubscription(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            if request.plan not in PLANS:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"unknown plan {request.plan!r}")
            tier, name, price = PLANS[request.plan]
            subscription = protos.Subscription(
                id=f"sub_{next(self._ids):04d}",
                user_id=request.user_id,
                plan=request.plan,
                tier=tier,
                plan_name=name,
                status="ACTIVE",
                price_cents=price,
            )
            self.subscriptions[subscription.id] = subscription
            return subscription

        return await self.guarded("CreateSubscription", request, context, act)

    async def CancelSubscription(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            subscription = self.subscriptions.get(request.subscription_id)
            if subscription is None:  # nothing to undo is not an error for a compensation
                return protos.Subscription(id=request.subscription_id, status="UNKNOWN")
            subscription.status = "CANCELLED"
            return subscription

        return await self.guarded("CancelSubscription", request, context, act)

    async def GetSubscription(self, request: Any, context: Context) -> Any:
        subscription = self.subscriptions.get(request.subscription_id)
        if subscription is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such subscription")
        return subscription

    async def ListSubscriptions(self, request: Any, context: Context) -> Any:
        return protos.ListSubscriptionsResponse(subscriptions=list(self.subscriptions.values()))

    async def Charge(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            if request.amount_cents <= 0:
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT, f"cannot charge {request.amount_cents} cents"
                )
            payment = protos.Payment(
                id=f"pay_{next(self._payment_ids):04d}",
                order_id=request.order_id,
                customer=request.customer,
                amount_cents=request.amount_cents,
                status="CHARGED",
            )
            self.payments[payment.id] = payment
            return payment

        return await self.guarded("Charge", request, context, act)

    async def Refund(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            payment = self.payments.get(request.payment_id)
            if payment is None:  # nothing to undo is not an error for a compensation
                return protos.Payment(id=request.payment_id, status="UNKNOWN")
            payment.status = "REFUNDED"
            return payment

        return await self.guarded("Refund", request, context, act)

    async def ListPayments(self, request: Any, context: Context) -> Any:
        return protos.ListPaymentsResponse(payments=list(self.payments.values()))


def add(servicer: Billing) -> Any:
    """The function that adds the servicer to a server."""
    return lambda server: services.add_BillingServiceServicer_to_server(servicer, server)
