"""Maestro's benchmark: the orchestrator's tax, measured side by side with direct calls.

The onboarding workflow (four calls: gRPC to a Node.js and two Python services, HTTP to a
Python CRM) is run by hand-written direct clients with compiled stubs (aiohttp or httpx for the
HTTP call), by Maestro's engine embedded in this process, and through `maestro serve` with the
Python SDK (SQLite store, and PostgreSQL when it is reachable). Systems are interleaved round
by round; medians are reported.

Scenarios: (a) latency, one execution at a time; (b) throughput at concurrency 32 and 128 with
CPU seconds per 1,000 workflows summed over the orchestrator and client processes (downstream
services apart); (c) the same through `maestro serve`; (d) scale: 10,000 executions in flight,
each waiting on a 2 s step; (e) growth: 1, 4, 16 and 64 sequential steps; (f) the compensation
path (the last step fails for good). Every system's downstream effects are counted from the
services' own ledgers and must be equal.

Writes bench/results/latest.json and prints Markdown tables with PASS/FAIL per target.
Usage: python bench/run.py [--rounds 3] [--executions 200] [--scale 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "examples" / "onboarding" / "services"
sys.path.insert(0, str(ROOT))  # tests/: the chaos harness's server runner, PostgreSQL helpers
sys.path.insert(0, str(SERVICES))
sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "protos"))

from demo_services.fleet import Fleet, fleet  # noqa: E402
from startup import measure as measure_startup  # noqa: E402
from startup import rows as startup_rows  # noqa: E402

from maestro_client import EventType, ExecutionState, MaestroClient  # noqa: E402
from maestro_server.definition import load_workflow  # noqa: E402
from maestro_server.engine.dependencies import Dependencies  # noqa: E402
from maestro_server.engine.runner import Runner  # noqa: E402
from maestro_server.logs import configure_logging  # noqa: E402
from maestro_server.resilience.breaker import BreakerRegistry  # noqa: E402
from maestro_server.resilience.clock import SystemClock  # noqa: E402
from maestro_server.transports.registry import Transports  # noqa: E402
from tests.chaos.harness import Server  # noqa: E402
from tests.postgres import ADMIN_URL as POSTGRES_ADMIN  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402

auth_protos, auth_services = grpc.protos_and_services("auth/v1/auth.proto")
billing_protos, billing_services = grpc.protos_and_services("billing/v1/billing.proto")
mailer_protos, mailer_services = grpc.protos_and_services("mailer/v1/mailer.proto")


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def maestro_serve(store: str, *flags: str) -> Iterator[tuple[str, int]]:
    """`maestro serve` on a free port, logging warnings only; yields (address, pid)."""
    with tempfile.TemporaryDirectory() as folder:
        server = Server(store, Path(folder) / "server.log", "--log-level", "WARNING", *flags)
        server.start()
        try:
            assert server.process is not None
            yield server.address, server.process.pid
        finally:
            server.stop()


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


# -- systems -----------------------------------------------------------------------------------


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
    async def append_event(self, event: Any) -> None:
        pass

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
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
    """The same workflow through `maestro serve`, with the Python SDK: execute, stream events."""

    def __init__(self, address: str, pid: int, yaml: str) -> None:
        self.client = MaestroClient(address)
        self.pids = (pid,)
        self.yaml = yaml

    async def run(self, execution_id: str, data: dict[str, Any]) -> str:
        last = None
        async for event in self.client.execute(self.yaml, data, execution_id=execution_id):
            last = event
        assert last is not None
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


def scale_yaml(endpoint: str) -> str:
    return (
        f'name: scale\nservices:\n  billing: {{type: grpc, endpoint: "{endpoint}"}}\n'
        "steps:\n  - {id: wait, service: billing, method: CancelSubscription, timeout: 30s,"
        ' input: {subscription_id: "{{ .input.n }}"}}\n'
    )


# -- measurements ------------------------------------------------------------------------------

Run = Callable[[str, dict[str, Any]], Awaitable[str]]


def workload(prefix: str, n: int) -> tuple[str, dict[str, Any]]:
    """An execution id (`system@phase-n-tag`: effects are counted per system) and its input."""
    tag = uuid.uuid4().hex[:10]
    data = {"email": f"u{n}-{tag}@x.io", "password": "pw", "name": "B", "plan": "pro"}
    return f"{prefix}-{n}-{tag}", data


async def latency(run: Run, prefix: str, count: int, expect: str = "COMPLETED") -> list[float]:
    """Seconds per execution, one at a time."""
    samples = []
    for n in range(count):
        execution_id, data = workload(prefix, n)
        started = time.perf_counter()
        outcome = await run(execution_id, data)
        samples.append(time.perf_counter() - started)
        if outcome != expect:
            raise SystemExit(f"{execution_id} ended {outcome}, not {expect}")
    return samples


async def throughput(
    system: System, prefix: str, count: int, concurrency: int, services: Fleet
) -> dict[str, float]:
    """Workflows per second, and CPU seconds per 1000 workflows: the orchestrator and its client
    (this process and any server), and the downstream services apart."""
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            execution_id, data = workload(prefix, queue.pop())
            outcome = await system.run(execution_id, data)
            if outcome != "COMPLETED":
                raise SystemExit(f"{execution_id} ended {outcome}")

    ours = (os.getpid(), *system.pids)
    theirs = tuple(services.pids().values())
    cpu = [sum(map(cpu_seconds, ours)), sum(map(cpu_seconds, theirs))]
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "workflows_per_s": count / elapsed,
        "cpu_s_per_1000": (sum(map(cpu_seconds, ours)) - cpu[0]) / count * 1000,
        "downstream_cpu_s_per_1000": (sum(map(cpu_seconds, theirs)) - cpu[1]) / count * 1000,
    }


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def effects_by_system(services: Fleet, systems: list[str]) -> dict[str, dict[str, int]]:
    """Downstream effects per system, from the services' ledgers (keys start with the system)."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in systems}
    for service in services.services:
        for effect in services.ledger(service)["effects"]:
            system = (effect["key"] or "").split("@", 1)[0]
            if system in counts:
                counts[system][effect["method"]] += 1
    return {name: dict(sorted(c.items())) for name, c in counts.items()}


