"""Chaos: the onboarding saga under faults, crashes and reconnecting watchers, checked.

Runs many executions of an onboarding workflow through `maestro serve` against the real
example services, injecting from a seeded schedule: downstream errors (retryable and not) at
5-30 % rates, added latency past a step's deadline, HTTP connection resets, gRPC connections
cut mid-call (billing sits behind a TCP proxy), a black-holed endpoint, slow and failing
compensations, and SIGKILL of the server at random moments followed by a restart on the same
store. Each execution is watched live, through the crashes, by a watcher that reconnects. Afterwards every execution is checked against its event log and
the services' own ledgers (see `check`).

    python -m tests.chaos.harness --executions 2000 --store sqlite --seed 7

prints a summary table; the exit status is 1 when an invariant was violated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maestro_client import EventType, MaestroClient, UnavailableError, WorkflowEvent

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "services"))
from demo_services.fleet import Fleet, fleet  # noqa: E402

from tests.api.proxy import cuttable_proxy  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402

COMPENSABLE = ("setup_subscription", "add_to_crm")  # the steps with a `compensate`, in order
TERMINAL = {
    EventType.WORKFLOW_COMPLETED,
    EventType.WORKFLOW_COMPENSATED,
    EventType.WORKFLOW_FAILED,
    EventType.WORKFLOW_CANCELLED,
}

WORKFLOW = """\
name: chaos_onboarding
x-breaker: &breaker {{open_duration: 300ms}}
x-retry: &retry {{max_attempts: 6, initial_backoff: 5ms, max_backoff: 100ms}}
x-undo: &undo {{max_attempts: 30, initial_backoff: 5ms, max_backoff: 100ms}}
services:
  auth_service: {{type: grpc, endpoint: "{auth_service}", circuit_breaker: *breaker}}
  billing_service: {{type: grpc, endpoint: "{billing_service}", circuit_breaker: *breaker}}
  crm_service: {{type: http, endpoint: "{crm_service}", circuit_breaker: *breaker}}
  email_service: {{type: grpc, endpoint: "{email_service}", circuit_breaker: *breaker}}
  audit_service: {{type: http, endpoint: "{audit_service}", circuit_breaker: *breaker}}
steps:
  - id: create_user
    service: auth_service
    method: CreateUser
    input: {{email: "{{{{ .input.email }}}}", password: "{{{{ .input.password }}}}"}}
    output: user
    retry: *retry
  - id: setup_subscription
    service: billing_service
    method: CreateSubscription
    input: {{user_id: "{{{{ .user.id }}}}", plan: "{{{{ .input.plan }}}}"}}
    output: subscription
    retry: *retry
    compensate:
      method: CancelSubscription
      input: {{subscription_id: "{{{{ .subscription.id }}}}"}}
      retry: *undo
  - id: add_to_crm
    service: crm_service
    method: POST /contacts
    input:
      user_id: "{{{{ .user.id }}}}"
      email: "{{{{ .input.email }}}}"
      subscription_tier: "{{{{ .subscription.tier }}}}"
    output: crm_contact
    retry: *retry
    compensate:
      method: "DELETE /contacts/{{{{ .crm_contact.id }}}}"
      retry: *undo
  # A black-holed endpoint: accepted connections, never an answer; tolerated.
  - id: audit
    service: audit_service
    method: POST /audit
    when: "{{{{ .input.audit }}}}"
    timeout: 150ms
    retry: {{max_attempts: 2, initial_backoff: 5ms}}
    continue_on_error: true
  - id: send_welcome_email
    service: email_service
    method: SendTemplate
    timeout: 300ms
    input:
      to: "{{{{ .input.email }}}}"
      template: welcome
      vars: {{name: "{{{{ .input.name }}}}", plan: "{{{{ .subscription.plan_name }}}}"}}
    retry: *retry
