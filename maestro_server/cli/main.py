"""`maestro`: validate, draw and execute workflows.

Exit codes: 0 success; 1 invalid workflow or input; 2 the workflow failed or was compensated;
3 a compensation failed; 4 any other error. Diagnostics go to stderr, results to stdout.
`--debug`, before or after any command, sets the log level to DEBUG and shows the traceback of
an error; without it an unexpected error is one line, and exit code 4.

A command imports what it runs when it runs it (the workflow language, the engine, grpc, the
SDK), so `maestro --help` costs the interpreter and argparse, and `maestro validate` no
transport, store or server; tests/test_cli_startup.py keeps it so.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maestro_server import __version__
from maestro_server.cli import execute, remote, serve
from maestro_server.diagnostics import Diagnostic, SourceLocation
from maestro_server.errors import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_OK,
    InvalidInputError,
    InvalidWorkflowError,
    MaestroError,
)

if TYPE_CHECKING:
    from maestro_server.model.workflow import Workflow
    from maestro_server.schemas.descriptors import FileProtos


@dataclass(frozen=True, slots=True)
class _Checked:
    file: str
    workflow: Workflow | None
    diagnostics: tuple[Diagnostic, ...]
    reflected: dict[str, FileProtos] | None = None


def _check(file: str, reflect_with: dict[str, str] | None = None) -> _Checked:
    """Load a file; with `reflect_with` (endpoints), check it against reflected schemas too."""
    from maestro_server.definition import load_workflow_file
    from maestro_server.definition.endpoints import address_problems

    try:
        reflected = None
        if reflect_with is not None:
            from maestro_server.cli.validation import load_reflected

            workflow, reflected = load_reflected(file, reflect_with)
        else:
            workflow = load_workflow_file(file)
    except InvalidWorkflowError as exc:
        return _Checked(file, None, exc.diagnostics)
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        return _Checked(file, None, (Diagnostic(SourceLocation(file, 1, 1), message, "io-error"),))
    # As a server without --allow-endpoint would: metadata addresses are refused.
    problems = tuple(address_problems(workflow))
    return _Checked(file, None if problems else workflow, problems, reflected)


def _summary(workflow: Workflow) -> str:
    compensations = sum(1 for step in workflow.steps if step.compensate is not None)
    version = f" {workflow.version}" if workflow.version else ""
    return (
        f"{workflow.name}{version}: {len(workflow.services)} services, "
        f"{len(workflow.steps)} steps, {compensations} compensations"
    )


def _diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    return {
        "file": diagnostic.location.file,
        "line": diagnostic.location.line,
        "column": diagnostic.location.column,
        "severity": str(diagnostic.severity),
        "code": diagnostic.code,
        "path": diagnostic.path,
        "message": diagnostic.message,
    }


def _validate(args: argparse.Namespace) -> int:
    from maestro_server.cli.validation import endpoint_flags

    if args.explain is not None and len(args.files) != 1:
        raise InvalidInputError("--explain explains a step of one workflow: give one FILE")
    endpoints = endpoint_flags(args.endpoint)
    results = [_check(file, endpoints if args.reflect else None) for file in args.files]
    if args.format == "json":
        report = [
            {
                "file": result.file,
                "valid": result.workflow is not None,
                "workflow": None
                if result.workflow is None
                else {
                    "name": result.workflow.name,
                    "version": result.workflow.version,
                    "hash": result.workflow.hash,
                    "steps": [step.id for step in result.workflow.steps],
                },
                "diagnostics": [_diagnostic_json(d) for d in result.diagnostics],
            }
            for result in results
        ]
        json.dump({"files": report}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            if result.workflow is not None:
                print(f"{result.file}: ok ({_summary(result.workflow)})")
                continue
            for diagnostic in result.diagnostics:
                print(diagnostic, file=sys.stderr)
            count = len(result.diagnostics)
            print(f"{result.file}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
    if not all(r.workflow is not None for r in results):
        return EXIT_INVALID
    return _example_input(args, results)


def _example_input(args: argparse.Namespace, results: list[_Checked]) -> int:
    """With --input-file, check the input as a start would; with --explain, show the step."""
    if not args.input_file and args.explain is None:
        return EXIT_OK
    from maestro_server.cli.explain import explain
    from maestro_server.definition.inputs import check_input

    data = execute.read_input(args) if args.input_file else {}
    for result in results:
        assert result.workflow is not None
        if args.input_file:
            check_input(data, args.input_file, result.workflow)
        if args.explain is not None:
            sys.stdout.write(explain(result.workflow, args.explain, data, result.reflected))
    return EXIT_OK


def _graph(args: argparse.Namespace) -> int:
    from maestro_server.cli.graph import to_mermaid

    result = _check(args.file)
    if result.workflow is None:
        for diagnostic in result.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(to_mermaid(result.workflow))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `maestro` command."""
    parser = argparse.ArgumentParser(prog="maestro", description="Maestro saga orchestrator.")
    parser.add_argument("--version", action="version", version=f"maestro {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check workflow files without running them")
    validate.add_argument("files", nargs="+", metavar="FILE", help="workflow YAML files")
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (compiler-style diagnostics on stderr) or json (on stdout)",
    )
    validate.add_argument(
        "--reflect",
        action="store_true",
        help="check gRPC services without descriptor_set or protos against the schema they "
        "give by server reflection (calls reflection, nothing else)",
    )
    validate.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="SERVICE=ADDRESS",
        help="with --reflect: reach SERVICE at ADDRESS instead of its endpoint (repeatable)",
    )
    validate.add_argument(
        "--input-file",
        metavar="FILE",
        help="an example input (JSON): checked as a start would check it; used by --explain",
    )
    validate.add_argument(
        "--explain",
        metavar="STEP",
        help="print the request STEP will send, rendered with the example input, and the "
        "message it is checked against",
    )
    validate.set_defaults(run=_validate)

    graph = commands.add_parser("graph", help="print a workflow as a Mermaid flowchart")
    graph.add_argument("file", metavar="FILE", help="workflow YAML file")
    graph.set_defaults(run=_graph)

    execute.add_parser(commands)
    serve.add_parser(commands)
    remote.add_parsers(commands)
    _debug_everywhere(parser)
    return parser


