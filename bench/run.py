"""Maestro's benchmark: the orchestrator's tax, measured side by side with direct calls.

The onboarding workflow (four calls: gRPC to a Node.js and two Python services, HTTP to a
Python CRM) is run by hand-written direct clients with compiled stubs (aiohttp or httpx for the
HTTP call), by Maestro's engine embedded in this process, and through `maestro serve` with the
Python SDK (SQLite store, and PostgreSQL when it is reachable). Systems are interleaved round
by round; medians are reported.

Scenarios: (a) latency, one execution at a time; (b) throughput at concurrency 32 and 128 with
CPU per workflow of the orchestrator and client processes, of the server alone, and of the
downstream services apart; (c) what each PostgreSQL workflow costs the database
(transactions, rows, WAL; bench/pg_cost.py); (d) growth: 1, 4, 16 and 64 sequential steps;
(e) the compensation path (the last step fails for good); (f) scale-out: two replicas on one
PostgreSQL (bench/scale_out.py); (g) opt-in, scale: 10,000 executions in flight, each waiting
on a 2 s step (bench/scale.py); (h) opt-in, waiting: 10,000 executions waiting for a signal,
a SIGKILL and a restart, then every one signalled (issue 16, item 5; bench/scale_signals.py).
Every system's downstream effects are counted from the services' own ledgers and must be
equal.

Writes bench/results/latest.json (bench/results/scale.json with --scale-only) and prints
Markdown tables, the last one issue 13's targets with PASS/FAIL.
Usage: python bench/run.py [--rounds 3] [--executions 200] [--scale 10000] [--signals 10000]
[--scale-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

SERVICES = "examples/onboarding/services"

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("", SERVICES)]

from demo_services.fleet import Fleet, fleet  # noqa: E402
from measure import (  # noqa: E402
    effects_by_system,
    latency,
    median_of,
    pct,
    throughput,
    warm_up,
    workload,
)
from pg_cost import Cost, PgMeter  # noqa: E402
from processes import ROOT, cpu_seconds, maestro_serve, metrics_flags  # noqa: E402
from scale import scale  # noqa: E402
from scale_out import scale_out  # noqa: E402
from scale_signals import scale_signals  # noqa: E402
from startup import measure as measure_startup  # noqa: E402
from systems import (  # noqa: E402
    OUTCOME_ONLY,
    STEPS,
    Direct,
    Embedded,
    Served,
    System,
    growth_yaml,
    onboarding_yaml,
    postgres_database,
)
from tables import table  # noqa: E402
from targets import targets  # noqa: E402

from maestro_server.logs import configure_logging  # noqa: E402
from tests.postgres import ADMIN_URL as POSTGRES_ADMIN  # noqa: E402

# bench/embedded.py and others import these from here.
__all__ = ["Direct", "Embedded", "System", "cpu_seconds", "fleet", "latency", "onboarding_yaml"]
__all__ += ["workload"]

T = TypeVar("T")

FAIL_EMAIL = {"errors": {"SendTemplate": {"code": "INVALID_ARGUMENT", "rate": 1.0}}}


def server_cpu(system: System) -> float:
    return sum(map(cpu_seconds, system.pids))


async def with_cost(
    meter: PgMeter | None, phase: Awaitable[T], workflows: int
) -> tuple[T, Cost | None]:
    """The phase's result, and what it cost PostgreSQL when metered (settled readings before
    and after, so every backend's counts are in)."""
    if meter is None:
        return await phase, None
    before = await meter.settled()
    started = time.perf_counter()
    result = await phase
    elapsed = time.perf_counter() - started
    return result, await meter.cost(before, await meter.settled(), workflows, elapsed)


