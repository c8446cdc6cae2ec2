"""The `maestro.v1.Orchestrator` service: thin handlers over the execution manager and store.

The manager runs executions, so starting, cancelling and resuming one go through it; the
store is given to the servicer as well, for definitions and for reading executions.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from maestro_server import tracing
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as pb_grpc
from maestro_server.api.context import CallContext
from maestro_server.api.convert import (
    diagnostic_to_proto,
    event_to_proto,
    event_types_from_proto,
    execution_to_proto,
    states_from_proto,
    struct_to_dict,
    workflow_to_proto,
)
from maestro_server.api.errors import internal_status, to_status
from maestro_server.api.graph import workflow_graph
from maestro_server.api.requests import attach_requests
from maestro_server.api.sub_workflow_checks import check_registered_children, registered_refs
from maestro_server.definition import load_workflow
from maestro_server.definition.admission import AdmissionPolicy
from maestro_server.definition.endpoint_map import point_services
from maestro_server.engine.manager import ExecutionManager
from maestro_server.engine.starter import StartOutcome
from maestro_server.errors import InvalidRequestError, InvalidWorkflowError, MaestroError
from maestro_server.model.execution import Event, EventType
from maestro_server.model.workflow import Workflow
from maestro_server.schemas.descriptors import FileProtos
from maestro_server.store.base import Store, stored_workflow

log = structlog.get_logger("maestro.api")
Context = CallContext
R = TypeVar("R")
_PARSED_CACHE_SIZE = 256
Reflector = Callable[[Workflow], Awaitable[Mapping[str, FileProtos]]]
"""Fetches, by server reflection, the schemas of a workflow's services that name none."""


