"""Issue 16, item 5, the cost of waiting: many executions waiting for a signal, a SIGKILL of
`maestro serve` and a restart in the middle, then every one signalled.

Through `maestro serve` + SQLite and the SDK: starts N executions of a one-step workflow
(`wait: {signal: approved, timeout: 24h}`, its output the signal's payload), `starters` calls
at a time, and waits until every one's STEP_WAITING is durable (counted in the store's file, the
truth a crash leaves; polled with a deadline). While they wait it reads the server's RSS and
threads, and the CPU it uses over a few idle seconds (a waiting execution should use none: the
same as with one waiting, read after the first start).
Then SIGKILL, a restart on the same file, and the time until the server serves again, which it
does once every unfinished execution is resumed; RSS and idle CPU again. Then every execution
is signalled through the SDK (`signalers` at a time, each its own payload), and every one must
complete with that payload as its output.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from processes import cpu_seconds, peak_rss_mib

from maestro_client import ExecutionState, MaestroClient, output
from tests.chaos.harness import Server

SIGNAL = "approved"
IDLE_SECONDS = 10.0
"""Two lease renewals of `maestro serve` (every 5 s by default): their cost is counted."""
WAITING_YAML = f"""\
name: waiting
services:
  unused: {{type: grpc, endpoint: "127.0.0.1:9"}}
steps:
  - id: approval
    wait: {{signal: {SIGNAL}, timeout: 24h}}
    output: approval
output: "{{{{ .approval }}}}"
"""


def proc_status(pid: int, field: str) -> int:
    """A number from /proc/PID/status (VmRSS in KiB, Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def rss_mib(pid: int) -> float:
    return proc_status(pid, "VmRSS") / 1024


def durable_waits(database: Path) -> int:
    """Executions whose STEP_WAITING is committed, read from the file (WAL: beside the server)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        query = "SELECT count(*) FROM events WHERE payload LIKE '%\"STEP_WAITING\"%'"
        return int(db.execute(query).fetchone()[0])


async def until(
    what: str, done: Callable[[], Awaitable[bool]], deadline: float, every: float = 0.25
) -> float:
    """Poll `done` until it holds; seconds it took. SystemExit at the deadline."""
    started = time.perf_counter()
    while not await done():
        if time.monotonic() > deadline:
            raise SystemExit(f"scale-signals: {what} not reached by the deadline")
        await asyncio.sleep(every)
    return time.perf_counter() - started


async def serving(address: str) -> bool:
    """Whether the server says SERVING: it does once every unfinished execution is resumed."""
    async with grpc.aio.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def bounded(count: int, at_once: int, call: Callable[[int], Awaitable[Any]]) -> float:
    """`call(0)` … `call(count - 1)`, `at_once` at a time; the seconds it took."""
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(at_once)))
    return time.perf_counter() - started


def idle_cpu_ms_per_s(pid: int) -> float:
    """CPU the server uses over IDLE_SECONDS while nothing is asked of it, per second."""
    before = cpu_seconds(pid)
    time.sleep(IDLE_SECONDS)
    return (cpu_seconds(pid) - before) / IDLE_SECONDS * 1000


def payload(n: int) -> dict[str, Any]:
    return {"n": n, "approved_by": f"bench-{n}"}


async def scale_signals(executions: int, starters: int, signalers: int) -> dict[str, Any]:
    """The scenario on a fresh SQLite file; its figures."""
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "signals.db"
        server = Server(
            f"sqlite:///{database}", Path(folder) / "server.log", "--log-level", "WARNING"
        )
        await asyncio.to_thread(server.start)
        try:
            return await _run(server, database, executions, starters, signalers)
        finally:
            server.stop()


async def _run(
    server: Server, database: Path, executions: int, starters: int, signalers: int
) -> dict[str, Any]:
    assert server.process is not None
    pid = server.process.pid
    deadline = time.monotonic() + 120 + executions / 10
    await until("serving", lambda: serving(server.address), deadline)
    figures: dict[str, Any] = {"executions": executions, "starters": starters}
    async with MaestroClient(server.address) as client:

        async def start(n: int) -> None:
            await client.start(WAITING_YAML, {}, execution_id=f"wait@{n}")

        await start(executions - 1)  # the first start sets up what any start uses (its threads)
        figures["threads_before"] = proc_status(pid, "Threads")
        figures["rss_before_mib"] = rss_mib(pid)
        figures["idle_cpu_ms_per_s_one_waiting"] = await asyncio.to_thread(idle_cpu_ms_per_s, pid)
        figures["seconds_to_start_all"] = await bounded(executions - 1, starters, start)

        async def all_waiting() -> bool:
            return await asyncio.to_thread(durable_waits, database) >= executions

        figures["seconds_until_all_waiting"] = await until(
            "every STEP_WAITING", all_waiting, deadline
        )
        figures["rss_waiting_mib"] = rss_mib(pid)
        figures["threads_waiting"] = proc_status(pid, "Threads")
        figures["idle_cpu_ms_per_s_waiting"] = await asyncio.to_thread(idle_cpu_ms_per_s, pid)
        figures["peak_rss_before_kill_mib"] = peak_rss_mib(pid)

        await asyncio.to_thread(server.kill)
        restarted = time.perf_counter()
        await asyncio.to_thread(server.start)
        assert server.process is not None
        pid = server.process.pid
        await until("serving after the restart", lambda: serving(server.address), deadline, 0.05)
        figures["seconds_to_resume_after_kill"] = time.perf_counter() - restarted
        figures["rss_after_restart_mib"] = rss_mib(pid)
        figures["idle_cpu_ms_per_s_after_restart"] = await asyncio.to_thread(idle_cpu_ms_per_s, pid)

        signalled = time.perf_counter()

        async def signal(n: int) -> None:
            await client.signal_execution(f"wait@{n}", SIGNAL, payload(n), signal_id=f"sig@{n}")

        figures["seconds_to_signal_all"] = await bounded(executions, signalers, signal)
        figures["signals_per_s"] = executions / figures["seconds_to_signal_all"]

        async def all_ended() -> bool:
            unfinished = [ExecutionState.PENDING, ExecutionState.RUNNING]
            async for _ in client.list("waiting", unfinished, page_size=1):
                return False
            return True

        await until("every execution's end", all_ended, deadline)
        figures["seconds_from_first_signal_to_all_completed"] = time.perf_counter() - signalled
        figures["peak_rss_after_restart_mib"] = peak_rss_mib(pid)
        right = 0
        async for execution in client.list("waiting", page_size=1000):
            n = int(execution.execution_id.removeprefix("wait@"))
            if execution.state == ExecutionState.COMPLETED and output(execution) == payload(n):
                right += 1
        figures["completed_with_their_payload"] = right
    return figures