async def systems_rounds(
    args: argparse.Namespace, stack: ExitStack, services: Fleet, sqlite: Path
) -> dict[str, Any]:
    """Scenarios (a) to (e): every system, interleaved round by round."""
    endpoints = services.endpoints
    yaml = onboarding_yaml(endpoints)
    stores = {"maestro-serve-sqlite": f"sqlite:///{sqlite}"}
    postgres = stack.enter_context(postgres_database())
    meter: PgMeter | None = None
    if postgres is not None:
        stores["maestro-serve-postgres"] = postgres
        meter = PgMeter(POSTGRES_ADMIN, postgres)
        await meter.open()
    systems: dict[str, System] = {
        "direct-aiohttp": Direct(endpoints, "aiohttp"),
        "direct-httpx": Direct(endpoints, "httpx"),
        "maestro-embedded": Embedded(yaml),
    }
    for name, store in stores.items():
        flags, metrics = metrics_flags()
        address, pid = stack.enter_context(maestro_serve(store, *flags))
        systems[name] = Served(address, pid, yaml)
        # Item 6: a client of the same server that asks for the outcome alone.
        systems[f"{name}{OUTCOME_ONLY}"] = Served(address, pid, yaml, outcome_only=True)
        if meter is not None and store == postgres:
            meter.metrics.append(metrics)
    names = list(systems)
    lat: dict[str, list[float]] = {name: [] for name in names}
    lat_cpu: dict[str, list[float]] = {name: [] for name in names}
    comp: dict[str, list[float]] = {name: [] for name in names}
    thr: dict[int, dict[str, list[dict[str, float]]]] = {
        c: {name: [] for name in names} for c in (32, 128)
    }
    costs: dict[int, list[Cost]] = {1: [], 128: []}
    for name, system in systems.items():  # warm up channels, schemas and connection pools
        await warm_up(system.run, system.pids, f"{name}@warm", services)
    executions = args.executions
    for round_ in range(args.rounds):
        print(f"round {round_ + 1} of {args.rounds}", file=sys.stderr)
        for name, system in systems.items():
            metered = meter if name == "maestro-serve-postgres" else None
            cpu = server_cpu(system)
            samples, cost = await with_cost(
                metered, latency(system.run, f"{name}@lat", executions), executions
            )
            lat[name] += samples
            lat_cpu[name].append((server_cpu(system) - cpu) / executions * 1000)
            for concurrency in (32, 128):
                run = throughput(
                    [system.run],
                    system.pids,
                    prefix=f"{name}@c{concurrency}",
                    count=executions,
                    concurrency=concurrency,
                    services=services,
                )
                figures, cost128 = await with_cost(
                    metered if concurrency == 128 else None, run, executions
                )
                thr[concurrency][name].append(figures)
                if cost128 is not None:
                    costs[128].append(cost128)
            if cost is not None:
                costs[1].append(cost)
        services.set_faults("email", FAIL_EMAIL)
        for name, system in systems.items():
            comp[name] += await latency(
                system.run, f"{name}@comp", executions // 4, expect="COMPENSATED"
            )
        services.set_faults("email", {})
    for system in systems.values():
        await system.close()
    if meter is not None:
        await meter.close()
    print("growth", file=sys.stderr)
    growth = await growth_per_step(endpoints["billing_service"], executions)
    return summarize(names, lat, lat_cpu, comp, thr, costs, growth) | {
        "downstream_effects": effects_by_system(services, names),
        "outcome_only_streams": {
            name: {"streams": system.streams, "unasked_events": system.unasked}
            for name, system in systems.items()
            if isinstance(system, Served) and system.event_types
        },
    }