async def scale(services: Fleet, executions: int, store: str) -> dict[str, float]:
    """Executions in flight at once, each waiting 2 s on its step: peak RSS and how long."""
    services.set_faults("billing", {"delays": {"CancelSubscription": {"seconds": 2.0}}})
    yaml = scale_yaml(services.endpoints["billing_service"])
    limit = str(executions * 2)
    try:
        with maestro_serve(store, "--max-concurrent-executions", limit) as (address, pid):
            async with MaestroClient(address) as client:
                queue = list(range(executions))

                async def starter() -> None:
                    while queue:
                        n = queue.pop()
                        await client.start(yaml, {"n": f"s{n}"}, execution_id=f"scale@{n}")

                started = time.perf_counter()
                await asyncio.gather(*(starter() for _ in range(64)))
                all_started = time.perf_counter() - started
                unfinished = [ExecutionState.PENDING, ExecutionState.RUNNING]
                while True:
                    async for _ in client.list("scale", unfinished, page_size=1):
                        break
                    else:
                        break
                    await asyncio.sleep(0.2)
                wall = time.perf_counter() - started
                durations = []
                async for execution in client.list("scale", page_size=1000):
                    assert execution.state == ExecutionState.COMPLETED, execution
                    assert execution.end_time and execution.create_time
                    durations.append((execution.end_time - execution.create_time).total_seconds())
                rss = peak_rss_mib(pid)
    finally:
        services.set_faults("billing", {})
    assert len(durations) == executions
    return {
        "executions": executions,
        "peak_rss_mib": rss,
        "seconds_to_start_all": all_started,
        "seconds_until_all_finished": wall,
        "execution_p50_s": statistics.median(durations),
        "execution_max_s": max(durations),
    }


