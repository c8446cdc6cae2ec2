"""The demo billing service, in the test's process, with a hook between deciding and answering.

Deciding is what the service does with a key it has not seen: it acts (one subscription, one
effect in its ledger) and keeps the reply under the idempotency key, so a repeated key gets that
reply again and acts no more. Between that and the answer, CreateSubscription awaits the hook
the test gives: to hold the call in flight while the server is killed, or to cut the connection
so the reply is lost. A test then knows, not guesses, that the effect happened before the reply.
"""

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from demo_services import billing
from demo_services.grpc_server import Context, start

AfterDeciding = Callable[[int], Awaitable[None]]
"""Called with 1 for the first call to have decided (or replayed), 2 for the next, and so on."""

# The workflow the tests run on it: subscribe (one attempt, undone by cancelling the subscription
# it returned), then read the subscription back by the id the first step learnt.
SUBSCRIBE_THEN_CHECK = """\
name: subscribe_then_check
services:
  billing: {{type: grpc, endpoint: "{billing}", timeout: 60s}}
steps:
  - id: subscribe
    service: billing
    method: CreateSubscription
    input: {{user_id: ada, plan: pro}}
    output: subscription
    retry: {{max_attempts: 1}}
    compensate:
      method: CancelSubscription
      input: {{subscription_id: "{{{{ .subscription.id }}}}"}}
  - id: check
    service: billing
    method: GetSubscription
    input: {{subscription_id: "{{{{ .subscription.id }}}}"}}
    output: checked
output:
  subscription_id: "{{{{ .checked.id }}}}"
"""


class DecidingBilling(billing.Billing):
    def __init__(self, after_deciding: AfterDeciding) -> None:
        super().__init__()
        self._after_deciding = after_deciding
        self._decided = 0

    async def CreateSubscription(self, request: Any, context: Context) -> Any:
        reply = await super().CreateSubscription(request, context)
        self._decided += 1
        await self._after_deciding(self._decided)
        return reply

    def effects(self, method: str) -> Counter[str | None]:
        """How many times `method` acted, by idempotency key (replays are not effects)."""
        return Counter(e["key"] for e in self.ledger.effects if e["method"] == method)

    def deliveries(self, method: str) -> list[tuple[str | None, str | None]]:
        """Every call of `method` received: (idempotency key, attempt), in order."""
        return [(c["key"], c["attempt"]) for c in self.ledger.calls if c["method"] == method]


@asynccontextmanager
async def deciding_billing(
    after_deciding: AfterDeciding,
) -> AsyncIterator[tuple[str, DecidingBilling]]:
    """The service on a free loopback port (with reflection); yields its address and servicer."""
    servicer = DecidingBilling(after_deciding)
    server, port = await start([billing.SERVICE], billing.add(servicer), 0)
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)
