"""`--debug` on every command, before or after its name: DEBUG logs, and an error's traceback."""

import argparse
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
from maestro_server.cli.main import build_parser
from tests.api.conftest import maestro_serve
from tests.conftest import maestro

FAILING = """\
name: failing
services:
  api: {type: http, endpoint: "http://127.0.0.1:1"}
steps:
  - {id: a, service: api, method: POST /x, retry: {max_attempts: 1}}
"""


def _commands(parser: argparse.ArgumentParser, path: str = "maestro") -> Iterator[tuple[str, Any]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from _commands(command, f"{path} {name}")


def test_every_command_has_debug() -> None:
    """Each command and subcommand lists `--debug` in its own options (and so its --help)."""
    missing = [
        path
        for path, parser in _commands(build_parser())
        if "--debug" not in parser._option_string_actions
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "debug"),
    [
        (["serve"], False),
        (["serve", "--debug"], True),
        (["--debug", "serve"], True),
        (["validate", "w.yaml", "--debug"], True),
        (["graph", "--debug", "w.yaml"], True),
        (["execute", "w.yaml", "--debug"], True),
        (["executions", "get", "x", "--server", "h:1", "--debug"], True),
        (["--debug", "workflows", "list", "--server", "h:1"], True),
        (["workflows", "list", "--server", "h:1"], False),
    ],
)
def test_debug_before_or_after_the_command(argv: list[str], debug: bool) -> None:
    assert build_parser().parse_args(argv).debug is debug


def _debug_lines(debug: bool) -> list[dict[str, object]]:
    flags = ("--debug",) if debug else ()
    with maestro_serve(*flags) as server, grpc.insecure_channel(server.address) as channel:
        request = pb.ExecuteWorkflowRequest(workflow_yaml=FAILING)
        list(rpc.OrchestratorStub(channel).ExecuteWorkflow(request, timeout=60))
        assert server.terminate() == 0
        server.stderr_text()
    return [entry for entry in server.log if entry["level"] == "debug"]


def test_serve_debug_logs_at_debug_level() -> None:
    """`maestro serve --debug` logs each attempt and request at DEBUG; without it, nothing at
    DEBUG."""
    events = {str(entry["event"]) for entry in _debug_lines(debug=True)}
    assert {"attempt started", "http request"} <= events
    assert _debug_lines(debug=False) == []


@pytest.mark.parametrize("position", ["after", "before", "none"])
def test_debug_shows_the_traceback_of_an_error(position: str) -> None:
    """An error in `serve` (a token file that does not exist): one line and exit 4, or with
    --debug the traceback first."""
    command = ["serve", "--port", "0", "--store", "memory", "--auth-token-file", "/nonexistent"]
    argv = {"after": [*command, "--debug"], "before": ["--debug", *command], "none": command}
    result = maestro(*argv[position])
    assert result.returncode == 4, result.stderr
    last = "maestro: [Errno 2] No such file or directory: '/nonexistent'\n"
    if position == "none":
        assert result.stderr == last
    else:
        assert result.stderr.startswith("Traceback (most recent call last):\n")
        assert result.stderr.endswith(last)


def test_debug_shows_the_traceback_of_a_remote_error() -> None:
    """A server that cannot be reached: exit 4, with --debug the traceback before the line."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nobody listens
    plain = maestro("executions", "get", "x", "--server", address)
    debug = maestro("executions", "get", "x", "--server", address, "--debug")
    assert (plain.returncode, debug.returncode) == (4, 4)
    assert plain.stderr.startswith("maestro: UNAVAILABLE: ") and "Traceback" not in plain.stderr
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert debug.stderr.endswith(plain.stderr.splitlines()[-1] + "\n")
