"""The Orchestrator gRPC server: the service, health checking, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as pb_grpc
from maestro_server.api.auth import TokenAuthInterceptor, server_credentials
from maestro_server.api.decoding import DecodeErrorInterceptor
from maestro_server.api.http.face import HttpFace
from maestro_server.api.servicer import OrchestratorServicer
from maestro_server.api.sub_workflow_checks import Registering, check_registered_children
from maestro_server.definition import load_workflow_file
from maestro_server.definition.admission import AdmissionPolicy
from maestro_server.definition.inputs import MAX_REQUEST_BYTES
from maestro_server.diagnostics import Diagnostic
from maestro_server.engine.dependencies import DEFAULT_MAX_FOR_EACH_ELEMENTS
from maestro_server.engine.manager import ExecutionManager
from maestro_server.errors import InvalidWorkflowError
from maestro_server.metrics import Metrics
from maestro_server.model.workflow import DEFAULT_MAX_WORKFLOW_DEPTH, Workflow
from maestro_server.schemas.descriptors import FileProtos
from maestro_server.secret_values import Secrets
from maestro_server.store.base import Store, StoredWorkflow, stored_workflow
from maestro_server.transports.grpc.reflected import reflect_schemas, reflected_services
from maestro_server.transports.guard import SYSTEM_GUARD
from maestro_server.transports.registry import Transports

log = structlog.get_logger("maestro.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Orchestrator"].full_name
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_TIMEOUT = 5.0
"""Seconds a downstream service has to answer reflection when a workflow is registered."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How `maestro serve` runs."""

    host: str = "127.0.0.1"
    """The address to bind; loopback unless the operator says otherwise (see cli/serve.py)."""
    port: int = 8080
    max_concurrent_executions: int = 1000
    max_for_each_elements: int = DEFAULT_MAX_FOR_EACH_ELEMENTS
    """The longest list a for_each step may run over (`--max-for-each-elements`)."""
    max_workflow_depth: int = DEFAULT_MAX_WORKFLOW_DEPTH
    """How deep sub-workflows may nest (`--max-workflow-depth`)."""
    shutdown_grace: float = 30.0
    workflows_dir: Path | None = None
    max_message_bytes: int = MAX_REQUEST_BYTES
    retention: float | None = None
    """Seconds after which finished executions are removed; kept forever when None."""
    lease_interval: float = 5.0
    """How often leases are renewed and abandoned executions looked for (a third of the
    lease, so a live owner never lets its lease lapse)."""
    stop_signals: tuple[int, ...] = field(default=(signal.SIGTERM, signal.SIGINT))
    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    secrets_dir: Path | None = None
    auth_tokens: dict[str, str] | None = None
    """Token → role; None leaves the API open."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (`/metrics`); none when None."""
    http_port: int | None = None
    """Serve the API over HTTP (Connect), the probes and the console on this port; none when
    None, a free one when 0."""
    validate_with_reflection: bool = False
    """Check registered workflows against the schemas their services give by reflection."""
    endpoints: Mapping[str, str] = field(default_factory=dict)
    """This environment's addresses for workflows' services, by service name."""


