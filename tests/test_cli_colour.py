"""Colour codes go to a terminal only, and never with NO_COLOR set: the event lines of
`maestro execute` and the console logs of `maestro serve`, run with stderr on a real
pseudo-terminal, a pipe, or a terminal and NO_COLOR."""

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

ESCAPE = "\x1b["
FAILING = """\
name: failing
services:
  api: {type: http, endpoint: "http://127.0.0.1:1"}
steps:
  - {id: a, service: api, method: POST /x, retry: {max_attempts: 1}}
"""
SERVE = ["serve", "--port", "0", "--store", "memory", "--log-format", "console"]


def run(args: list[str], *, terminal: bool, no_color: str | None, until: str = "") -> str:
    """Run `maestro ARGS` with stderr on a pseudo-terminal or a pipe; its stderr. With `until`,
    SIGTERM once that text has appeared (for a server)."""
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    env.pop("NO_COLOR", None)
    if no_color is not None:
        env["NO_COLOR"] = no_color
    reader, writer = pty.openpty() if terminal else os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "maestro_server", *args],
        stdout=subprocess.DEVNULL,
        stderr=writer,
        cwd=ROOT,
        env=env,
    )
    os.close(writer)
    received, signalled = b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([reader], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(reader, 65536)
            except OSError:  # a terminal whose other end closed: EIO
                chunk = b""
            if not chunk:
                break
            received += chunk
            if until and not signalled and until.encode() in received:
                process.send_signal(signal.SIGTERM)
                signalled = True
    finally:
        os.close(reader)
        if process.poll() is None and not signalled:
            process.kill()
        process.wait(timeout=60)
    return received.decode()


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    return path


@pytest.mark.parametrize(
    ("terminal", "no_color", "coloured"),
    [(True, None, True), (True, "1", False), (True, "", True), (False, None, False)],
    ids=["terminal", "terminal-NO_COLOR", "terminal-empty-NO_COLOR", "pipe"],
)
def test_execute_event_lines(
    failing: Path, terminal: bool, no_color: str | None, coloured: bool
) -> None:
    """The event lines (a failed step, a failed workflow) are coloured on a terminal only."""
    text = run(["execute", str(failing)], terminal=terminal, no_color=no_color)
    assert "step failed a" in text
    assert (ESCAPE in text) is coloured, text


@pytest.mark.parametrize(
    ("terminal", "no_color", "coloured"),
    [(True, None, True), (True, "1", False), (False, None, False)],
    ids=["terminal", "terminal-NO_COLOR", "pipe"],
)
def test_serve_console_logs(terminal: bool, no_color: str | None, coloured: bool) -> None:
    """`maestro serve --log-format console` colours its log lines on a terminal only."""
    text = run(SERVE, terminal=terminal, no_color=no_color, until="serving")
    assert "serving" in text and "stopped" in text, text
    assert (ESCAPE in text) is coloured, text
