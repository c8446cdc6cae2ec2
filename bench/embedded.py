"""The embedded engine against the direct aiohttp client, interleaved: its tax per step.

A quick loop for work on the engine's call path (`make bench` measures every system): p50 at
c=1 and CPU per workflow at c=1 and c=32 for the onboarding workflow (4 calls) against the real
example services, rounds interleaved, medians reported. `--profile PREFIX` runs each system
once more under cProfile and writes PREFIX-<system>.prof (read with `python -m pstats`).

`--loop uvloop` runs it all on uvloop (not a dependency: have it importable).

Usage: python bench/embedded.py [--rounds 5] [--executions 300] [--profile /tmp/calls]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # bench/ is not a package: run.py beside this file
sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "services"))

from demo_services.fleet import fleet  # noqa: E402
from run import (  # noqa: E402
    Direct,
    Embedded,
    System,
    cpu_seconds,
    latency,
    onboarding_yaml,
    workload,
)

from maestro_server.logs import configure_logging  # noqa: E402

STEPS = 4


async def cpu_per_workflow(system: System, prefix: str, count: int, concurrency: int) -> float:
    """CPU seconds of this process per workflow, `concurrency` at a time."""
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            execution_id, data = workload(prefix, queue.pop())
            outcome = await system.run(execution_id, data)
            if outcome != "COMPLETED":
                raise SystemExit(f"{execution_id} ended {outcome}")

    before = cpu_seconds(os.getpid())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (cpu_seconds(os.getpid()) - before) / count


async def main(rounds: int, executions: int, profile: str | None) -> None:
    with fleet() as services:
        systems: dict[str, System] = {
            "direct-aiohttp": Direct(services.endpoints, "aiohttp"),
            "maestro-embedded": Embedded(onboarding_yaml(services.endpoints)),
        }
        for name, system in systems.items():
            await latency(system.run, f"{name}@warm", 50)
        p50: dict[str, list[float]] = {name: [] for name in systems}
        cpu1: dict[str, list[float]] = {name: [] for name in systems}
        cpu32: dict[str, list[float]] = {name: [] for name in systems}
        for round_ in range(rounds):
            print(f"round {round_ + 1} of {rounds}", file=sys.stderr)
            for name, system in systems.items():
                before = cpu_seconds(os.getpid())
                samples = await latency(system.run, f"{name}@lat", executions)
                cpu1[name].append((cpu_seconds(os.getpid()) - before) / executions)
                p50[name].append(statistics.median(samples))
                cpu32[name].append(await cpu_per_workflow(system, f"{name}@c32", executions, 32))
        for name, system in systems.items() if profile is not None else ():
            profiler = cProfile.Profile()
            profiler.enable()
            started = time.perf_counter()
            await latency(system.run, f"{name}@profile-c1", executions)
            await cpu_per_workflow(system, f"{name}@profile-c32", executions, 32)
            profiler.disable()
            profiler.dump_stats(f"{profile}-{name}.prof")
            print(f"{name} profiled in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        for system in systems.values():
            await system.close()
    print("| system | p50 ms c=1 | CPU ms/wf c=1 | CPU ms/wf c=32 |")
    print("|---|---|---|---|")
    for name in systems:
        print(
            f"| {name} | {statistics.median(p50[name]) * 1000:.3f} "
            f"| {statistics.median(cpu1[name]) * 1000:.3f} "
            f"| {statistics.median(cpu32[name]) * 1000:.3f} |"
        )
    added = statistics.median(p50["maestro-embedded"]) - statistics.median(p50["direct-aiohttp"])
    print(f"\nadded p50 per step: {added / STEPS * 1000:.3f} ms (target <= 0.3)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument(
        "--profile", help="write cProfile stats of each system to PREFIX-<system>.prof"
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # as in production: per-attempt debug lines filtered
    if args.loop == "uvloop":
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # only when asked for

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args.rounds, args.executions, args.profile))
