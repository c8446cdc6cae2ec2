"""What streaming an execution's events costs the server, per event.

Serves a store in-process (gRPC and the HTTP face) and measures the server process's CPU time
while a client in another process streams one execution's events:

- replay: the log already holds N events; WatchExecution from 0 to the end;
- live: a client watches while this process appends N events one after the other; the CPU of
  the same appends without a watcher is subtracted, so what is left is the streaming.

Both over gRPC and over Connect (the HTTP face). Prints microseconds of server CPU per event.
Usage: python bench/stream_cost.py [--events 2000] [--stores memory,sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maestro_server.api.server import OrchestratorServer, ServerSettings
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import ExecutionRecord, ExecutionSource, Store, append_event
from maestro_server.store.open import close_store, open_store
from tests.postgres import fresh_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
YAML = "name: w\nsteps:\n  - {id: s0, service: svc, method: Do}\n"

# The client: streams one execution's events to the end and prints how many it got.
_GRPC_CLIENT = """
import sys, grpc
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
channel = grpc.insecure_channel(sys.argv[1])
request = pb.WatchExecutionRequest(execution_id=sys.argv[2])
print("ready", flush=True)
print(sum(1 for _ in rpc.OrchestratorStub(channel).WatchExecution(request)), flush=True)
"""
_CONNECT_CLIENT = """
import sys, httpx
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
body = pb.WatchExecutionRequest(execution_id=sys.argv[2]).SerializeToString()
url = f"http://{sys.argv[1]}/maestro.v1.Orchestrator/WatchExecution"
headers = {"content-type": "application/connect+proto", "connect-protocol-version": "1"}
count, buffer = 0, b""
print("ready", flush=True)
with httpx.stream("POST", url, content=b"\\0" + len(body).to_bytes(4, "big") + body,
                  headers=headers, timeout=60) as reply:
    for chunk in reply.iter_bytes():
        buffer += chunk
        while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[1:5], "big"):
            size = int.from_bytes(buffer[1:5], "big")
            if not buffer[0] & 2:
                count += 1
            buffer = buffer[5 + size:]
print(count, flush=True)
"""


def event(execution_id: str, sequence: int, last: int) -> Event:
    """Event `sequence` of a log of `last` events, STEP_SUCCEEDED with a small output."""
    kind = EventType.WORKFLOW_COMPLETED if sequence == last else EventType.STEP_SUCCEEDED
    if sequence == 1:
        kind = EventType.WORKFLOW_STARTED
    return Event(
        execution_id,
        sequence,
        T0 + timedelta(milliseconds=sequence),
        kind,
        ExecutionState.COMPLETED if sequence == last else ExecutionState.RUNNING,
        "" if kind is not EventType.STEP_SUCCEEDED else "s0",
        attempt=1 if kind is EventType.STEP_SUCCEEDED else 0,
        output={"id": sequence, "note": "x" * 100} if kind is EventType.STEP_SUCCEEDED else None,
    )


async def new_execution(store: Store, execution_id: str) -> None:
    """An empty execution of a one-step workflow."""
    record = ExecutionRecord(
        execution_id, "w", "1", "h", {}, T0, ("s0",), ExecutionSource(YAML, "w.yaml", {})
    )
    await store.create_execution(record)


async def append_all(store: Store, execution_id: str, count: int) -> float:
    """Append `count` events one by one; the CPU seconds it took."""
    start = time.process_time()
    for sequence in range(1, count + 1):
        await append_event(store, event(execution_id, sequence, count))
    return time.process_time() - start


async def stream(client: str, address: str, execution_id: str, count: int) -> float:
    """Run the client in another process; this process's CPU seconds while it streamed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", client, address, execution_id, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    await process.stdout.readline()  # imports done
    start = time.process_time()
    got = int(await process.stdout.readline())
    spent = time.process_time() - start
    await process.wait()
    assert got == count, f"streamed {got} of {count} events"
    return spent


async def live(store: Store, client: str, address: str, execution_id: str, count: int) -> float:
    """Server CPU seconds of appends with a watcher attached (from before the first)."""
    await new_execution(store, execution_id)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", client, address, execution_id, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    await process.stdout.readline()
    await asyncio.sleep(1.0)  # the watch is open (it waits for the first event)
    start = time.process_time()
    for sequence in range(1, count + 1):
        await append_event(store, event(execution_id, sequence, count))
    got = int(await process.stdout.readline())
    spent = time.process_time() - start
    await process.wait()
    assert got == count, f"streamed {got} of {count} events"
    return spent


async def measure(url: str, count: int, rounds: int) -> dict[str, float]:
    """Microseconds of server CPU per event, by path (medians of `rounds`)."""
    store = await open_store(url, lease=60)
    settings = ServerSettings(host="127.0.0.1", port=0, stop_signals=(), http_port=0)
    server = OrchestratorServer(settings, store)
    port = await server.start()
    grpc_address, http_address = f"127.0.0.1:{port}", f"127.0.0.1:{server.http_port}"
    results: dict[str, list[float]] = {}
    try:
        for r in range(rounds):
            await new_execution(store, f"plain-{r}")
            appends = await append_all(store, f"plain-{r}", count)
            results.setdefault("append only", []).append(appends)
            for name, client, address in (
                ("grpc", _GRPC_CLIENT, grpc_address),
                ("connect", _CONNECT_CLIENT, http_address),
            ):
                spent = await stream(client, address, f"plain-{r}", count)
                results.setdefault(f"replay {name}", []).append(spent)
                spent = await live(store, client, address, f"live-{name}-{r}", count)
                results.setdefault(f"live {name}", []).append(spent - appends)
    finally:
        await server.stop()
        await close_store(store)
    return {k: sorted(v)[len(v) // 2] / count * 1e6 for k, v in results.items()}


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="memory,sqlite,postgres")
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        for name in args.stores.split(","):
            if name == "memory":
                url = "memory"
            elif name == "sqlite":
                url = f"sqlite:///{folder}/stream.db"
            else:
                try:
                    url = stack.enter_context(fresh_database("maestro_stream"))
                except psycopg.OperationalError as exc:
                    print(f"PostgreSQL skipped: {exc}")
                    continue
            found = asyncio.run(measure(url, args.events, args.rounds))
            print(f"{name}: " + ", ".join(f"{k} {v:.0f} µs" for k, v in found.items()))


if __name__ == "__main__":
    main()