def add_reflection(server: grpc.aio.Server, names: list[str]) -> None:
    """Serve server reflection as both v1 and v1alpha.

    grpcio-reflection serves only v1alpha; v1 is the same messages under another package, so
    the same implementation serves v1 too.
    """
    all_names = [*names, reflection.SERVICE_NAME, REFLECTION_V1]
    reflection.enable_server_reflection(all_names, server)
    servicer = reflection.aio.ReflectionServicer(all_names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


async def register_folder(store: Store, folder: Path) -> int:
    """Register every workflow YAML in a folder; invalid files stop the start with diagnostics.

    Their registered sub-workflows are checked as RegisterWorkflow checks them, against the
    folder's workflows too: an unknown name, or a cycle of names, is refused.
    """
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    problems: list[Diagnostic] = []
    loaded: list[tuple[Path, Workflow, StoredWorkflow]] = []
    for path in files:
        try:
            workflow = load_workflow_file(path)
        except InvalidWorkflowError as exc:
            problems.extend(exc.diagnostics)
            continue
        loaded.append((path, workflow, stored_workflow(workflow, path.name, datetime.now(UTC))))
    registering = Registering(store, [stored for _, _, stored in loaded])
    for path, workflow, stored in loaded:
        try:
            await check_registered_children(registering, workflow)
        except InvalidWorkflowError as exc:
            problems.extend(exc.diagnostics)
            continue
        await store.put_workflow(stored)
        log.info(
            "workflow registered", name=workflow.name, version=workflow.version, file=str(path)
        )
    if problems:
        raise InvalidWorkflowError(problems)
    return len(files)


class OrchestratorServer:
    """A running server; `stop()` drains it."""

    def __init__(self, settings: ServerSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        secrets = Secrets(settings.secrets_dir)
        guard = SYSTEM_GUARD if settings.policy.guards_addresses else None
        self.transports = Transports(secrets, guard=guard)
        self.metrics = Metrics()
        self.manager = ExecutionManager(
            store,
            self.transports,
            max_concurrent=settings.max_concurrent_executions,
            max_for_each_elements=settings.max_for_each_elements,
            secrets=secrets,
            metrics=self.metrics,
            max_workflow_depth=settings.max_workflow_depth,
            endpoints=settings.endpoints,
        )
        options = [
            # The interceptor refuses what is over the limit, with an ErrorInfo; the transport
            # lets twice as much through to it, and refuses (without one) only beyond.
            ("grpc.max_receive_message_length", 2 * settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        interceptors: list[grpc.aio.ServerInterceptor] = [
            DecodeErrorInterceptor(settings.max_message_bytes)
        ]
        if settings.auth_tokens:
            interceptors.insert(0, TokenAuthInterceptor(settings.auth_tokens))
        self.server = grpc.aio.server(options=options, interceptors=interceptors)
        reflect = self._reflect if settings.validate_with_reflection else None
        self.servicer = OrchestratorServicer(
            self.manager, store, settings.policy, reflect, settings.endpoints
        )
        pb_grpc.add_OrchestratorServicer_to_server(self.servicer, self.server)
        self.metrics.watch(
            lambda: {
                "executions_in_flight": self.manager.running,
                "event_stream_subscribers": self.servicer.subscribers,
            },
            self.manager.breakers.states,
        )
        self.metrics_port = 0
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        add_reflection(self.server, [SERVICE_NAME, health.SERVICE_NAME])
        self.port = 0
        self.http_port = 0
        self.ready = False
        """True from the end of start() to the beginning of stop(), for `/readyz`."""
        self.http = self._http_face() if settings.http_port is not None else None
        self._tasks: list[asyncio.Task[None]] = []

    def _http_face(self) -> HttpFace:
        settings = self.settings
        tls = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            tls = (settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        return HttpFace(
            self.servicer,
            host=settings.host,
            port=settings.http_port or 0,
            ready=lambda: self.ready,
            tokens=settings.auth_tokens,
            max_message_bytes=settings.max_message_bytes,
            tls=tls,
        )

    async def _reflect(self, workflow: Workflow) -> dict[str, FileProtos]:
        """Schemas by reflection for a workflow being registered; a failure skips the check."""
        files, errors = await reflect_schemas(
            self.transports.grpc, reflected_services(workflow), REFLECTION_TIMEOUT
        )
        for service, reason in errors.items():
            log.warning(
                "schema not checked: reflection failed",
                workflow=workflow.name,
                service=service,
                reason=reason,
            )
        return files

    async def start(self) -> int:
        """Bind, register the workflows folder, start; NOT_SERVING until ready."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            credentials = server_credentials(
                self.settings.tls_cert, self.settings.tls_key, self.settings.tls_client_ca
            )
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        await self.server.start()
        if self.http is not None:
            self.http_port = await self.http.start()
        if self.settings.workflows_dir is not None:
            await register_folder(self.store, self.settings.workflows_dir)
        if self.settings.metrics_port is not None:
            host = self.settings.host.strip("[]")
            self.metrics_port = self.metrics.serve(self.settings.metrics_port, host)
        await self.manager.recover()
        self._tasks = [asyncio.create_task(self.manager.keep_leases(self.settings.lease_interval))]
        if self.settings.retention is not None:
            self._tasks.append(
                asyncio.create_task(self.manager.keep_retention(self.settings.retention))
            )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.ready = True
        log.info(
            "serving",
            metrics_port=self.metrics_port,
            http_port=self.http_port,
            host=self.settings.host,
            port=self.port,
            max_concurrent_executions=self.settings.max_concurrent_executions,
        )
        return self.port

    async def stop(self) -> None:
        """Drain and stop.

        Health goes NOT_SERVING, new executions are refused, running ones get the grace period
        to finish, then the server stops.
        """
        log.info("shutting down", grace=self.settings.shutdown_grace)
        self.ready = False
        await self.health.enter_graceful_shutdown()
        # Leases are kept while draining, so no other replica takes over running executions.
        await self.manager.drain(self.settings.shutdown_grace)
        for task in self._tasks:
            task.cancel()
        if self.http is not None:
            await self.http.stop()
        await self.server.stop(grace=1.0)
        await self.transports.close()
        log.info("stopped")

    async def serve_until_signalled(self) -> None:
        """Start, wait for a stop signal, drain."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in self.settings.stop_signals:
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()
