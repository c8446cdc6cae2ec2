"""Maestro's benchmark: the orchestrator's tax, measured side by side with direct calls.

Scenarios (this first slice; more follow): (a) latency, one execution at a time, of the
onboarding workflow through the embedded engine against two hand-written direct clients with
compiled stubs (httpx and aiohttp for the HTTP call); (b) throughput at concurrency 32; (e) growth:
1, 4, 16 and 64 sequential steps. Systems are interleaved round by round; medians are reported.

Writes bench/results/latest.json and prints a Markdown table with PASS/FAIL per target.
Usage: python bench/run.py [--rounds 3] [--executions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "examples" / "onboarding" / "services"
sys.path.insert(0, str(SERVICES))
sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "protos"))

from maestro_server.definition import load_workflow  # noqa: E402
from maestro_server.engine.runner import Runner  # noqa: E402
from maestro_server.logging import configure_logging  # noqa: E402
from maestro_server.resilience.breaker import BreakerRegistry  # noqa: E402
from maestro_server.resilience.clock import SystemClock  # noqa: E402
from maestro_server.transports.registry import Transports  # noqa: E402

auth_protos, auth_services = grpc.protos_and_services("auth/v1/auth.proto")
billing_protos, billing_services = grpc.protos_and_services("billing/v1/billing.proto")
mailer_protos, mailer_services = grpc.protos_and_services("mailer/v1/mailer.proto")


@contextmanager
def process(command: list[str]) -> Iterator[int]:
    """Run a service; yields its port."""
    env = dict(os.environ, PYTHONPATH=str(SERVICES))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"{command} did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


class Direct:
    """The onboarding calls written by hand with compiled stubs: the baseline."""

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

    async def post(self, url: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": key}
        if self.http == "httpx":
            return (await self.httpx.post(url, json=body, headers=headers)).json()  # type: ignore[no-any-return]
        if self.aiohttp is None:
            self.aiohttp = aiohttp.ClientSession()
        async with self.aiohttp.post(url, json=body, headers=headers) as response:
            return await response.json()  # type: ignore[no-any-return]

    async def run(self, execution_id: str, data: dict[str, Any]) -> None:
        metadata = (("idempotency-key", f"{execution_id}:create_user"),)
        user = await self.auth.CreateUser(
            auth_protos.CreateUserRequest(email=data["email"], password=data["password"]),
            metadata=metadata,
        )
        sub = await self.billing.CreateSubscription(
            billing_protos.CreateSubscriptionRequest(user_id=user.id, plan=data["plan"]),
            metadata=(("idempotency-key", f"{execution_id}:setup_subscription"),),
        )
        await self.post(
            f"{self.endpoints['crm_service']}/contacts",
            {"user_id": user.id, "email": data["email"], "subscription_tier": sub.tier},
            f"{execution_id}:add_to_crm",
        )
        await self.mailer.SendTemplate(
            mailer_protos.SendTemplateRequest(
                to=data["email"],
                template="welcome",
                vars={"name": data["name"], "plan": sub.plan_name},
            ),
            metadata=(("idempotency-key", f"{execution_id}:send_welcome_email"),),
        )

    async def close(self) -> None:
        await self.httpx.aclose()
        if self.aiohttp is not None:
            await self.aiohttp.close()
        for channel in self.channels.values():
            await channel.close()


class _NoSink:
    async def append_event(self, event: Any) -> None:
        pass

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
        pass


class Embedded:
    """The same workflow through Maestro's engine in this process, events kept in memory."""

    def __init__(self, yaml: str) -> None:
        self.workflow = load_workflow(yaml)
        self.transports = Transports()
        self.breakers = BreakerRegistry(SystemClock())

    async def run(self, execution_id: str, data: dict[str, Any]) -> None:
        result = await Runner(
            self.workflow,
            execution_id,
            data,
            invoker=self.transports,
            sink=_NoSink(),
            breakers=self.breakers,
            rng=random.Random(0),
        ).run()
        if result.state.value != "COMPLETED":
            raise RuntimeError(f"{execution_id}: {result.state} {result.error}")

    async def close(self) -> None:
        await self.transports.close()


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


Run = Callable[[str, dict[str, Any]], Awaitable[None]]


async def latency(run: Run, name: str, count: int) -> list[float]:
    """Seconds per execution, one at a time."""
    samples = []
    for n in range(count):
        data = {
            "email": f"{name}{n}-{random.random()}@x.io",
            "password": "pw",
            "name": "B",
            "plan": "pro",
        }
        started = time.perf_counter()
        await run(f"{name}-{n}-{random.random()}", data)
        samples.append(time.perf_counter() - started)
    return samples


