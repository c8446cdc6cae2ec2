"""Item 8, scale: many executions in flight at once, each waiting 2 s on its one step.

Started through the SDK (`MaestroClient.start`, one call per execution, `starters` calls at a
time) against `maestro serve` + SQLite; the step is billing's CancelSubscription, which the
service delays by 2 s (its admin API's delay fault). Reports the server's peak RSS (VmHWM from
/proc), how long starting took, each execution's duration from its start request (the wall clock
read here just before the call; the server runs on the same machine, so its event times are on
the same clock) to its end (its terminal event's time), the target's measure, and from its
creation in the server to its end; and for the slowest one where its time went (its events'
offsets from its creation), which says whether starting, the step or finishing was slow.

Opt-in (`make bench-scale`, or `--scale N` with `make bench`): 10,000 executions take a while.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from measure import pct
from processes import cpu_seconds, maestro_serve, peak_rss_mib

from maestro_client import ExecutionState, MaestroClient

if TYPE_CHECKING:
    from demo_services.fleet import Fleet

STEP_SECONDS = 2.0


def scale_yaml(endpoint: str) -> str:
    return (
        f'name: scale\nservices:\n  billing: {{type: grpc, endpoint: "{endpoint}"}}\n'
        "steps:\n  - {id: wait, service: billing, method: CancelSubscription, timeout: 30s,"
        ' input: {subscription_id: "{{ .input.n }}"}}\n'
    )


async def scale(services: Fleet, executions: int, store: Path, starters: int) -> dict[str, Any]:
    """`executions` in flight at once on a fresh SQLite store at `store`."""
    services.set_faults("billing", {"delays": {"CancelSubscription": {"seconds": STEP_SECONDS}}})
    yaml = scale_yaml(services.endpoints["billing_service"])
    limit = str(executions * 2)
    try:
        with maestro_serve(f"sqlite:///{store}", "--max-concurrent-executions", limit) as (
            address,
            pid,
        ):
            async with MaestroClient(address) as client:
                cpu = cpu_seconds(pid)
                queue = list(range(executions))
                requested: dict[str, datetime] = {}

                async def starter() -> None:
                    while queue:
                        n = queue.pop()
                        requested[f"scale@{n}"] = datetime.now(UTC)
                        await client.start(yaml, {"n": f"s{n}"}, execution_id=f"scale@{n}")

                started = time.perf_counter()
                await asyncio.gather(*(starter() for _ in range(starters)))
                all_started = time.perf_counter() - started
                await _until_all_ended(client, deadline=time.monotonic() + 120 + executions / 20)
                wall = time.perf_counter() - started
                server_cpu = cpu_seconds(pid) - cpu
                rss = peak_rss_mib(pid)
                durations: dict[str, float] = {}
                in_server: list[float] = []
                first_created = None
                async for execution in client.list("scale", page_size=1000):
                    assert execution.state == ExecutionState.COMPLETED, execution
                    assert execution.end_time and execution.create_time
                    span = execution.end_time - requested[execution.execution_id]
                    durations[execution.execution_id] = span.total_seconds()
                    in_server.append((execution.end_time - execution.create_time).total_seconds())
                    if first_created is None or execution.create_time < first_created:
                        first_created = execution.create_time
                slowest = max(durations, key=durations.__getitem__)
                slowest_at = (await client.get(slowest)).create_time
                assert first_created is not None
                assert slowest_at is not None
                timeline = [
                    {
                        "event": event.type.name,
                        "s_after_create": (event.time - slowest_at).total_seconds(),
                    }
                    async for event in client.watch(slowest)
                    if event.time is not None
                ]
    finally:
        services.set_faults("billing", {})
    assert len(durations) == executions, f"{len(durations)} of {executions} executions listed"
    values = list(durations.values())
    return {
        "executions": executions,
        "starters": starters,
        "peak_rss_mib": rss,
        "seconds_to_start_all": all_started,
        "starts_per_s": executions / all_started,
        "seconds_until_all_finished": wall,
        "server_cpu_ms_per_execution": server_cpu / executions * 1000,
        "execution_p50_s": statistics.median(values),
        "execution_p99_s": pct(values, 0.99),
        "execution_max_s": max(values),
        "created_to_end_p50_s": statistics.median(in_server),
        "created_to_end_p99_s": pct(in_server, 0.99),
        "created_to_end_max_s": max(in_server),
        "slowest": {
            "execution_id": slowest,
            "created_s_after_first": (slowest_at - first_created).total_seconds(),
            "requested_s_before_created": (slowest_at - requested[slowest]).total_seconds(),
            "events": timeline,
        },
    }


async def _until_all_ended(client: MaestroClient, deadline: float) -> None:
    unfinished = [ExecutionState.PENDING, ExecutionState.RUNNING]
    while time.monotonic() < deadline:
        async for _ in client.list("scale", unfinished, page_size=1):
            break
        else:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("scale: executions still running at the deadline")
