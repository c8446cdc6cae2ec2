"""`maestro execute`: run a workflow in this process, showing each event as it happens."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from maestro_server.api.convert import event_to_json
from maestro_server.definition import load_workflow_file
from maestro_server.definition.inputs import check_input, parse_input
from maestro_server.engine.runner import Runner
from maestro_server.errors import (
    EXIT_COMPENSATION_FAILED,
    EXIT_FAILED,
    EXIT_OK,
    InvalidInputError,
)
from maestro_server.logging import configure_logging
from maestro_server.model.execution import Event, EventType, ExecutionResult, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports

EXIT_BY_STATE = {
    ExecutionState.COMPLETED: EXIT_OK,
    ExecutionState.COMPENSATED: EXIT_FAILED,
    ExecutionState.FAILED: EXIT_FAILED,
    ExecutionState.CANCELLED: EXIT_FAILED,
    ExecutionState.COMPENSATION_FAILED: EXIT_COMPENSATION_FAILED,
}

_MARKS = {
    EventType.WORKFLOW_STARTED: ("▶", "1"),
    EventType.STEP_STARTED: ("…", "2"),
    EventType.STEP_RETRYING: ("↻", "33"),
    EventType.STEP_SUCCEEDED: ("✓", "32"),
    EventType.STEP_SKIPPED: ("–", "2"),
    EventType.STEP_FAILED: ("✗", "31"),
    EventType.COMPENSATION_STARTED: ("↶", "35"),
    EventType.COMPENSATION_SUCCEEDED: ("↶✓", "35"),
    EventType.COMPENSATION_FAILED: ("↶✗", "31"),
    EventType.WORKFLOW_COMPLETED: ("■", "32;1"),
    EventType.WORKFLOW_FAILED: ("■", "31;1"),
    EventType.WORKFLOW_COMPENSATED: ("■", "33;1"),
    EventType.WORKFLOW_CANCELLED: ("■", "33;1"),
}


class ProgressPrinter:
    """A line per event on stderr (coloured on a terminal), or JSON lines on stdout."""

    def __init__(self, *, jsonl: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self._jsonl = jsonl
        self._out = out
        self._err = err
        self._colour = err.isatty()

    async def append(self, event: Event) -> None:
        """Print one event."""
        if self._jsonl:
            self._out.write(event_to_json(event) + "\n")
            self._out.flush()
            return
        mark, colour = _MARKS[event.type]
        text = f"{mark} {event.type.value.lower().replace('_', ' ')}"
        if event.step_id:
            text += f" {event.step_id}"
        details = []
        if event.attempt and event.type is not EventType.STEP_SKIPPED:
            details.append(f"attempt {event.attempt}")
        if event.duration is not None:
            details.append(_ms(event.duration.total_seconds()))
        if event.retry_delay is not None:
            details.append(f"retry in {_ms(event.retry_delay.total_seconds())}")
        if details:
            text += f" ({', '.join(details)})"
        if event.error is not None:
            text += f": {event.error.code}: {event.error.message}"
        if self._colour:
            text = f"\x1b[{colour}m{text}\x1b[0m"
        self._err.write(f"[{event.sequence:>3}] {text}\n")
        self._err.flush()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def add_parser(commands: Any) -> None:
    """Register the `execute` command."""
    parser = commands.add_parser("execute", help="run a workflow in this process (no server)")
    parser.add_argument("file", metavar="FILE", help="workflow YAML file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input-file", metavar="FILE", help="input as a JSON file")
    source.add_argument("--input", metavar="JSON", help="input as inline JSON")
    parser.add_argument(
        "--events", choices=("jsonl",), help="print every event as one JSON line on stdout instead"
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="SERVICE=ADDRESS",
        help="call SERVICE at ADDRESS instead of its endpoint (repeatable)",
    )
    parser.add_argument("--execution-id", help="the execution's id (default: a new UUID)")
    parser.add_argument("--debug", action="store_true", help="structured debug logs on stderr")
    parser.set_defaults(run=run_execute)


def _read_input(args: argparse.Namespace) -> dict[str, Any]:
    if args.input is not None:
        return parse_input(args.input, "--input")
    if args.input_file is not None:
        path = Path(args.input_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the input: {exc.strerror}") from None
        return parse_input(text, str(path))
    return {}


def _endpoints(flags: list[str]) -> dict[str, str]:
    endpoints = {}
    for flag in flags:
        name, sep, address = flag.partition("=")
        if not sep or not name or not address:
            raise InvalidInputError(f"--endpoint wants SERVICE=ADDRESS, not {flag!r}")
        endpoints[name] = address
    return endpoints


def run_execute(args: argparse.Namespace) -> int:
    """Load, run and report; the exit code follows the execution's final state."""
    configure_logging(level="DEBUG" if args.debug else "WARNING")
    workflow = load_workflow_file(args.file)
    try:
        workflow = workflow.with_endpoints(_endpoints(args.endpoint))
    except KeyError as exc:
        raise InvalidInputError(f"--endpoint: {exc.args[0]}") from None
    data = check_input(_read_input(args), "input", workflow)
    execution_id = args.execution_id or str(uuid.uuid4())
    printer = ProgressPrinter(jsonl=args.events == "jsonl")
    result = asyncio.run(_run(workflow, execution_id, data, printer))
    if result.state is ExecutionState.COMPLETED and args.events is None:
        json.dump(result.output, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_BY_STATE[result.state]


async def _run(
    workflow: Any, execution_id: str, data: dict[str, Any], printer: ProgressPrinter
) -> ExecutionResult:
    clock = SystemClock()
    async with Transports() as transports:
        runner = Runner(
            workflow,
            execution_id,
            data,
            invoker=transports,
            sink=printer,
            breakers=BreakerRegistry(clock),
            clock=clock,
        )
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            if runner.cancel("interrupted"):
                print("interrupted: compensating (press Ctrl-C again to quit now)", file=sys.stderr)
            else:
                loop.remove_signal_handler(signal.SIGINT)
                raise KeyboardInterrupt

        loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            return await runner.run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
