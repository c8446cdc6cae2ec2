"""What waiting costs: many executions waiting for a signal in one process, then signalled.

Starts N executions of a one-step workflow (`wait: {signal: approved, timeout: 24h}`) through
an ExecutionManager on a store (memory, or a scratch SQLite file), waits until every one
waits, then reports the process's RSS growth per waiting execution and the CPU it used over
two idle seconds (a waiting execution should use none), then signals them all and times that.
Usage: python bench/waiting.py [--executions 10000] [--store memory|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maestro_server.definition import load_workflow
from maestro_server.engine.manager import ExecutionManager
from maestro_server.logs import configure_logging
from maestro_server.store.base import Store
from maestro_server.store.memory import MemoryStore
from maestro_server.store.sqlite import SqliteStore
from maestro_server.transports.registry import Transports

WORKFLOW = load_workflow("""\
name: approval
services:
  unused: {type: grpc, endpoint: "127.0.0.1:9"}
steps:
  - id: approved
    wait: {signal: approved, timeout: 24h}
    output: approval
""")


def rss_mib() -> float:
    """This process's resident memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def measure(store: Store, count: int) -> dict[str, float]:
    async with Transports() as transports:
        manager = ExecutionManager(store, transports, max_concurrent=count + 1)
        before = rss_mib()
        started = time.perf_counter()
        for n in range(count):
            await manager.start(WORKFLOW, {}, f"wait-{n}")
        while manager.waiting < count:
            await asyncio.sleep(0.05)
        start_seconds = time.perf_counter() - started
        waiting = rss_mib()
        cpu = time.process_time()
        await asyncio.sleep(2)
        idle_cpu_ms = (time.process_time() - cpu) * 1000
        signalled = time.perf_counter()
        for n in range(count):
            await manager.signal(f"wait-{n}", "approved", {"n": n})
        while manager.running:
            await asyncio.sleep(0.05)
        return {
            "executions": count,
            "rss_growth_mib": round(waiting - before, 1),
            "kib_per_waiting_execution": round((waiting - before) * 1024 / count, 1),
            "idle_cpu_ms_over_2s": round(idle_cpu_ms, 1),
            "start_all_s": round(start_seconds, 1),
            "signal_all_s": round(time.perf_counter() - signalled, 1),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory() as scratch:
        store: Store = MemoryStore()
        if args.store == "sqlite":
            store = await SqliteStore(Path(scratch) / "maestro.db").open()
        try:
            result = await measure(store, args.executions)
        finally:
            await store.aclose()
    print(json.dumps({"store": args.store, **result}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