"""


# -- the schedule --------------------------------------------------------------------------


def fault_schedule(rng: random.Random) -> dict[str, dict[str, Any]]:
    """Each service's faults for one run, drawn from the seed."""

    def rate() -> float:
        return round(rng.uniform(0.05, 0.30), 3)

    def seed() -> int:
        return rng.randrange(2**31)

    return {
        "auth": {"seed": seed(), "errors": {"CreateUser": {"code": "UNAVAILABLE", "rate": rate()}}},
        "billing": {
            "seed": seed(),
            "errors": {
                "CreateSubscription": {"code": "UNAVAILABLE", "rate": rate()},
                "CancelSubscription": {"code": "UNAVAILABLE", "rate": rate()},
            },
            "delays": {"CancelSubscription": {"seconds": 0.05, "rate": rate()}},
        },
        "crm": {
            "seed": seed(),
            "errors": {
                "POST /contacts": {"code": rng.choice(["RESET", "HTTP_503"]), "rate": rate()},
                "DELETE /contacts": {"code": "HTTP_503", "rate": rate()},
            },
            "delays": {"DELETE /contacts": {"seconds": 0.05, "rate": rate()}},
        },
        "email": {
            "seed": seed(),
            # Not retryable: the saga compensates.
            "errors": {"SendTemplate": {"code": "INVALID_ARGUMENT", "rate": rate()}},
            # Past the step's 300 ms deadline: in doubt, retried under the same key.
            "delays": {"SendTemplate": {"seconds": 0.5, "rate": round(rng.uniform(0.02, 0.05), 3)}},
        },
    }


def failing_compensations(rng: random.Random) -> dict[str, Any]:
    """Compensations made to fail for good (not retryable) now and then."""
    return {"code": "FAILED_PRECONDITION", "rate": round(rng.uniform(0.01, 0.03), 3)}


# -- processes -----------------------------------------------------------------------------


@contextmanager
def black_hole() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=4096) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


class Server:
    """`maestro serve` on a fixed port and store, killed and restarted at will (the benchmark
    runs its servers with it too)."""

    def __init__(self, store: str, log: Path, *flags: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.store = store
        self.log = log
        self.flags = flags
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "maestro_server", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--store", self.store, "--log-format", "json"]
        command += ["--max-concurrent-executions", "100000", *self.flags]
        env = dict(os.environ, GRPC_VERBOSITY="ERROR")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=ROOT)
        with grpc.insecure_channel(self.address) as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)
            health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh store: a SQLite file, or a PostgreSQL database dropped afterwards (or the
    PostgreSQL URL given, as is)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'chaos.db'}"
        return
    if kind.startswith("postgresql://"):
        yield kind
        return
    with fresh_database("maestro_chaos") as url:
        yield url


# -- the run -------------------------------------------------------------------------------


