"""Measurements shared by the scenarios: latency one at a time, throughput at a concurrency with
the CPU it cost, and the downstream effects counted from the services' own ledgers."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from processes import total_cpu_seconds

if TYPE_CHECKING:
    from demo_services.fleet import Fleet

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
    runs: Sequence[Run],
    servers: Sequence[int],
    *,
    prefix: str,
    count: int,
    concurrency: int,
    services: Fleet,
) -> dict[str, float]:
    """Workflows per second, `concurrency` at a time, the workers spread evenly over `runs` (one
    per replica). CPU per workflow: the orchestrator and its client (this process and the
    `servers`), the servers alone, and the downstream services apart."""
    queue = list(range(count))

    async def worker(run: Run) -> None:
        while queue:
            execution_id, data = workload(prefix, queue.pop())
            outcome = await run(execution_id, data)
            if outcome != "COMPLETED":
                raise SystemExit(f"{execution_id} ended {outcome}")

    ours = (os.getpid(), *servers)
    theirs = tuple(services.pids().values())
    before = [total_cpu_seconds(ours), total_cpu_seconds(servers), total_cpu_seconds(theirs)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(runs[n % len(runs)]) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = [total_cpu_seconds(ours), total_cpu_seconds(servers), total_cpu_seconds(theirs)]
    figures = {
        "workflows_per_s": count / elapsed,
        "cpu_s_per_1000": (after[0] - before[0]) / count * 1000,
        "downstream_cpu_s_per_1000": (after[2] - before[2]) / count * 1000,
    }
    if servers:
        figures["server_cpu_ms_per_workflow"] = (after[1] - before[1]) / count * 1000
    return figures


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median_of(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def effects_by_system(services: Fleet, systems: list[str]) -> dict[str, dict[str, int]]:
    """Downstream effects per system, from the services' ledgers (keys start with the system)."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in systems}
    for service in services.services:
        for effect in services.ledger(service)["effects"]:
            system = (effect["key"] or "").split("@", 1)[0]
            if system in counts:
                counts[system][effect["method"]] += 1
    return {name: dict(sorted(c.items())) for name, c in counts.items()}


def effects_by_execution(services: Fleet, prefix: str) -> dict[str, Counter[str]]:
    """Downstream effects of each execution whose id starts with `prefix`, by method (an
    idempotency key is `execution_id:step`)."""
    counts: dict[str, Counter[str]] = {}
    for service in services.services:
        for effect in services.ledger(service)["effects"]:
            key = effect["key"] or ""
            if key.startswith(prefix):
                execution_id = key.split(":", 1)[0]
                counts.setdefault(execution_id, Counter())[effect["method"]] += 1
    return counts


def calls_by_method(services: Fleet) -> Counter[str]:
    """Every call each service has received, by method (retries and replays included)."""
    calls: Counter[str] = Counter()
    for service in services.services:
        calls.update(services.ledger(service)["calls"])
    return calls


async def warm_up(run: Run, servers: Sequence[int], prefix: str, services: Fleet) -> None:
    """Run one by one, then 128 at a time: a connection pool grows to its working size and each
    connection prepares its statements (in PostgreSQL a new backend, and each statement psycopg
    prepares, is a transaction: a one-off cost that a measured phase would otherwise count)."""
    await latency(run, prefix, 20)
    await throughput(
        [run], servers, prefix=f"{prefix}128", count=256, concurrency=128, services=services
    )
