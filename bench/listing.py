"""ListExecutions over many stored executions: one page of 50 should cost what it costs over few.

Fills a store (SQLite, and PostgreSQL when reachable) with 20 and then 20,000 executions, each
with a short log, serves it in-process and times ListExecutions pages of 50 through gRPC: the
first page and pages deep in the listing (followed by token). Prints the medians.
Usage: python bench/listing.py [--executions 20000] [--calls 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
from maestro_server.api.server import OrchestratorServer, ServerSettings
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import (
    ExecutionRecord,
    ExecutionSource,
    Store,
    append_event,
)
from maestro_server.store.open import close_store, open_store
from tests.postgres import fresh_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
YAML = "name: w\nsteps:\n" + "".join(
    f"  - {{id: s{n}, service: svc, method: Do}}\n" for n in range(8)
)


async def fill(store: Store, first: int, count: int) -> None:
    """`count` executions, numbered from `first`, each with a three-event log."""

    async def one(n: int) -> None:
        execution_id = f"ex-{n:06}"
        record = ExecutionRecord(
            execution_id,
            "w",
            "1",
            "h",
            {"user": n, "email": f"user{n}@example.com"},
            T0 + timedelta(seconds=n),
            tuple(f"s{k}" for k in range(8)),
            ExecutionSource(YAML, "w.yaml", {}),
        )
        await store.create_execution(record)
        events = [
            (EventType.WORKFLOW_STARTED, ""),
            (EventType.STEP_STARTED, "s0"),
            (EventType.STEP_SUCCEEDED, "s0"),
        ]
        for sequence, (kind, step) in enumerate(events, 1):
            output = {"id": n, "note": "x" * 200} if kind is EventType.STEP_SUCCEEDED else None
            await append_event(
                store,
                Event(
                    execution_id,
                    sequence,
                    T0 + timedelta(seconds=n, milliseconds=sequence),
                    kind,
                    ExecutionState.RUNNING,
                    step,
                    attempt=1 if step else 0,
                    output=output,
                ),
            )

    for start in range(first, first + count, 200):
        await asyncio.gather(*(one(n) for n in range(start, min(start + 200, first + count))))


async def timed_pages(address: str, calls: int) -> tuple[float, float]:
    """Median milliseconds of the first page, and of pages followed by token."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rpc.OrchestratorStub(channel)
        first, deeper = [], []
        token = ""
        for _ in range(calls):
            start = time.perf_counter()
            await stub.ListExecutions(pb.ListExecutionsRequest(page_size=50))
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            reply = await stub.ListExecutions(
                pb.ListExecutionsRequest(page_size=50, page_token=token)
            )
            deeper.append(time.perf_counter() - start)
            token = reply.next_page_token
    return statistics.median(first) * 1000, statistics.median(deeper) * 1000


async def measure(url: str, sizes: list[int], calls: int) -> list[tuple[int, float, float]]:
    """Fill the store up to each size in turn and time the pages."""
    store = await open_store(url, lease=60)
    settings = ServerSettings(host="127.0.0.1", port=0, stop_signals=())
    server = OrchestratorServer(settings, store)
    port = await server.start()
    results, stored = [], 0
    try:
        for size in sizes:
            await fill(store, stored, size - stored)
            stored = size
            results.append((size, *await timed_pages(f"127.0.0.1:{port}", calls)))
    finally:
        await server.stop()
        await close_store(store)
    return results


def stores(stack: ExitStack, folder: str) -> Iterator[tuple[str, str]]:
    """The stores to measure."""
    yield "sqlite", f"sqlite:///{folder}/listing.db"
    try:
        yield "postgres", stack.enter_context(fresh_database("maestro_listing"))
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    print("| store | executions | first page (ms) | next pages (ms) |")
    print("|---|---|---|---|")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        for name, url in stores(stack, folder):
            for size, first, deeper in asyncio.run(measure(url, [20, args.executions], args.calls)):
                print(f"| {name} | {size} | {first:.2f} | {deeper:.2f} |")


if __name__ == "__main__":
    main()