@dataclass
class Report:
    """What a run did and found."""

    seed: int
    store: str
    executions: int
    crashes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    """Why executions ended COMPENSATION_FAILED (ids and numbers left out)."""
    asked_again: Counter[str] = field(default_factory=Counter)
    """Steps in doubt asked again under their key, by what the answer told."""
    seconds: float = 0.0

    def table(self) -> str:
        """The summary, as Markdown."""
        rows = [
            ("seed (replay with --seed)", str(self.seed)),
            ("store", self.store),
            ("executions", str(self.executions)),
            ("server crashes (SIGKILL + restart)", str(self.crashes)),
            *((f"fault: {kind}", str(n)) for kind, n in sorted(self.faults.items())),
            *((f"outcome: {state}", str(n)) for state, n in sorted(self.outcomes.items())),
            *((f"  because: {reason}", str(n)) for reason, n in self.reasons.most_common()),
            *((f"in doubt, asked again: {what}", str(n)) for what, n in self.asked_again.items()),
            ("invariant violations", str(len(self.violations))),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'':{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {name:{width}} | {value} |" for name, value in rows]
        return "\n".join(lines + [f"- {v}" for v in self.violations[:50]])


@asynccontextmanager
async def client(address: str) -> AsyncIterator[MaestroClient]:
    async with MaestroClient(address, reconnect_attempts=60) as connected:
        yield connected


async def until_started(maestro: MaestroClient, yaml: str, data: Any, execution_id: str) -> None:
    """Start an execution, retrying while the server is down (starts are idempotent by id)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            await maestro.start(yaml, data, execution_id=execution_id)
            return
        except UnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def watch_all(
    maestro: MaestroClient, execution_id: str, within: float = 120
) -> list[WorkflowEvent]:
    """Every event to the terminal one, following the SDK's reconnects through crashes.

    An execution that has not ended `within` seconds is stuck (a run nobody drives, while its
    server lives): the events seen by then are returned, and the check reports it.
    """
    events: list[WorkflowEvent] = []
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    after = events[-1].sequence if events else 0
                    async for event in maestro.watch(execution_id, after):
                        events.append(event)
                    return events
                except UnavailableError:
                    await asyncio.sleep(0.1)
    except TimeoutError:
        return events


async def run(seed: int, executions: int, store: str, crashes: int, concurrency: int) -> Report:
    """One chaos run; see the module's docstring."""
    rng = random.Random(seed)
    report = Report(seed, store, executions)
    started_at = time.monotonic()
    async with AsyncExitStack() as stack:
        services = stack.enter_context(fleet())
        audit = stack.enter_context(black_hole())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="maestro-chaos-")))
        # Billing behind a TCP proxy whose connections are cut now and then, mid-call or idle.
        billing, proxy = await stack.enter_async_context(
            cuttable_proxy(services.endpoints["billing_service"])
        )
        endpoints = {**services.endpoints, "billing_service": billing}
        yaml = WORKFLOW.format(**endpoints, audit_service=audit)
        cuts = random.Random(rng.randrange(2**31))
        schedule = fault_schedule(rng)
        breaking = failing_compensations(rng)
        schedule["billing"]["errors"]["CancelSubscription"] = (
            breaking if rng.random() < 0.5 else schedule["billing"]["errors"]["CancelSubscription"]
        )
        for name, spec in schedule.items():
            services.set_faults(name, spec)
        kill_points = sorted(rng.sample(range(executions // 10, executions), crashes))
        inputs = {
            f"chaos-{seed}-{n}": {
                "email": f"u{n}@chaos.io",
                "password": "pw",
                "name": f"User {n}",
                "plan": rng.choice(["free", "pro", "team"]),
                "audit": rng.random() < 0.1,
            }
            for n in range(executions)
        }
        server = Server(
            stack.enter_context(store_url(store, folder)), folder / "server.log", "--lease", "1s"
        )
        server.start()
        stack.callback(server.stop)
        live: dict[str, list[WorkflowEvent]] = {}
        async with client(server.address) as maestro:
            queue = list(inputs.items())[::-1]
            started = 0
            restarting = asyncio.Lock()  # one crash at a time

            async def worker() -> None:
                nonlocal started
                while queue:
                    execution_id, data = queue.pop()
                    await until_started(maestro, yaml, data, execution_id)
                    started += 1
                    if kill_points and started >= kill_points[0]:
                        kill_points.pop(0)
                        async with restarting:
                            server.kill()
                            report.crashes += 1
                            await asyncio.to_thread(server.start)
                    live[execution_id] = await watch_all(maestro, execution_id)

            async def cut_billing_connections() -> None:
                while True:
                    await asyncio.sleep(cuts.uniform(0.2, 1.5))  # the fault schedule
                    proxy.cut()
                    report.faults["gRPC connections to billing cut"] += 1

            cutter = asyncio.create_task(cut_billing_connections())
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            cutter.cancel()
            # Every execution was watched to its end already: a stuck one need not wait long.
            logs = {eid: await watch_all(maestro, eid, within=10) for eid in inputs}
        for name in services.services:
            for kind, count in services.ledger(name)["faults"].items():
                report.faults[kind] += count
        report.faults["audit call to a black hole"] = sum(bool(d["audit"]) for d in inputs.values())
        report.violations = check(inputs, live, logs, services)
        for events in logs.values():
            report.outcomes[events[-1].state.name if events else "NO EVENTS"] += 1
            for event in events:
                if event.probe and event.type is EventType.STEP_SUCCEEDED:
                    report.asked_again["settled: it had acted"] += 1
                elif event.probe and event.type is EventType.STEP_FAILED:
                    report.asked_again["still in doubt"] += 1
            if events and events[-1].state.name == "COMPENSATION_FAILED" and events[-1].error:
                report.reasons[re.sub(r"\d+", "N", events[-1].error.message)[:150]] += 1
    report.seconds = time.monotonic() - started_at
    return report


# -- the invariants ------------------------------------------------------------------------


def check(
    inputs: dict[str, Any],
    live: dict[str, list[WorkflowEvent]],
    logs: dict[str, list[WorkflowEvent]],
    services: Fleet,
) -> list[str]:
    """Every violated invariant, as a sentence naming the execution."""
    effects: dict[str, list[tuple[float, str]]] = {}  # idempotency key -> (time, method)
    for name in services.services:
        for effect in services.ledger(name)["effects"]:
            effects.setdefault(effect["key"] or "", []).append((effect["at"], effect["method"]))
    violations: list[str] = []
    for execution_id in inputs:
        violations += [
            f"{execution_id}: {v}" for v in _check_one(execution_id, live, logs, effects)
        ]
    return violations


def _check_one(
    execution_id: str,
    live: dict[str, list[WorkflowEvent]],
    logs: dict[str, list[WorkflowEvent]],
    effects: dict[str, list[tuple[float, str]]],
) -> Iterator[str]:
    events = logs[execution_id]
    sequences = [e.sequence for e in events]
    if sequences != list(range(1, len(events) + 1)):
        yield f"the log is not 1..n without gaps: {sequences}"
    terminal = [e for e in events if e.type in TERMINAL]
    if not events or len(terminal) != 1 or events[-1] is not terminal[0]:
        yield "the log does not end in exactly one terminal event"
        return
    if [e.sequence for e in live[execution_id]] != sequences:
        yield "the live watcher, reconnecting through crashes, saw another sequence than the log"
    state = events[-1].state.name
    if state == "CANCELLED":
        yield "cancelled, though nobody cancelled it"
    if state == "COMPENSATION_FAILED" and not (events[-1].error and events[-1].error.message):
        yield "COMPENSATION_FAILED without a reason"
    # Where each step first completed or fell in doubt (asking again keeps that place).
    done = list(
        dict.fromkeys(
            e.step_id
            for e in events
            if e.step_id in COMPENSABLE
            and (
                e.type is EventType.STEP_SUCCEEDED
                or (e.type is EventType.STEP_FAILED and e.in_doubt)
            )
        )
    )
    undone = [e.step_id for e in events if e.type is EventType.COMPENSATION_SUCCEEDED]
    given_up = [e.step_id for e in events if e.type is EventType.COMPENSATION_FAILED]
    if state == "COMPLETED" and (undone or given_up):
        yield "completed, yet compensations ran"
    if state in ("COMPENSATED", "FAILED") and undone != done[::-1]:
        yield f"compensated {undone}, not the completed steps in reverse {done[::-1]}"
    if state == "COMPENSATION_FAILED" and (
        sorted(undone + given_up) != sorted(done) or not given_up
    ):
        yield f"compensations {undone} + failed {given_up} do not match the completed {done}"
    for step in ("create_user", "setup_subscription", "add_to_crm", "send_welcome_email"):
        if len(effects.get(f"{execution_id}:{step}", ())) > 1:
            yield f"step {step} had its effect twice"
    acted = [s for s in COMPENSABLE if f"{execution_id}:{s}" in effects]
    if state != "COMPLETED":
        unknown = set(acted) - set(done)
        if unknown:
            yield f"the services acted for {sorted(unknown)}, which the log does not compensate"
    seen_undone = {s: effects.get(f"{execution_id}:{s}:compensate") for s in COMPENSABLE}
    for step in undone:
        if not seen_undone[step]:
            yield f"compensation of {step} is in the log but no service saw it"
    if state == "COMPLETED" and any(seen_undone.values()):
        yield "completed, yet a service saw a compensation"
    firsts = {s: min(t for t, _ in v) for s, v in seen_undone.items() if v}
    if len(firsts) == 2 and firsts["add_to_crm"] > firsts["setup_subscription"]:
        yield "the services saw the compensations out of reverse order"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--crashes", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    report = asyncio.run(run(seed, args.executions, args.store, args.crashes, args.concurrency))
    print(report.table())
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
