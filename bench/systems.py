"""The systems the benchmark compares, each running the onboarding workflow (four calls).

Direct: hand-written clients with compiled stubs (aiohttp or httpx for the HTTP call), the
physical limit. Embedded: Maestro's engine in this process, events kept nowhere. Served:
`maestro serve` through the Python SDK (execute, stream the events).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/: PostgreSQL helpers
sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "services"))
sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "protos"))

from maestro_client import TERMINAL_EVENT_TYPES, EventType, MaestroClient  # noqa: E402
from maestro_server.definition import load_workflow  # noqa: E402
from maestro_server.engine.dependencies import Dependencies  # noqa: E402
from maestro_server.engine.runner import Runner  # noqa: E402
from maestro_server.resilience.breaker import BreakerRegistry  # noqa: E402
from maestro_server.resilience.clock import SystemClock  # noqa: E402
from maestro_server.transports.registry import Transports  # noqa: E402
from tests.postgres import ADMIN_URL as POSTGRES_ADMIN  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402

auth_protos, auth_services = grpc.protos_and_services("auth/v1/auth.proto")
billing_protos, billing_services = grpc.protos_and_services("billing/v1/billing.proto")
mailer_protos, mailer_services = grpc.protos_and_services("mailer/v1/mailer.proto")

STEPS = 4  # calls of the onboarding workflow on its success path
OUTCOME_ONLY = "-outcome-only"
"""The name of a served system's twin whose client asks for the outcome alone (item 6)."""


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A database of its own on the machine's PostgreSQL, or None when it is not reachable."""
    with ExitStack() as stack:
        try:
            url: str | None = stack.enter_context(fresh_database("maestro_bench"))
        except psycopg.OperationalError as exc:
            print(f"PostgreSQL not reachable at {POSTGRES_ADMIN} ({exc}): skipping its runs")
            url = None
        yield url