async def growth_per_step(endpoint: str, executions: int) -> dict[int, float]:
    """Seconds per step of the embedded engine for 1, 4, 16 and 64 sequential steps,
    interleaved in small batches, so a drift of the machine or of the services (their ledgers
    grow) does not favour one length."""
    lengths = (1, 4, 16, 64)
    engines = {n: Embedded(growth_yaml(endpoint, n)) for n in lengths}
    per_step: dict[int, list[float]] = {n: [] for n in lengths}
    for embedded in engines.values():
        await latency(embedded.run, "growth@warm", 5)
    for _ in range(10):
        for n, embedded in engines.items():
            samples = await latency(embedded.run, f"growth@{n}", max(5, executions // 20))
            per_step[n] += [s / n for s in samples]
    for embedded in engines.values():
        await embedded.close()
    return {n: statistics.median(samples) for n, samples in per_step.items()}


def median_cost(costs: list[Cost]) -> dict[str, Any]:
    """The median of each figure over the rounds (WAL of this database: None when unknown)."""
    fields = costs[0].as_dict()
    return {
        key: None
        if any(c.as_dict()[key] is None for c in costs)
        else statistics.median(c.as_dict()[key] for c in costs)
        for key in fields
    }


def summarize(  # noqa: PLR0917 - one call site, every part of the results
    names: list[str],
    lat: dict[str, list[float]],
    lat_cpu: dict[str, list[float]],
    comp: dict[str, list[float]],
    thr: dict[int, dict[str, list[dict[str, float]]]],
    costs: dict[int, list[Cost]],
    growth: dict[int, float],
) -> dict[str, Any]:
    p50 = {name: statistics.median(samples) for name, samples in lat.items()}
    throughputs = {c: {n: median_of(thr[c][n]) for n in names} for c in thr}
    return {
        "latency": {
            name: {
                "p50_ms": p50[name] * 1000,
                "p99_ms": pct(lat[name], 0.99) * 1000,
                "ratio_to_aiohttp": p50[name] / p50["direct-aiohttp"],
                "added_ms_per_step": (p50[name] - p50["direct-aiohttp"]) * 1000 / STEPS,
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
                    "ratio_to_httpx": values["workflows_per_s"]
                    / per_system["direct-httpx"]["workflows_per_s"],
                }
                for name, values in per_system.items()
            }
            for c, per_system in throughputs.items()
        },
        "server_cpu_ms_per_workflow": {
            name: {
                "1": statistics.median(lat_cpu[name]),
                "128": throughputs[128][name]["server_cpu_ms_per_workflow"],
            }
            for name in names
            if "server_cpu_ms_per_workflow" in throughputs[128][name]
        },
        "postgres_cost": {str(c): median_cost(v) for c, v in costs.items() if v},
        "growth_ms_per_step": {str(k): v * 1000 for k, v in growth.items()},
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        services = stack.enter_context(fleet())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if not args.scale_only:
            results |= await systems_rounds(args, stack, services, folder / "bench.db")
            if args.scale_out:
                print("scale-out", file=sys.stderr)
                yaml = onboarding_yaml(services.endpoints)
                out = await scale_out(services, yaml, args.executions, 128)
                if out is not None:
                    results["scale_out"] = out
            print("start-up", file=sys.stderr)  # item 7, against the services above
            results["startup"] = measure_startup(services.endpoints)
        if args.scale:
            print(f"scale: {args.scale} executions", file=sys.stderr)
            results["scale"] = await scale(
                services, args.scale, folder / "scale.db", args.scale_starters
            )
        if args.signals:
            print(f"scale-signals: {args.signals} executions waiting", file=sys.stderr)
            results["scale_signals"] = await scale_signals(
                args.signals, args.scale_starters, args.scale_starters
            )
    results["targets"] = [t.as_dict() for t in targets(results)]
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # Other work on the machine skews every figure: the 1-minute load at start and end.
        "load_average": [load_before, os.getloadavg()[0]],
    }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="also run item 8 with this many executions in flight (default: skipped, 10000 "
        "with --scale-only)",
    )
    parser.add_argument(
        "--signals",
        type=int,
        default=None,
        help="also run issue 16's item 5 with this many executions waiting for a signal "
        "(default: skipped, 10000 with --scale-only)",
    )
    parser.add_argument(
        "--scale-only", action="store_true", help="the scale scenarios alone (bench-scale)"
    )
    parser.add_argument(
        "--scale-starters", type=int, default=64, help="start (and signal) calls at a time"
    )
    parser.add_argument(
        "--no-scale-out", dest="scale_out", action="store_false", help="skip item 4"
    )
    args = parser.parse_args()
    if args.scale is None:
        args.scale = 10_000 if args.scale_only else 0
    if args.signals is None:
        args.signals = 10_000 if args.scale_only else 0
    configure_logging(level="WARNING")  # as in production: per-attempt debug lines filtered
    results = asyncio.run(main(args))
    out = ROOT / "bench" / "results" / ("scale.json" if args.scale_only else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
