"""The commands that talk to a running server: `execute --server`, `executions …`, `workflows …`.

They run on the SDK's `SyncMaestroClient`: TLS, the bearer token, paging, error decoding and the
resumption of dropped event streams are the SDK's. This module turns flags into calls and
answers into the output the commands have always printed. The SDK (grpc, protobuf) is
imported when one of these commands runs, not when its flags are registered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro_server.cli.progress import add_only_flag, only_types
from maestro_server.cli.signals import add_signal_command, read_payload
from maestro_server.errors import EXIT_OK, InvalidInputError, exit_code_for_status
from maestro_server.model.execution import (
    TERMINAL_EVENTS,
    ErrorInfo,
    Event,
    EventType,
    ExecutionState,
)

if TYPE_CHECKING:
    import betterproto2

    import maestro_client
    from maestro_client import SyncMaestroClient, WorkflowRef, WorkflowSource
    from maestro_server.cli.progress import ProgressPrinter

_EPOCH = datetime.fromtimestamp(0, UTC)
"""What an unset Timestamp reads as."""


class RemoteError(Exception):
    """A server answered with an error; carries the exit code it maps to."""

    def __init__(self, error: maestro_client.MaestroError) -> None:
        import maestro_client

        # The SDK has a class per status it expects; for any other it names the status itself.
        if type(error) is maestro_client.MaestroError:
            lines = [f"maestro: {error.message}"]
        else:
            lines = [f"maestro: {error.code.name}: {error.message}"]
        if isinstance(error, maestro_client.InvalidArgumentError):
            lines += [f"{where}: error: {what}" for where, what in error.violations]
        super().__init__("\n".join(lines))
        self.exit_code = exit_code_for_status(error.code)


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[SyncMaestroClient]:
    """A client of the server the flags name; its errors come out as RemoteError."""
    import grpc

    import maestro_client
    from maestro_client import SyncMaestroClient

    tls_ca: Path | None = getattr(args, "tls_ca", None)
    credentials = grpc.ssl_channel_credentials(tls_ca.read_bytes()) if tls_ca else None
    token = getattr(args, "token", None)
    with SyncMaestroClient(args.server, token=token, credentials=credentials) as client:
        try:
            yield client
        except maestro_client.MaestroError as exc:
            raise RemoteError(exc) from None


def message_text(message: betterproto2.Message) -> str:
    """A message as the commands print it: the proto's JSON mapping, with proto field names.

    That is what `json_format.MessageToDict(message, preserving_proto_field_name=True)` renders,
    but for the keys of maps and Structs, which come in the order the server sent them: protobuf
    iterates a map in the order of a hash table seeded per process, which changed run to run.
    Whole numbers are printed as integers: the API has no double fields, so every float here
    came through a Struct, which carries numbers as doubles.
    """
    import betterproto2

    from maestro_server.json_numbers import whole_numbers

    return json.dumps(whole_numbers(message.to_dict(casing=betterproto2.Casing.SNAKE)), indent=2)


def event_from_message(message: maestro_client.WorkflowEvent) -> Event:
    """The domain form of a streamed event, which the progress printer shows."""
    import maestro_client

    error = message.error
    return Event(
        execution_id=message.execution_id,
        sequence=message.sequence,
        time=message.time or _EPOCH,
        type=EventType(message.type.name),
        state=ExecutionState(message.state.name),
        step_id=message.step_id,
        attempt=message.attempt,
        output=maestro_client.output(message),
        error=None
        if error is None
        else ErrorInfo(error.code, error.message, error.service, error.retryable),
        duration=message.duration,
        retry_delay=message.retry_delay,
        in_doubt=message.in_doubt,
        probe=message.probe,
        element_index=message.element_index,
        deadline=message.deadline,
        signal_name=message.signal_name,
        signal_id=message.signal_id,
        child_execution_id=message.child_execution_id,
    )


def _print(message: betterproto2.Message) -> None:
    sys.stdout.write(message_text(message) + "\n")


def _source(file: str) -> WorkflowSource:
    """A workflow file checked here first (local diagnostics), with the files it names."""
    from maestro_client import WorkflowSource
    from maestro_server.definition import load_workflow_file

    try:
        workflow = load_workflow_file(file)
    except OSError as exc:  # the file named on the command line: bad input, exit 1
        raise InvalidInputError(f"{file}: cannot read the workflow: {exc.strerror}") from None
    return WorkflowSource(workflow.source, file, dict(workflow.files))


def _workflow(argument: str) -> WorkflowSource | WorkflowRef:
    """A workflow file, or, when there is no such file, NAME[@VERSION] of a registered one.

    What looks like a file (a `.yaml` or `.yml` name, or a path) is read as one, so a mistyped
    file name is reported as such rather than looked up on the server.
    """
    from maestro_client import WorkflowRef

    path = Path(argument)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in argument:
        return _source(argument)
    name, _, version = argument.partition("@")
    return WorkflowRef(name, version)


def execute_remote(
    args: argparse.Namespace, data: dict[str, Any], printer: ProgressPrinter
) -> ExecutionState:
    """Run through a server, printing events as `maestro execute` does; the final state.

    The events are followed to the end of the execution's log, across dropped connections.
    """
    workflow = _workflow(args.file)
    with _client(args) as client:
        events = client.execute(
            workflow,
            data,
            execution_id=args.execution_id or "",
            event_types=_streamed(printer),
        )
        return _follow(events, printer)


def _streamed(printer: ProgressPrinter) -> list[maestro_client.EventType]:
    """The event types to ask the server for: those shown, and the terminal ones.

    The exit code and the output come from the terminal event, shown or not. Every type
    (an empty list) when all are shown.
    """
    import maestro_client

    if not printer.only:
        return []
    wanted = sorted(printer.only | TERMINAL_EVENTS)
    return [maestro_client.EventType[t.value] for t in wanted]


def start_remote(args: argparse.Namespace, data: dict[str, Any]) -> int:
    """`execute --server … --no-wait`: start, print the execution's id, do not follow."""
    workflow = _workflow(args.file)
    with _client(args) as client:
        handle = client.start(workflow, data, execution_id=args.execution_id or "")
    print(handle.execution_id)
    return EXIT_OK