_DEBUG_HELP = "debug logs on stderr, and the traceback of an error"


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give every command `--debug` too, so it goes before or after the command's name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                # SUPPRESS: a command without the flag keeps the top-level value.
                command.add_argument(
                    "--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP
                )
                _debug_everywhere(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with its code.

    Without `argv` this is the process's entry point (`maestro`, `python -m maestro_server`):
    once a command other than `serve` has run and its output is flushed, the process ends
    without tearing the interpreter down, which frees every object of the 600 modules a run
    imports one by one (70 ms of `maestro execute`, 25 ms of `validate`) for nothing. With
    `argv` (a caller's own process) it raises SystemExit as usual.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error: printed, and exiting
        if argv is None and isinstance(exc.code, int):
            _end_process(exc.code)
        raise
    code = _run(args)
    if argv is None and args.command != "serve":
        _end_process(code)
    sys.exit(code)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit code."""
    if args.debug:
        from maestro_server.logs import configure_logging

        configure_logging(level="DEBUG")
    try:
        code: int = args.run(args)
    except InvalidWorkflowError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        code = exc.exit_code
    except MaestroError as exc:
        _traceback(args.debug)
        print(f"maestro: {exc.message}", file=sys.stderr)
        code = exc.exit_code
    except remote.RemoteError as exc:
        _traceback(args.debug)
        print(exc, file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line (the traceback with --debug), exit 4
        _traceback(args.debug)
        if isinstance(exc, OSError):  # a file named on the command line, say
            print(f"maestro: {exc}", file=sys.stderr)
        else:
            print(f"maestro: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            if not args.debug:
                print("maestro: run again with --debug for the traceback", file=sys.stderr)
        code = EXIT_ERROR
    return code


def _end_process(code: int) -> None:
    """End the process now with `code`, as interpreter shutdown would, but for freeing objects.

    Shutdown would wait for threads that are not daemons (if any run, it is left to it), run
    the functions registered with atexit (logging's flush, an OpenTelemetry exporter's last
    spans: they run here) and flush stdout and stderr; then free every object one by one,
    which this skips. A flush that fails (stdout a closed pipe) returns, so that the normal
    exit reports it as it always has.
    """
    if any(
        not thread.daemon
        for thread in threading.enumerate()
        if thread is not threading.main_thread()
    ):
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _traceback(debug: bool) -> None:
    if debug:
        import traceback  # an error with --debug only: not at every start

        traceback.print_exc(file=sys.stderr)


__all__ = ["build_parser", "main"]