class Direct:
    """The onboarding calls written by hand with compiled stubs: the baseline."""

    pids: tuple[int, ...] = ()

    def __init__(self, endpoints: dict[str, str], http: str) -> None:
        self.endpoints = endpoints
        self.http = http
        self.channels = {
            n: grpc.aio.insecure_channel(a)
            for n, a in endpoints.items()
            if not a.startswith("http")
        }
        self.auth = auth_services.AuthServiceStub(self.channels["auth_service"])
        self.billing = billing_services.BillingServiceStub(self.channels["billing_service"])
        self.mailer = mailer_services.MailerServiceStub(self.channels["email_service"])
        self.httpx = httpx.AsyncClient()
        self.aiohttp: aiohttp.ClientSession | None = None

    async def request(self, verb: str, url: str, body: Any, key: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": key}
        if self.http == "httpx":
            reply = await self.httpx.request(verb, url, json=body, headers=headers)
            return reply.json()  # type: ignore[no-any-return]
        if self.aiohttp is None:
            self.aiohttp = aiohttp.ClientSession()
        async with self.aiohttp.request(verb, url, json=body, headers=headers) as response:
            return await response.json()  # type: ignore[no-any-return]

    async def run(self, execution_id: str, data: dict[str, Any]) -> str:
        def key(step: str) -> tuple[tuple[str, str]]:
            return (("idempotency-key", f"{execution_id}:{step}"),)

        user = await self.auth.CreateUser(
            auth_protos.CreateUserRequest(email=data["email"], password=data["password"]),
            metadata=key("create_user"),
        )
        sub = await self.billing.CreateSubscription(
            billing_protos.CreateSubscriptionRequest(user_id=user.id, plan=data["plan"]),
            metadata=key("setup_subscription"),
        )
        crm = self.endpoints["crm_service"]
        contact = await self.request(
            "POST",
            f"{crm}/contacts",
            {"user_id": user.id, "email": data["email"], "subscription_tier": sub.tier},
            f"{execution_id}:add_to_crm",
        )
        try:
            await self.mailer.SendTemplate(
                mailer_protos.SendTemplateRequest(
                    to=data["email"],
                    template="welcome",
                    vars={"name": data["name"], "plan": sub.plan_name},
                ),
                metadata=key("send_welcome_email"),
            )
        except grpc.aio.AioRpcError:  # the saga by hand: undo in reverse order
            await self.request(
                "DELETE",
                f"{crm}/contacts/{contact['id']}",
                None,
                f"{execution_id}:add_to_crm:compensate",
            )
            await self.billing.CancelSubscription(
                billing_protos.CancelSubscriptionRequest(subscription_id=sub.id),
                metadata=key("setup_subscription:compensate"),
            )
            return "COMPENSATED"
        return "COMPLETED"

    async def close(self) -> None:
        await self.httpx.aclose()
        if self.aiohttp is not None:
            await self.aiohttp.close()
        for channel in self.channels.values():
            await channel.close()


class _NoSink:
    async def append(self, entries: Any) -> None:
        pass


class Embedded:
    """The same workflow through Maestro's engine in this process, events kept nowhere."""

    pids: tuple[int, ...] = ()

    def __init__(self, yaml: str) -> None:
        self.workflow = load_workflow(yaml)
        self.transports = Transports()
        self.breakers = BreakerRegistry(SystemClock())

    async def run(self, execution_id: str, data: dict[str, Any]) -> str:
        result = await Runner(
            self.workflow,
            execution_id,
            data,
            Dependencies(
                invoker=self.transports,
                sink=_NoSink(),
                breakers=self.breakers,
                rng=random.Random(0),
            ),
        ).run()
        return result.state.value

    async def close(self) -> None:
        await self.transports.close()


class Served:
    """The same workflow through `maestro serve`, with the Python SDK: execute, stream events
    (every one, or with `outcome_only` only the terminal one, issue 13's item 6)."""

    def __init__(self, address: str, pid: int, yaml: str, *, outcome_only: bool = False) -> None:
        self.client = MaestroClient(address)
        self.pids = (pid,)
        self.yaml = yaml
        self.event_types: tuple[EventType, ...] = (
            tuple(TERMINAL_EVENT_TYPES) if outcome_only else ()
        )
        self.streams = 0
        self.unasked = 0
        """Events streamed that were not asked for, or past the first terminal one."""

    async def run(self, execution_id: str, data: dict[str, Any]) -> str:
        last = None
        streamed = self.client.execute(
            self.yaml, data, execution_id=execution_id, event_types=self.event_types
        )
        async for event in streamed:
            if last is not None and last.type in TERMINAL_EVENT_TYPES:
                self.unasked += 1
            if self.event_types and event.type not in self.event_types:
                self.unasked += 1
            last = event
        assert last is not None
        self.streams += 1
        return {
            EventType.WORKFLOW_COMPLETED: "COMPLETED",
            EventType.WORKFLOW_COMPENSATED: "COMPENSATED",
        }.get(last.type, last.type.name)

    async def close(self) -> None:
        await self.client.close()


System = Direct | Embedded | Served


def onboarding_yaml(endpoints: dict[str, str]) -> str:
    text = (ROOT / "examples/onboarding/workflow.yaml").read_text()
    originals = {
        "auth_service": "auth-service:50051",
        "billing_service": "billing-service:50052",
        "crm_service": "http://crm-api:8080",
        "email_service": "email-service:50053",
    }
    for name, original in originals.items():
        text = text.replace(f'"{original}"', f'"{endpoints[name]}"')
    return text


def growth_yaml(endpoint: str, steps: int) -> str:
    # CancelSubscription of an unknown id: a call whose cost does not grow with the service's data.
    body = "\n".join(
        f"  - {{id: s{n}, service: billing, method: CancelSubscription, "
        f"input: {{subscription_id: none}}}}"
        for n in range(steps)
    )
    return (
        f'name: growth\nservices:\n  billing: {{type: grpc, endpoint: "{endpoint}"}}\n'
        f"steps:\n{body}\n"
    )