def _follow(
    events: Iterable[maestro_client.WorkflowEvent], printer: ProgressPrinter
) -> ExecutionState:
    state = ExecutionState.PENDING
    output: Any = None
    for message in events:
        event = event_from_message(message)
        printer.show(event)
        state = event.state
        if event.terminal:
            output = event.output
    if state is ExecutionState.COMPLETED and not printer.jsonl:
        json.dump(output, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return state


def _connection_flags(parser: Any) -> None:
    parser.add_argument("--server", required=True, metavar="HOST:PORT")
    parser.add_argument(
        "--token", default=os.environ.get("MAESTRO_TOKEN"), help="bearer token ($MAESTRO_TOKEN)"
    )
    parser.add_argument("--tls-ca", type=Path, help="connect with TLS, trusting this CA (PEM)")


def add_parsers(commands: Any) -> None:
    """Register `executions` and `workflows`."""
    executions = commands.add_parser("executions", help="executions on a server")
    executions_commands = executions.add_subparsers(dest="action", required=True)
    for name, help_text in (
        ("resume", "retry the failed compensations of a compensation_failed execution"),
        ("list", "list executions"),
        ("get", "show one execution"),
        ("watch", "follow an execution's events"),
        ("cancel", "cancel an execution (it compensates)"),
    ):
        sub = executions_commands.add_parser(name, help=help_text)
        _connection_flags(sub)
        if name == "list":
            sub.add_argument("--workflow", default="", help="only executions of this workflow")
            sub.add_argument(
                "--parent",
                default="",
                metavar="ID",
                help="only the child executions of this execution (its sub-workflow steps)",
            )
            sub.add_argument(
                "--state",
                action="append",
                default=[],
                choices=[s.value.lower() for s in ExecutionState],
            )
        else:
            sub.add_argument("execution_id")
        if name == "watch":
            sub.add_argument("--after", type=int, default=0, metavar="SEQUENCE")
            sub.add_argument("--events", choices=("jsonl",))
            add_only_flag(sub)
        if name == "cancel":
            sub.add_argument("--reason", default="")
        sub.set_defaults(run=_executions)
    signal = add_signal_command(executions_commands)
    _connection_flags(signal)
    signal.set_defaults(run=_executions)

    workflows = commands.add_parser("workflows", help="workflow definitions on a server")
    workflows_commands = workflows.add_subparsers(dest="action", required=True)
    register = workflows_commands.add_parser("register", help="store a workflow file")
    register.add_argument("file", metavar="FILE")
    listing = workflows_commands.add_parser("list", help="list stored workflows")
    listing.add_argument("--name", default="")
    get = workflows_commands.add_parser("get", help="show a stored workflow")
    get.add_argument("name")
    get.add_argument("--version", default="")
    for sub in (register, listing, get):
        _connection_flags(sub)
        sub.set_defaults(run=_workflows)


def _executions(args: argparse.Namespace) -> int:
    import maestro_client
    from maestro_server.cli.progress import EXIT_BY_STATE, ProgressPrinter

    with _client(args) as client:
        if args.action == "list":
            states = [maestro_client.ExecutionState[s.upper()] for s in args.state]
            for execution in client.list(args.workflow, states, parent_execution_id=args.parent):
                parent = execution.parent_execution_id
                print(
                    f"{execution.execution_id}  {execution.workflow_name} "
                    f"{execution.workflow_version}  {execution.state.name}"
                    + (f"  (child of {parent})" if parent else "")
                )
            return EXIT_OK
        if args.action == "get":
            _print(client.get(args.execution_id))
            return EXIT_OK
        if args.action == "resume":
            _print(client.resume(args.execution_id))
            return EXIT_OK
        if args.action == "cancel":
            _print(client.cancel(args.execution_id, args.reason))
            return EXIT_OK
        if args.action == "signal":
            sent = client.signal_execution(
                args.execution_id, args.name, read_payload(args), signal_id=args.signal_id
            )
            verb = "sent" if sent.created else "already received"
            print(f"signal {args.name!r} ({sent.signal_id}): {verb}")
            return EXIT_OK
        printer = ProgressPrinter(jsonl=args.events == "jsonl", only=only_types(args.only))
        watched = client.watch(args.execution_id, args.after, event_types=_streamed(printer))
        state = _follow(watched, printer)
        return EXIT_BY_STATE.get(state, EXIT_OK)


def _workflows(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "register":
            registered = client.register_workflow(_source(args.file))
            verb = "registered" if registered.created else "already registered"
            print(f"{registered.workflow.name} {registered.workflow.version}: {verb}")
            return EXIT_OK
        if args.action == "list":
            for workflow in client.list_workflows(args.name):
                print(
                    f"{workflow.name}  {workflow.version}  {workflow.hash[:12]}  "
                    f"{workflow.description}"
                )
            return EXIT_OK
        _print(client.get_workflow(args.name, args.version))
        return EXIT_OK