def _unary(handler: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Turn MaestroErrors into statuses; anything else is a bug, reported as INTERNAL."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Context) -> R:
        try:
            return await handler(self, request, context)
        except MaestroError as exc:
            await context.abort_with_status(to_status(exc))
        except Exception:
            log.exception("request failed", method=handler.__name__)
            await context.abort_with_status(internal_status())
        raise AssertionError("unreachable: abort raises")

    return wrapper


def _streaming(handler: Callable[..., AsyncIterator[R]]) -> Callable[..., AsyncIterator[R]]:
    """The same as _unary, for server-streaming handlers."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Context) -> AsyncIterator[R]:
        try:
            async for response in handler(self, request, context):
                yield response
        except MaestroError as exc:
            await context.abort_with_status(to_status(exc))
        except Exception:
            log.exception("request failed", method=handler.__name__)
            await context.abort_with_status(internal_status())

    return wrapper


class OrchestratorServicer(pb_grpc.OrchestratorServicer):
    """Every RPC of `maestro.v1.Orchestrator`."""

    def __init__(
        self,
        manager: ExecutionManager,
        store: Store,
        policy: AdmissionPolicy | None = None,
        reflect: Reflector | None = None,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        # Executions start, stop and resume through the manager, which runs them; everything
        # else (definitions, and reading executions and their logs) is the store's.
        self._manager = manager
        self._store = store
        self._policy = policy or AdmissionPolicy()
        self._reflect = reflect
        """With `maestro serve --validate-with-reflection`: checks registered workflows against
        schemas fetched by reflection too."""
        self._endpoints = dict(endpoints or {})
        """This server's addresses for services, by name (`maestro serve --endpoint`)."""
        self._parsed: OrderedDict[str, Workflow] = OrderedDict()
        self.subscribers = 0
        """Event streams open now."""

    # -- workflows ---------------------------------------------------------------------------

    async def _load(
        self,
        yaml: str,
        path: str,
        files: Any,
        field: str = "workflow_yaml",
        *,
        reflect: bool = False,
    ) -> Workflow:
        """Parse a workflow sent over the wire, with only its `files`, never the server's disk.

        Its services are pointed at this server's `--endpoint` addresses, then checked against
        the admission policy. Problems are blamed on the request's `field` (or on the one of
        its `files` they are in). Parsed definitions are kept by content, so a repeated one
        compiles once; parsing runs in a thread, as compiling `protos` blocks. With `reflect`
        (and a reflector), the services without a schema file are checked against what
        reflection gives, after the admission policy has allowed their endpoints.
        """
        files = dict(files)
        reflect = reflect and self._reflect is not None
        key = hashlib.sha256(repr((yaml, path, sorted(files.items()), reflect)).encode())
        workflow = self._parsed.get(key.hexdigest())
        if workflow is not None:
            self._parsed.move_to_end(key.hexdigest())
            return workflow
        name = path or "workflow.yaml"
        try:
            workflow = await asyncio.to_thread(load_workflow, yaml, path=name, files=files)
            workflow, _ = point_services(workflow, self._endpoints)
            self._policy.check(workflow)
            if reflect and self._reflect is not None:
                reflected = await self._reflect(workflow)
                if reflected:
                    workflow = await asyncio.to_thread(
                        load_workflow, yaml, path=name, files=files, reflected=reflected
                    )
                    workflow, _ = point_services(workflow, self._endpoints)
        except InvalidWorkflowError as exc:
            raise exc.in_request(field, list(files)) from None
        self._parsed[key.hexdigest()] = workflow
        if len(self._parsed) > _PARSED_CACHE_SIZE:
            self._parsed.popitem(last=False)
        return workflow

    async def _graph(self, yaml: str, path: str, files: Any) -> list[pb.WorkflowStep]:
        """The step graph of a stored definition; none when today's policy refuses it."""
        try:
            return workflow_graph(await self._load(yaml, path, files))
        except MaestroError as exc:
            log.info("no graph for a stored definition", path=path, reason=exc.message)
            return []

    async def _resolve(self, request: Any) -> Workflow:
        which = request.WhichOneof("workflow")
        if which == "workflow_yaml":
            return await self._load(request.workflow_yaml, request.workflow_path, request.files)
        if which == "reference":
            if not request.reference.name:
                raise InvalidRequestError("reference.name", "reference.name is empty")
            if request.files:
                raise InvalidRequestError(
                    "files",
                    "files go with workflow_yaml; a registered workflow has its own files",
                )
            stored = await self._store.get_workflow(
                request.reference.name, request.reference.version
            )
            return await self._load(stored.yaml, stored.path, stored.files, "reference")
        raise InvalidRequestError(
            "workflow_yaml", "give the workflow: either workflow_yaml or reference"
        )

    async def _check_children(self, workflow: Workflow, field: str, files: Any) -> None:
        """Its registered sub-workflows are registered here, and none runs it again."""
        if next(registered_refs(workflow), None) is None:
            return
        try:
            await check_registered_children(self._store, workflow)
        except InvalidWorkflowError as exc:
            raise exc.in_request(field, list(files)) from None

    async def _start(self, request: Any, context: Context) -> StartOutcome:
        workflow = await self._resolve(request)
        if request.WhichOneof("workflow") == "workflow_yaml":  # registered ones were checked
            await self._check_children(workflow, "workflow_yaml", request.files)
        return await self._manager.start(
            workflow,
            struct_to_dict(request.input),
            request.execution_id,
            tracing.incoming(context.invocation_metadata()),
            {name: a for name, a in self._endpoints.items() if name in workflow.services},
        )

    @_unary
    async def ValidateWorkflow(
        self, request: pb.ValidateWorkflowRequest, context: Context
    ) -> pb.ValidateWorkflowResponse:
        """Diagnostics for a workflow; an invalid one is an answer, not an error."""
        try:
            workflow = await self._load(
                request.workflow_yaml, request.workflow_path, request.files, reflect=True
            )
        except InvalidWorkflowError as exc:
            return pb.ValidateWorkflowResponse(
                valid=False, diagnostics=[diagnostic_to_proto(d) for d in exc.diagnostics]
            )
        return pb.ValidateWorkflowResponse(valid=True, steps=workflow_graph(workflow))

    @_unary
    async def RegisterWorkflow(
        self, request: pb.RegisterWorkflowRequest, context: Context
    ) -> pb.RegisterWorkflowResponse:
        """Store a definition under its name and version."""
        workflow = await self._load(
            request.workflow_yaml, request.workflow_path, request.files, reflect=True
        )
        await self._check_children(workflow, "workflow_yaml", request.files)
        stored, created = await self._store.put_workflow(
            stored_workflow(workflow, workflow.path, datetime.now(UTC))
        )
        message = workflow_to_proto(stored)
        message.steps.extend(workflow_graph(workflow))
        return pb.RegisterWorkflowResponse(workflow=message, created=created)

    @_unary
    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: Context
    ) -> pb.GetWorkflowResponse:
        """A stored definition (the latest version when none is given)."""
        if not request.name:
            raise InvalidRequestError("name", "name is empty")
        stored = await self._store.get_workflow(request.name, request.version)
        message = workflow_to_proto(stored)
        message.steps.extend(await self._graph(stored.yaml, stored.path, stored.files))
        return pb.GetWorkflowResponse(workflow=message)

    @_unary
    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: Context
    ) -> pb.ListWorkflowsResponse:
        """Stored definitions, a page at a time."""
        _check_page_size(request.page_size)
        page = await self._store.list_workflows(request.name, request.page_size, request.page_token)
        return pb.ListWorkflowsResponse(
            workflows=[workflow_to_proto(w, full=False) for w in page.items],
            next_page_token=page.next_token,
        )

    # -- executions --------------------------------------------------------------------------

    @_streaming
    async def ExecuteWorkflow(
        self, request: pb.ExecuteWorkflowRequest, context: Context
    ) -> AsyncIterator[pb.ExecuteWorkflowResponse]:
        """Start (or find, for a repeated execution_id) and stream its events to the end.

        Only those of `event_types`, when given: a bad filter is refused before the start.
        """
        wanted = event_types_from_proto(request.event_types)
        started = await self._start(request, context)
        # A new execution's watch begins with the events it was created with, and the later
        # ones come from memory (one appended before the watch is in place is read from the log).
        following = self._follow(started.record.execution_id, 0, wanted, started.events)
        async for event in following:
            yield pb.ExecuteWorkflowResponse(event=event_to_proto(event))

    async def _follow(
        self,
        execution_id: str,
        after_sequence: int,
        wanted: frozenset[EventType],
        created_with: Sequence[Event] = (),
    ) -> AsyncIterator[Event]:
        """The log's events (of the `wanted` types, or all) to the end of the stream.

        The store's watch ends the stream (after the terminal event that is the last of its
        log) whether or not that event is wanted; the sequences stay the log's.
        """
        self.subscribers += 1
        try:
            watched = self._store.watch(execution_id, after_sequence, created_with=created_with)
            async for event in watched:
                if not wanted or event.type in wanted:
                    yield event
        finally:
            self.subscribers -= 1

    @_unary
    async def StartWorkflow(
        self, request: pb.StartWorkflowRequest, context: Context
    ) -> pb.StartWorkflowResponse:
        """Start (or find, for a repeated execution_id) and answer at once."""
        started = await self._start(request, context)
        return pb.StartWorkflowResponse(
            execution_id=started.record.execution_id, created=started.created
        )

    @_streaming
    async def WatchExecution(
        self, request: pb.WatchExecutionRequest, context: Context
    ) -> AsyncIterator[pb.WatchExecutionResponse]:
        """Replay after `after_sequence`, then follow live to the terminal event."""
        if request.after_sequence < 0:
            raise InvalidRequestError("after_sequence", "after_sequence must not be negative")
        wanted = event_types_from_proto(request.event_types)
        # An unknown execution is NOT_FOUND before the first event: the watch looks it up.
        watched = self._follow(_execution_id(request), request.after_sequence, wanted)
        async for event in watched:
            yield pb.WatchExecutionResponse(event=event_to_proto(event))

    @_unary
    async def GetExecution(
        self, request: pb.GetExecutionRequest, context: Context
    ) -> pb.GetExecutionResponse:
        """One execution, with its steps."""
        record = await self._store.get_execution(_execution_id(request))
        message = execution_to_proto(record)
        attach_requests(message, await self._store.saved_requests(record.execution_id))
        if record.source is not None:
            message.workflow_yaml = record.source.yaml
            message.graph.extend(
                await self._graph(record.source.yaml, record.source.path, record.source.files)
            )
        return pb.GetExecutionResponse(execution=message)

    @_unary
    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: Context
    ) -> pb.ListExecutionsResponse:
        """Executions, newest first, a page at a time."""
        _check_page_size(request.page_size)
        page = await self._store.list_executions(
            request.workflow_name,
            states_from_proto(request.states),
            request.page_size,
            request.page_token,
            parent_execution_id=request.parent_execution_id,
        )
        return pb.ListExecutionsResponse(
            executions=[execution_to_proto(r, with_steps=False) for r in page.items],
            next_page_token=page.next_token,
        )

    @_unary
    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: Context
    ) -> pb.CancelExecutionResponse:
        """Stop forward progress; the execution compensates what it did (idempotent)."""
        record = await self._manager.cancel(_execution_id(request), request.reason)
        return pb.CancelExecutionResponse(execution=execution_to_proto(record))

    @_unary
    async def ResumeExecution(
        self, request: pb.ResumeExecutionRequest, context: Context
    ) -> pb.ResumeExecutionResponse:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        record = await self._manager.resume(_execution_id(request))
        return pb.ResumeExecutionResponse(execution=execution_to_proto(record))

    @_unary
    async def SignalExecution(
        self, request: pb.SignalExecutionRequest, context: Context
    ) -> pb.SignalExecutionResponse:
        """Store a signal for an execution and return at once (an id again changes nothing)."""
        signal, created = await self._manager.signal(
            _execution_id(request),
            request.name,
            struct_to_dict(request.payload),
            request.signal_id,
        )
        return pb.SignalExecutionResponse(signal_id=signal.signal_id, created=created)


def _check_page_size(size: int) -> None:
    if not 0 <= size <= 1000:
        raise InvalidRequestError("page_size", f"page_size must be from 0 to 1000, not {size}")


def _execution_id(request: Any) -> str:
    """The request's execution id; an empty one is the caller's mistake, not an unknown id."""
    if not request.execution_id:
        raise InvalidRequestError("execution_id", "execution_id is empty")
    return str(request.execution_id)