async def throughput(run: Run, name: str, count: int, concurrency: int) -> tuple[float, float]:
    """(workflows per second, CPU seconds of this process per 1000 workflows)."""
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            data = {
                "email": f"t{n}-{random.random()}@x.io",
                "password": "pw",
                "name": "B",
                "plan": "pro",
            }
            await run(f"{name}-t{n}-{random.random()}", data)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return count / elapsed, (time.process_time() - cpu) / count * 1000


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(rounds: int, executions: int) -> dict[str, Any]:
    with ExitStack() as stack:
        node = ["node", str(SERVICES / "auth-node" / "server.js"), "--port", "0"]
        py = [sys.executable, "-m", "demo_services"]
        auth = stack.enter_context(process(node))
        billing = stack.enter_context(process([*py, "billing", "--port", "0"]))
        crm = stack.enter_context(process([*py, "crm", "--port", "0"]))
        email = stack.enter_context(process([*py, "email", "--port", "0"]))
        endpoints = {
            "auth_service": f"127.0.0.1:{auth}",
            "billing_service": f"127.0.0.1:{billing}",
            "crm_service": f"http://127.0.0.1:{crm}",
            "email_service": f"127.0.0.1:{email}",
        }
        systems: dict[str, Any] = {
            "direct-aiohttp": Direct(endpoints, "aiohttp"),
            "direct-httpx": Direct(endpoints, "httpx"),
            "maestro-embedded": Embedded(onboarding_yaml(endpoints)),
        }
        lat: dict[str, list[float]] = {name: [] for name in systems}
        thr: dict[str, list[tuple[float, float]]] = {name: [] for name in systems}
        for system in systems.values():  # warm up channels, schemas and connection pools
            await latency(system.run, "warm", 20)
        for _ in range(rounds):
            for name, system in systems.items():
                lat[name] += await latency(system.run, name, executions)
                thr[name].append(await throughput(system.run, name, executions, 32))
        growth: dict[int, float] = {}
        for steps in (1, 4, 16, 64):
            embedded = Embedded(growth_yaml(endpoints["billing_service"], steps))
            await latency(embedded.run, "warm", 5)
            samples = await latency(embedded.run, f"g{steps}", max(20, executions // 4))
            growth[steps] = statistics.median(samples) / steps
            await embedded.close()
        for system in systems.values():
            await system.close()
    p50 = {name: statistics.median(samples) for name, samples in lat.items()}
    added_per_step = (p50["maestro-embedded"] - p50["direct-aiohttp"]) / 4
    flat = max(growth[16], growth[64]) / growth[4]
    results = {
        "latency": {
            name: {"p50_ms": p50[name] * 1000, "p99_ms": pct(lat[name], 0.99) * 1000}
            for name in systems
        },
        "throughput_c32": {
            name: {
                "workflows_per_s": statistics.median(t[0] for t in thr[name]),
                "cpu_s_per_1000": statistics.median(t[1] for t in thr[name]),
            }
            for name in systems
        },
        "growth_ms_per_step": {str(k): v * 1000 for k, v in growth.items()},
        "targets": {
            "added latency per step over aiohttp direct <= 0.3 ms": {
                "value_ms": added_per_step * 1000,
                "pass": added_per_step <= 0.0003,
            },
            "time per step flat within 20% from 4 to 64 steps": {
                "value_ratio": flat,
                "pass": flat <= 1.2,
            },
        },
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        "| system | p50 ms | p99 ms | workflows/s (c=32) | CPU s / 1000 |",
        "|---|---|---|---|---|",
    ]
    for name, lat in results["latency"].items():
        thr = results["throughput_c32"][name]
        lines.append(
            f"| {name} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | "
            f"{thr['workflows_per_s']:.0f} | {thr['cpu_s_per_1000']:.2f} |"
        )
    lines += ["", "| steps | ms per step |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in results["growth_ms_per_step"].items()]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for name, target in results["targets"].items():
        value = target.get("value_ms", target.get("value_ratio"))
        lines.append(f"| {name} | {value:.3f} | {'PASS' if target['pass'] else 'FAIL'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executions", type=int, default=200)
    args = parser.parse_args()
    configure_logging(level="WARNING")  # as in production: per-attempt debug lines filtered
    results = asyncio.run(main(args.rounds, args.executions))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
