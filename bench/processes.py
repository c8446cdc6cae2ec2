"""Processes the benchmark runs or watches: `maestro serve`, and CPU and memory read from /proc."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/: the chaos harness's server runner

from tests.chaos.harness import Server  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    return sum(stat_cpu(stat))


def stat_cpu(stat: str) -> tuple[float, float]:
    """User and system CPU seconds from the text of a /proc/PID/stat (or task's) file."""
    fields = stat.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(map(cpu_seconds, pids))


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process has had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metrics_flags() -> tuple[list[str], str]:
    """Flags that serve a server's Prometheus metrics on a free port, and their address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return ["--metrics-port", str(port)], f"http://127.0.0.1:{port}/metrics"


@contextmanager
def maestro_serve(store: str, *flags: str) -> Iterator[tuple[str, int]]:
    """`maestro serve` on a free port, logging warnings only; yields (address, pid)."""
    with tempfile.TemporaryDirectory() as folder:
        server = Server(store, Path(folder) / "server.log", "--log-level", "WARNING", *flags)
        server.start()
        try:
            assert server.process is not None
            yield server.address, server.process.pid
        finally:
            server.stop()
