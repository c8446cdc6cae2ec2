"""Where `maestro serve` spends its CPU per workflow: by thread, and by part of the event loop's.

Runs the onboarding services and one `maestro serve` (SQLite, or PostgreSQL with `--store
postgres`), warms it up, then runs the onboarding workflow through the Python SDK one at a time
(c=1) and 128 at a time (c=128), and prints:

- each of the server's threads' user and system CPU per workflow, read from /proc (threads are
  named by `py-spy dump`): the event loop, SQLite's writer, grpc's poller and its event engine;
- with `--spy`, py-spy's samples of the event loop's thread while it is busy, by the part of
  Maestro or of a library they are in. py-spy stops the process to take a sample (native
  frames need that), and a stop lands when a thread returns from a system call, so parts that
  make many (grpc's socket writes) are overweighted: `strace -c` counted 75 `getpid` calls per
  workflow (9 µs in all), which py-spy put at 4-9% of the samples. 200 samples a second;
  500 disturbed the server enough to break streams.

Usage: python bench/serve_profile.py [--store sqlite|postgres] [--executions 500] [--spy]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples/onboarding/services")]

from demo_services.fleet import Fleet, fleet  # noqa: E402
from measure import latency, throughput, warm_up  # noqa: E402
from processes import maestro_serve, stat_cpu  # noqa: E402
from systems import Served, onboarding_yaml, postgres_database  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"
_ENGINE = tuple(
    f"maestro_server/{name}"
    for name in ("engine/", "model/", "templating/", "resilience/", "metrics.py", "logs.py")
)
# A sample belongs to the part of Maestro its innermost Maestro frame is in (a call's socket
# write is the call's); a sample with no Maestro frame, to the library its innermost frame names.
PARTS = (
    ("the API: ExecuteWorkflow's stream", ("maestro_server/api/",)),
    ("calls: gRPC", ("maestro_server/transports/grpc/",)),
    ("calls: HTTP", ("maestro_server/transports/",)),
    ("the store", ("maestro_server/store/",)),
    ("the engine (with its model, templates, metrics and logs)", _ENGINE),
)
LIBRARIES = (
    # Its Cython coroutines write a stream's messages (they pull them from the API's generator),
    # receive RPCs and finish calls: no Python frame of Maestro is on their stacks.
    ("grpc.aio on its own: stream writes, RPCs received, calls finished", ("cygrpc", "grpc/")),
    ("aiohttp on its own (responses arriving)", ("aiohttp",)),
)
Thread = tuple[str, str]  # (id, name)


def thread_cpu(pid: int) -> dict[Thread, tuple[float, float]]:
    """User and system CPU seconds of each of the process's threads."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:
            continue
        found[(task.name, stat[stat.index("(") + 1 : stat.rindex(")")])] = stat_cpu(stat)
    return found


def thread_names(pid: int) -> dict[str, str]:
    """Python's names of the threads, by id (from py-spy's dump; empty without py-spy)."""
    if not PY_SPY.exists():
        return {}
    dump = subprocess.run(
        [PY_SPY, "dump", "--pid", str(pid)], capture_output=True, text=True, check=True
    )
    return dict(re.findall(r'^Thread (\d+) \(\w+\): "([^"]+)"', dump.stdout, re.MULTILINE))


async def per_thread(
    pid: int, names: dict[str, str], phase: Callable[[], Awaitable[object]], workflows: int
) -> None:
    """The phase's CPU per workflow: each of the server's threads, and the client's."""
    before, client = thread_cpu(pid), os.times()
    await phase()
    after, client_after = thread_cpu(pid), os.times()
    rows = [
        (
            "the SDK client (the benchmark's process)",
            (client_after.user - client.user) / workflows * 1000,
            (client_after.system - client.system) / workflows * 1000,
        )
    ]
    for thread, (user, system) in after.items():
        was = before.get(thread, (0.0, 0.0))
        used = ((user - was[0]) / workflows * 1000, (system - was[1]) / workflows * 1000)
        if sum(used) > 0:
            rows.append((f"server: {names.get(thread[0], thread[1])}", *used))
    print("| thread | user ms/wf | system ms/wf |\n|---|---|---|")
    for name, user, system in sorted(rows, key=lambda row: -(row[1] + row[2])):
        print(f"| {name} | {user:.2f} | {system:.2f} |")


def by_part(raw: Path) -> None:
    """The event loop's busy samples, by part."""
    parts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0] or "epoll_wait" in frames[-1]:
            continue  # another thread, or the loop waiting
        if any("gc_collect" in frame for frame in frames):
            part = "the garbage collector (wherever it was set off)"
        else:
            part = _part(frames, PARTS) or _part(frames, LIBRARIES) or "asyncio and the rest"
        parts[part] += int(count)
    busy = sum(parts.values())
    print(f"event loop busy samples: {busy}\n| part | share |\n|---|---|")
    for part, samples in parts.most_common():
        print(f"| {part} | {100 * samples / busy:.1f}% |")


def _part(frames: list[str], parts: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    for frame in reversed(frames):
        for name, marks in parts:
            if any(mark in frame for mark in marks):
                return name
    return None


async def profile(args: argparse.Namespace, address: str, pid: int, services: Fleet) -> None:
    served = Served(address, pid, onboarding_yaml(services.endpoints))
    await warm_up(served.run, served.pids, "profile@warm", services)
    names = thread_names(pid)
    n = args.executions
    phases: dict[str, tuple[int, Callable[[], Awaitable[object]]]] = {
        "c=1": (n, lambda: latency(served.run, "profile@c1", n)),
        "c=128": (
            n * 2,
            lambda: throughput(
                [served.run],
                served.pids,
                prefix="profile@c128",
                count=n * 2,
                concurrency=128,
                services=services,
            ),
        ),
    }
    for label, (workflows, phase) in phases.items():
        print(f"\n### {args.store}, {label}: CPU per workflow by thread\n")
        await per_thread(pid, names, phase, workflows)
        if args.spy:  # the phase again, sampled: the figures above are free of py-spy's stops
            with tempfile.TemporaryDirectory() as folder:
                raw = Path(folder) / "samples.txt"
                command = [str(PY_SPY), "record", "--native", "--threads", "--format", "raw"]
                spy = subprocess.Popen(
                    [*command, "--rate", "200", "--output", str(raw), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await phase()
                spy.send_signal(signal.SIGINT)  # py-spy writes its samples then
                spy.wait(timeout=60)
                print(f"\n### {args.store}, {label}: the event loop's thread, by part\n")
                by_part(raw)
    await served.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--spy", action="store_true", help="also sample with py-spy")
    args = parser.parse_args()
    if args.spy and not PY_SPY.exists():
        raise SystemExit(f"--spy needs py-spy at {PY_SPY} (make install puts it there)")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        services = stack.enter_context(fleet())
        if args.store == "sqlite":
            store: str | None = f"sqlite:///{folder}/profile.db"
        else:
            store = stack.enter_context(postgres_database())
        if store is None:
            raise SystemExit("PostgreSQL is not reachable")
        address, pid = stack.enter_context(maestro_serve(store))
        asyncio.run(profile(args, address, pid, services))


if __name__ == "__main__":
    main()
