"""The commands that talk to a running server: `execute --server`, `executions …`, `workflows …`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as pb_grpc
from maestro_server.api.convert import event_from_proto
from maestro_server.cli.progress import EXIT_BY_STATE, ProgressPrinter
from maestro_server.definition import load_workflow_file
from maestro_server.errors import EXIT_OK, exit_code_for_status
from maestro_server.model.execution import ExecutionState


class RemoteError(Exception):
    """A server answered with an error; carries the exit code it maps to."""

    def __init__(self, exc: grpc.RpcError) -> None:
        code = exc.code()
        lines = [f"maestro: {code.name}: {exc.details()}"]
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        for packed in status.details if status is not None else ():
            if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                packed.Unpack(bad)
                lines += [f"{v.field}: error: {v.description}" for v in bad.field_violations]
        super().__init__("\n".join(lines))
        self.exit_code = exit_code_for_status(code)


def _stub(args: argparse.Namespace) -> pb_grpc.OrchestratorStub:
    tls_ca: Path | None = getattr(args, "tls_ca", None)
    token: str | None = getattr(args, "token", None)
    if tls_ca is None:
        channel = grpc.insecure_channel(args.server)
        if token:  # a token over plaintext: for loopback and trusted networks only
            channel = grpc.intercept_channel(channel, _Bearer(token))
        return pb_grpc.OrchestratorStub(channel)
    credentials = grpc.ssl_channel_credentials(tls_ca.read_bytes())
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token)
        )
    return pb_grpc.OrchestratorStub(grpc.secure_channel(args.server, credentials))


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self._metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def _print(message: Any) -> None:
    json.dump(
        json_format.MessageToDict(message, preserving_proto_field_name=True), sys.stdout, indent=2
    )
    sys.stdout.write("\n")


def execute_remote(
    args: argparse.Namespace, data: dict[str, Any], printer: ProgressPrinter
) -> ExecutionState:
    """Run through a server, printing events as `maestro execute` does; the final state."""
    workflow = load_workflow_file(args.file)  # local diagnostics, and the files to attach
    request = pb.ExecuteWorkflowRequest(
        workflow_yaml=workflow.source, workflow_path=args.file, execution_id=args.execution_id or ""
    )
    request.input.update(data)
    for name, content in workflow.files.items():
        request.files[name] = content
    return _follow(_stub(args).ExecuteWorkflow(request), printer)


def _follow(stream: Any, printer: ProgressPrinter) -> ExecutionState:
    state = ExecutionState.PENDING
    output: Any = None
    try:
        for response in stream:
            event = event_from_proto(response.event)
            printer.show(event)
            state = event.state
            if event.terminal:
                output = event.output
    except grpc.RpcError as exc:
        raise RemoteError(exc) from None
    if state is ExecutionState.COMPLETED and not printer.jsonl:
        json.dump(output, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return state


def _call(method: Any, request: Any) -> Any:
    try:
        return method(request)
    except grpc.RpcError as exc:
        raise RemoteError(exc) from None


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
        if name == "cancel":
            sub.add_argument("--reason", default="")
        sub.set_defaults(run=_executions)

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
    stub = _stub(args)
    if args.action == "list":
        states = [pb.ExecutionState.Value(f"EXECUTION_STATE_{s.upper()}") for s in args.state]
        token = ""
        while True:
            page = _call(
                stub.ListExecutions,
                pb.ListExecutionsRequest(
                    workflow_name=args.workflow, states=states, page_token=token
                ),
            )
            for execution in page.executions:
                print(
                    f"{execution.execution_id}  {execution.workflow_name} "
                    f"{execution.workflow_version}  "
                    f"{pb.ExecutionState.Name(execution.state).removeprefix('EXECUTION_STATE_')}"
                )
            token = page.next_page_token
            if not token:
                return EXIT_OK
    if args.action == "get":
        _print(
            _call(
                stub.GetExecution, pb.GetExecutionRequest(execution_id=args.execution_id)
            ).execution
        )
        return EXIT_OK
    if args.action == "resume":
        _print(
            _call(
                stub.ResumeExecution, pb.ResumeExecutionRequest(execution_id=args.execution_id)
            ).execution
        )
        return EXIT_OK
    if args.action == "cancel":
        _print(
            _call(
                stub.CancelExecution,
                pb.CancelExecutionRequest(execution_id=args.execution_id, reason=args.reason),
            ).execution
        )
        return EXIT_OK
    printer = ProgressPrinter(jsonl=args.events == "jsonl")
    stream = stub.WatchExecution(
        pb.WatchExecutionRequest(execution_id=args.execution_id, after_sequence=args.after)
    )
    state = _follow(stream, printer)
    return EXIT_BY_STATE.get(state, EXIT_OK)


def _workflows(args: argparse.Namespace) -> int:
    stub = _stub(args)
    if args.action == "register":
        workflow = load_workflow_file(args.file)
        request = pb.RegisterWorkflowRequest(workflow_yaml=workflow.source, workflow_path=args.file)
        for name, content in workflow.files.items():
            request.files[name] = content
        response = _call(stub.RegisterWorkflow, request)
        verb = "registered" if response.created else "already registered"
        print(f"{response.workflow.name} {response.workflow.version}: {verb}")
        return EXIT_OK
    if args.action == "list":
        token = ""
        while True:
            page = _call(
                stub.ListWorkflows, pb.ListWorkflowsRequest(name=args.name, page_token=token)
            )
            for workflow in page.workflows:
                print(
                    f"{workflow.name}  {workflow.version}  {workflow.hash[:12]}  "
                    f"{workflow.description}"
                )
            token = page.next_page_token
            if not token:
                return EXIT_OK
    _print(
        _call(
            stub.GetWorkflow, pb.GetWorkflowRequest(name=args.name, version=args.version)
        ).workflow
    )
    return EXIT_OK