async def main(rounds: int, executions: int, scale_executions: int) -> dict[str, Any]:
    with ExitStack() as stack:
        services = stack.enter_context(fleet())
        endpoints = services.endpoints
        yaml = onboarding_yaml(endpoints)
        sqlite = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "bench.db"
        stores = {"maestro-serve-sqlite": f"sqlite:///{sqlite}"}
        postgres = stack.enter_context(postgres_database())
        if postgres is not None:
            stores["maestro-serve-postgres"] = postgres
        systems: dict[str, System] = {
            "direct-aiohttp": Direct(endpoints, "aiohttp"),
            "direct-httpx": Direct(endpoints, "httpx"),
            "maestro-embedded": Embedded(yaml),
        }
        for name, store in stores.items():
            address, pid = stack.enter_context(maestro_serve(store))
            systems[name] = Served(address, pid, yaml)
        names = list(systems)
        lat: dict[str, list[float]] = {name: [] for name in names}
        comp: dict[str, list[float]] = {name: [] for name in names}
        thr: dict[int, dict[str, list[dict[str, float]]]] = {
            c: {name: [] for name in names} for c in (32, 128)
        }
        for name, system in systems.items():  # warm up channels, schemas and connection pools
            await latency(system.run, f"{name}@warm", 20)
        fail_email = {"errors": {"SendTemplate": {"code": "INVALID_ARGUMENT", "rate": 1.0}}}
        for round_ in range(rounds):
            print(f"round {round_ + 1} of {rounds}", file=sys.stderr)
            for name, system in systems.items():
                lat[name] += await latency(system.run, f"{name}@lat", executions)
                for concurrency in (32, 128):
                    thr[concurrency][name].append(
                        await throughput(
                            system, f"{name}@c{concurrency}", executions, concurrency, services
                        )
                    )
            services.set_faults("email", fail_email)
            for name, system in systems.items():
                comp[name] += await latency(
                    system.run, f"{name}@comp", executions // 4, expect="COMPENSATED"
                )
            services.set_faults("email", {})
        for system in systems.values():
            await system.close()
        print("growth", file=sys.stderr)
        # Interleaved in small batches, so a drift of the machine or of the services (their
        # ledgers grow) does not favour one length.
        lengths = (1, 4, 16, 64)
        engines = {n: Embedded(growth_yaml(endpoints["billing_service"], n)) for n in lengths}
        per_step: dict[int, list[float]] = {n: [] for n in lengths}
        for embedded in engines.values():
            await latency(embedded.run, "growth@warm", 5)
        for _ in range(10):
            for n, embedded in engines.items():
                samples = await latency(embedded.run, f"growth@{n}", max(5, executions // 20))
                per_step[n] += [s / n for s in samples]
        growth = {n: statistics.median(samples) for n, samples in per_step.items()}
        for embedded in engines.values():
            await embedded.close()
        effects = effects_by_system(services, names)
        print("scale", file=sys.stderr)
        scaled = await scale(services, scale_executions, f"sqlite:///{sqlite}.scale")
        print("start-up", file=sys.stderr)
        startup = measure_startup(endpoints)
    return summarize(names, lat, comp, thr, growth, effects, scaled) | {"startup": startup}


def median_of(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def summarize(  # noqa: PLR0917 - one call site, every part of the results
    names: list[str],
    lat: dict[str, list[float]],
    comp: dict[str, list[float]],
    thr: dict[int, dict[str, list[dict[str, float]]]],
    growth: dict[int, float],
    effects: dict[str, dict[str, int]],
    scaled: dict[str, float],
) -> dict[str, Any]:
    p50 = {name: statistics.median(samples) for name, samples in lat.items()}
    throughputs = {c: {n: median_of(thr[c][n]) for n in names} for c in thr}
    added_per_step = (p50["maestro-embedded"] - p50["direct-aiohttp"]) / 4
    flat = max(growth[16], growth[64]) / growth[4]
    c128 = throughputs[128]
    targets: dict[str, dict[str, Any]] = {
        "embedded: added latency per step over aiohttp direct <= 0.3 ms": {
            "value": added_per_step * 1000,
            "pass": added_per_step <= 0.0003,
        },
        "time per step flat within 20% from 4 to 64 steps": {"value": flat, "pass": flat <= 1.2},
    }
    for name, share_aiohttp, share_httpx in (
        ("maestro-serve-sqlite", 0.4, 0.6),
        ("maestro-serve-postgres", 0.3, None),
    ):
        if name not in c128:
            continue
        ratio = c128[name]["workflows_per_s"] / c128["direct-aiohttp"]["workflows_per_s"]
        targets[f"{name}: throughput at c=128 >= {share_aiohttp:.0%} of aiohttp direct"] = {
            "value": ratio,
            "pass": ratio >= share_aiohttp,
        }
        if share_httpx is not None:
            ratio = c128[name]["workflows_per_s"] / c128["direct-httpx"]["workflows_per_s"]
            targets[f"{name}: throughput at c=128 >= {share_httpx:.0%} of httpx direct"] = {
                "value": ratio,
                "pass": ratio >= share_httpx,
            }
    targets["scale: peak RSS of the server (MiB) < 1024"] = {
        "value": scaled["peak_rss_mib"],
        "pass": scaled["peak_rss_mib"] < 1024,
    }
    targets["scale: slowest execution (s) <= 2 s + 20%"] = {
        "value": scaled["execution_max_s"],
        "pass": scaled["execution_max_s"] <= 2.4,
    }
    equal_work = all(effects[name] == effects[names[0]] for name in names)
    targets["equal downstream effects for every system"] = {
        "value": float(equal_work),
        "pass": equal_work,
    }
    return {
        "latency": {
            name: {
                "p50_ms": p50[name] * 1000,
                "p99_ms": pct(lat[name], 0.99) * 1000,
                "ratio_to_aiohttp": p50[name] / p50["direct-aiohttp"],
            }
            for name in names
        },
        "compensation_latency": {
            name: {
                "p50_ms": statistics.median(comp[name]) * 1000,
                "p99_ms": pct(comp[name], 0.99) * 1000,
            }
            for name in names
        },
        "throughput": {
            str(c): {
                name: {
                    **values,
                    "ratio_to_aiohttp": values["workflows_per_s"]
                    / per_system["direct-aiohttp"]["workflows_per_s"],
                }
                for name, values in per_system.items()
            }
            for c, per_system in throughputs.items()
        },
        "growth_ms_per_step": {str(k): v * 1000 for k, v in growth.items()},
        "scale": scaled,
        "downstream_effects": effects,
        "targets": targets,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def table(results: dict[str, Any]) -> str:
    lat, comp, thr = results["latency"], results["compensation_latency"], results["throughput"]
    lines = [
        "| system | p50 ms | p99 ms | ×direct | compensation p50 ms | wf/s c=32 | wf/s c=128 "
        "| ×direct c=128 | CPU s/1000 c=128 | downstream CPU s/1000 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in lat:
        t32, t128 = thr["32"][name], thr["128"][name]
        lines.append(
            f"| {name} | {lat[name]['p50_ms']:.2f} | {lat[name]['p99_ms']:.2f} "
            f"| {lat[name]['ratio_to_aiohttp']:.2f} | {comp[name]['p50_ms']:.2f} "
            f"| {t32['workflows_per_s']:.0f} | {t128['workflows_per_s']:.0f} "
            f"| {t128['ratio_to_aiohttp']:.2f} | {t128['cpu_s_per_1000']:.1f} "
            f"| {t128['downstream_cpu_s_per_1000']:.1f} |"
        )
    lines += ["", "| steps | ms per step |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in results["growth_ms_per_step"].items()]
    lines += ["", "| scale | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in results["scale"].items()]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for name, target in results["targets"].items():
        lines.append(f"| {name} | {target['value']:.3f} | {'PASS' if target['pass'] else 'FAIL'} |")
    for name, wall, cpu, result in startup_rows(results["startup"]):  # bench/startup.py
        lines.append(f"| {name} | {wall} (CPU {cpu}) | {result} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--scale", type=int, default=10_000, help="executions in flight at once")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # as in production: per-attempt debug lines filtered
    results = asyncio.run(main(args.rounds, args.executions, args.scale))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
