"""Item 4, scale-out: two `maestro serve` replicas on one PostgreSQL database.

The onboarding workflow at a concurrency, first through replica A alone (B idles beside it),
then with the clients split evenly over A and B: throughput, server CPU and what each workflow
costs PostgreSQL, in both phases on the same database. Each execution's effects must happen
exactly once (the services' ledgers, by idempotency key), and the services must receive no
call twice (no faults are injected, so a repeated call means an execution ran twice).

Both replicas share this machine's cores with PostgreSQL, the services and the clients, so the
combined throughput says little about a real deployment; the per-workflow cost on PostgreSQL
does, and gives the estimate of how many replicas one primary can serve (see `estimate`).
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from measure import calls_by_method, effects_by_execution, throughput, warm_up
from pg_cost import PgMeter
from processes import maestro_serve, metrics_flags
from systems import Served, postgres_database

from tests.postgres import ADMIN_URL as POSTGRES_ADMIN

if TYPE_CHECKING:
    from demo_services.fleet import Fleet

EXPECTED = {"CreateUser": 1, "CreateSubscription": 1, "POST /contacts": 1, "SendTemplate": 1}


async def phase(
    replicas: list[Served],
    meter: PgMeter,
    services: Fleet,
    *,
    prefix: str,
    executions: int,
    concurrency: int,
) -> dict[str, Any]:
    """One throughput run over `replicas`, with its PostgreSQL cost and the exactly-once check."""
    calls = calls_by_method(services)
    before = await meter.settled()
    started = time.perf_counter()
    figures = await throughput(
        [r.run for r in replicas],
        [pid for r in replicas for pid in r.pids],
        prefix=prefix,
        count=executions,
        concurrency=concurrency,
        services=services,
    )
    elapsed = time.perf_counter() - started
    cost = await meter.cost(before, await meter.settled(), executions, elapsed)
    effects = effects_by_execution(services, prefix)
    wrong = {e: dict(c) for e, c in effects.items() if dict(c) != EXPECTED}
    repeated = {
        method: count - executions
        for method, count in (calls_by_method(services) - calls).items()
        if count != executions
    }
    return {
        **figures,
        "postgres": cost.as_dict(),
        "executions_with_effects": len(effects),
        "executions_with_wrong_effects": len(wrong),
        "wrong_effects_sample": dict(list(wrong.items())[:3]),
        "extra_calls_by_method": repeated,
        "exactly_once": len(effects) == executions and not wrong and not repeated,
    }


def estimate(one: dict[str, Any]) -> dict[str, Any]:
    """How many replicas one PostgreSQL primary can serve, from one replica's costs.

    Assumed: a primary with as many cores as this machine, spending them on the backends'
    work (the measured backend CPU per workflow; WAL writing and checkpoints apart), and each
    replica a process that uses one core at its measured server CPU per workflow."""
    cost = one["postgres"]
    cores = os.cpu_count() or 1
    primary_wf_s = cores * 1000 / cost["backend_cpu_ms"] if cost["backend_cpu_ms"] else 0.0
    replica_wf_s = 1000 / one["server_cpu_ms_per_workflow"]
    wal = cost["wal_bytes_own"] or cost["wal_bytes_cluster"]
    return {
        "primary_cores_assumed": cores,
        "primary_workflows_per_s": primary_wf_s,
        "replica_workflows_per_s_on_one_core": replica_wf_s,
        "replicas_per_primary": primary_wf_s / replica_wf_s,
        "wal_mib_per_s_at_primary_limit": primary_wf_s * wal / 2**20,
        "transactions_per_s_at_primary_limit": primary_wf_s * cost["transactions"],
    }


async def scale_out(
    services: Fleet, yaml: str, executions: int, concurrency: int
) -> dict[str, Any] | None:
    """Both phases on a fresh database; None when PostgreSQL is not reachable."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database())
        if url is None:
            return None
        meter = PgMeter(POSTGRES_ADMIN, url)
        await meter.open()
        replicas = []
        for _ in range(2):
            flags, metrics = metrics_flags()
            replicas.append(Served(*stack.enter_context(maestro_serve(url, *flags)), yaml))
            meter.metrics.append(metrics)
        try:
            for n, replica in enumerate(replicas):  # schemas, channels, connection pools
                await warm_up(replica.run, replica.pids, f"scaleout@warm{n}", services)
            one = await phase(
                replicas[:1],
                meter,
                services,
                prefix="scaleout@one",
                executions=executions,
                concurrency=concurrency,
            )
            two = await phase(
                replicas,
                meter,
                services,
                prefix="scaleout@two",
                executions=executions,
                concurrency=concurrency,
            )
        finally:
            for replica in replicas:
                await replica.close()
            await meter.close()
    return {
        "executions": executions,
        "concurrency": concurrency,
        "one_replica": one,
        "two_replicas": two,
        "throughput_two_over_one": two["workflows_per_s"] / one["workflows_per_s"],
        "transactions_two_over_one": two["postgres"]["transactions"]
        / one["postgres"]["transactions"],
        "estimate": estimate(one),
    }
