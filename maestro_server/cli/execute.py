"""`maestro execute`: run a workflow in this process, showing each event as it happens.

The engine and the transports (or, with `--server`, the SDK) are imported when the command
runs, not when its flags are registered: `maestro --help` does not pay for them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro_server.cli.json_args import read_object
from maestro_server.cli.progress import add_only_flag, only_types
from maestro_server.cli.serve import add_max_elements_flag, check_max_elements
from maestro_server.cli.signals import add_signal_flag, parse_signals
from maestro_server.errors import InvalidInputError

if TYPE_CHECKING:
    from maestro_server.cli.progress import ProgressPrinter
    from maestro_server.model.execution import ExecutionResult
    from maestro_server.model.signals import Signal
    from maestro_server.secret_values import Secrets


def add_parser(commands: Any) -> None:
    """Register the `execute` command."""
    parser = commands.add_parser("execute", help="run a workflow in this process (no server)")
    parser.add_argument(
        "file",
        metavar="FILE",
        help="workflow YAML file; with --server also NAME[@VERSION] of a registered workflow "
        "(when no such file exists)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input-file", metavar="FILE", help="input as a JSON file")
    source.add_argument("--input", metavar="JSON", help="input as inline JSON")
    parser.add_argument(
        "--events", choices=("jsonl",), help="print every event as one JSON line on stdout instead"
    )
    add_only_flag(parser)
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="SERVICE=ADDRESS",
        help="call SERVICE at ADDRESS instead of its endpoint (repeatable)",
    )
    parser.add_argument("--execution-id", help="the execution's id (default: a new UUID)")
    add_max_elements_flag(parser)
    add_signal_flag(parser)
    parser.add_argument(
        "--server", metavar="HOST:PORT", help="run on a Maestro server instead of in this process"
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="with --server: start the execution, print its id and return without following it",
    )
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        help="files read as {{ .secrets.NAME }} (besides MAESTRO_SECRET_NAME)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MAESTRO_TOKEN"),
        help="with --server: the bearer token ($MAESTRO_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca", type=Path, help="with --server: connect with TLS, trusting this CA (PEM)"
    )
    parser.set_defaults(run=run_execute)


def read_input(args: argparse.Namespace) -> dict[str, Any]:
    """The input of `--input JSON` or `--input-file FILE` ({} when neither is given).

    Refused (exit 1) where a server would refuse it, run here or there.
    """
    return read_object(getattr(args, "input", None), "--input", args.input_file, "input")


def run_execute(args: argparse.Namespace) -> int:
    """Load, run and report; the exit code follows the execution's final state."""
    import asyncio

    from maestro_server.cli.progress import EXIT_BY_STATE, ProgressPrinter
    from maestro_server.logs import configure_logging
    from maestro_server.model.execution import ExecutionState

    configure_logging(level="DEBUG" if args.debug else "WARNING")
    only = only_types(args.only)
    if args.server:
        if args.signal:
            raise InvalidInputError(
                "--signal applies to runs in this process; send signals to a server's "
                "executions with `maestro executions signal ID NAME`"
            )
        if args.endpoint:
            raise InvalidInputError(
                "--endpoint applies to runs in this process; a server maps services with "
                "its own --endpoint"
            )
        from maestro_server.cli.remote import execute_remote, start_remote

        if args.no_wait:
            return start_remote(args, read_input(args))
        printer = ProgressPrinter(jsonl=args.events == "jsonl", only=only)
        return EXIT_BY_STATE[execute_remote(args, read_input(args), printer)]
    if args.no_wait:
        raise InvalidInputError("--no-wait applies to runs on a server (--server)")
    import uuid

    from maestro_server.definition import load_workflow_file
    from maestro_server.definition.endpoint_map import parse_endpoints
    from maestro_server.definition.inputs import check_input
    from maestro_server.secret_values import Secrets

    workflow = load_workflow_file(args.file)
    try:
        workflow = workflow.with_endpoints(parse_endpoints(args.endpoint))
    except KeyError as exc:
        raise InvalidInputError(f"--endpoint: {exc.args[0]}") from None
    data = check_input(read_input(args), "input", workflow)
    execution_id = args.execution_id or str(uuid.uuid4())
    signals = parse_signals(args.signal, execution_id)
    printer = ProgressPrinter(jsonl=args.events == "jsonl", only=only)
    secrets = Secrets(args.secrets_dir)
    check_max_elements(args)
    limit = args.max_for_each_elements
    result = asyncio.run(
        _run(
            workflow,
            execution_id,
            data,
            printer,
            secrets,
            max_for_each_elements=limit,
            signals=signals,
        )
    )
    if result.state is ExecutionState.COMPLETED and args.events is None:
        json.dump(result.output, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_BY_STATE[result.state]


async def _run(
    workflow: Any,
    execution_id: str,
    data: dict[str, Any],
    printer: ProgressPrinter,
    secrets: Secrets,
    *,
    max_for_each_elements: int,
    signals: list[Signal],
) -> ExecutionResult:
    import asyncio
    import signal

    from maestro_server.engine.dependencies import Dependencies
    from maestro_server.engine.runner import Runner
    from maestro_server.resilience.breaker import BreakerRegistry
    from maestro_server.resilience.clock import SystemClock
    from maestro_server.transports.http_libraries import import_http_libraries

    import_http_libraries()  # before the transports import them: see there
    from maestro_server.transports.registry import Transports

    clock = SystemClock()
    async with Transports(secrets) as transports:
        children = None
        if any(step.workflow is not None for step in workflow.steps):
            # Sub-workflow files run as child executions of a store in memory: the run is
            # this process's, and so are its children (registered workflows are a server's).
            from maestro_server.cli.embedded_children import EmbeddedChildren
            from maestro_server.store.memory import MemoryStore

            children = EmbeddedChildren(
                MemoryStore(),
                transports,
                signals,
                clock=clock,
                secrets=secrets,
                max_for_each_elements=max_for_each_elements,
            ).children
        runner = Runner(
            workflow,
            execution_id,
            data,
            Dependencies(
                invoker=transports,
                sink=printer,
                breakers=BreakerRegistry(clock),
                clock=clock,
                secrets=secrets,
                max_for_each_elements=max_for_each_elements,
                children=children,
            ),
        )
        runner.deliver(signals)
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
