"""GrpcInvoker: unary calls built at run time from descriptors, on pooled grpc.aio channels.

A schema read by reflection is cached per service, and read again, once per call, when the call
shows it stale: the request has a field the cached schema lacks, or the server answers
UNIMPLEMENTED (a method moved or renamed). If the fresh schema does not help, the error stands.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from maestro_server.model.workflow import GrpcMethod, Service
from maestro_server.schemas.descriptors import (
    SchemaError,
    build_pool,
    compile_protos,
    from_descriptor_set,
)
from maestro_server.schemas.methods import MethodNotFoundError, find_method
from maestro_server.transports.base import Call, CallError
from maestro_server.transports.grpc import reflection
from maestro_server.transports.grpc.codec import Codec
from maestro_server.transports.guard import SYSTEM_GUARD, AddressGuard
from maestro_server.transports.tls import ClientTls

log = structlog.get_logger("maestro.grpc")

# Codes that say the service is down or overloaded (they trip its circuit breaker).
_BREAKER_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})
# Services remembered. Each holds its schema files; `maestro serve` loads a workflow per
# execution, so this stays small: a running workflow's services, not every one ever sent.
_TARGETS_KEPT = 64
_CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 0),  # the engine's retry policy is the only retry layer
    # Channels with different TLS identities must not share connections to one target.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


@dataclass(frozen=True, slots=True)
class _Method:
    path: str
    request: type[Message]
    response: type[Message]
    pool: descriptor_pool.DescriptorPool
    call: Callable[..., Any]
    reflected: bool
    """The schema came from the server's reflection, so it can go stale."""
    channel: grpc.aio.Channel
    codec: Codec


class _Schema:
    """A service's descriptors and the methods resolved from them."""

    def __init__(
        self,
        pool: descriptor_pool.DescriptorPool,
        files: list[descriptor.FileDescriptor],
        *,
        reflected: bool,
    ) -> None:
        self.pool = pool
        self.codec = Codec(pool)
        self.reflected = reflected
        self.services = [service for file in files for service in file.services_by_name.values()]

    def find(self, method: GrpcMethod, service: Service) -> descriptor.MethodDescriptor:
        try:
            return find_method(self.pool, self.services, method.name, method.service)
        except MethodNotFoundError as exc:
            raise _unknown(service, str(exc)) from None


def _unknown(service: Service, message: str) -> CallError:
    return CallError(
        "UNKNOWN_METHOD",
        f"service '{service.name}' at {service.endpoint}: {message}",
        service=service.name,
    )


class GrpcInvoker:
    """Calls gRPC services from their reflected or supplied schema; one channel per endpoint."""

    def __init__(
        self, secrets: Mapping[str, str] | None = None, *, guard: AddressGuard | None = SYSTEM_GUARD
    ) -> None:
        self._secrets: Mapping[str, str] = secrets or {}
        self._guard = guard
        self._channels: dict[tuple[str, ClientTls | None], grpc.aio.Channel] = {}
        self._schemas: dict[tuple[str, ...], _Schema] = {}
        # By schema, method and channel: a method resolved for one TLS identity is not reused
        # by a service with another.
        self._methods: dict[tuple[tuple[str, ...], str, grpc.aio.Channel], _Method] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        # A service's schema key and channel, by the Service object (workflows are immutable
        # and outlive their calls): hashing its files and reading its TLS once, not per call.
        self._targets: dict[int, tuple[Service, tuple[str, ...], grpc.aio.Channel]] = {}

    async def close(self) -> None:
        """Close every channel."""
        channels, self._channels = self._channels, {}
        self._targets = {}
        await asyncio.gather(*(channel.close() for channel in channels.values()))

    def channel(self, service: Service) -> grpc.aio.Channel:
        """The pooled channel of a service's endpoint (and TLS settings)."""
        tls = ClientTls.of(service, self._secrets)
        key = (service.endpoint, tls)
        channel = self._channels.get(key)
        if channel is None:
            if tls is None:
                channel = grpc.aio.insecure_channel(service.endpoint, options=_CHANNEL_OPTIONS)
            else:
                credentials = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)
                options: list[tuple[str, Any]] = list(_CHANNEL_OPTIONS)
                if tls.server_name:
                    options.append(("grpc.ssl_target_name_override", tls.server_name))
                channel = grpc.aio.secure_channel(service.endpoint, credentials, options=options)
            self._channels[key] = channel
        return channel

    def _target(self, service: Service) -> tuple[tuple[str, ...], grpc.aio.Channel]:
        """The schema key and the channel of a service."""
        cached = self._targets.get(id(service))
        if cached is not None and cached[0] is service:
            return cached[1], cached[2]
        key, channel = _schema_key(service), self.channel(service)
        if len(self._targets) >= _TARGETS_KEPT:
            self._targets.clear()
        self._targets[id(service)] = (service, key, channel)
        return key, channel

    async def invoke(self, call: Call) -> Any:
        """Make one unary call; the response comes back as a dict with proto field names."""
        request = call.request
        service = request.service
        assert isinstance(request.method, GrpcMethod)
        if self._guard is not None:
            await self._guard.check(service)
        metadata = [
            *request.headers.items(),
            *call.trace_headers.items(),
            ("idempotency-key", request.idempotency_key),
            ("maestro-attempt", str(call.attempt)),
        ]
        refreshed = False
        while True:
            method = await self._method(service, request.method, call.timeout)
            try:
                message = _request(method, request.payload, service)
            except CallError:
                if (
                    refreshed
                    or not method.reflected
                    or not _fits_but_for_unknown_fields(method, request.payload)
                ):
                    raise
                self._forget(service, method, "the request has a field the schema lacks")
                refreshed = True
                continue
            await _connected(method.channel, service, call.timeout)
            try:
                response = await method.call(message, timeout=call.timeout, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                # UNIMPLEMENTED: the method did not run, so asking again is safe.
                if refreshed or not method.reflected or exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise _call_error(exc, service.name) from None
                self._forget(service, method, "the server answered UNIMPLEMENTED")
                refreshed = True
                continue
            break
        return method.codec.json(response)

    async def _method(self, service: Service, method: GrpcMethod, timeout: float) -> _Method:
        key, channel = self._target(service)
        cached = self._methods.get((key, str(method), channel))
        if cached is not None:
            return cached
        schema = await self._schema(service, key, timeout)
        found = schema.find(method, service)
        if found.client_streaming or found.server_streaming:
            raise CallError(
                "UNKNOWN_METHOD",
                f"method '{found.full_name}' streams; Maestro calls unary methods",
                service=service.name,
            )
        request_class = message_factory.GetMessageClass(found.input_type)
        response_class = message_factory.GetMessageClass(found.output_type)
        path = f"/{found.containing_service.full_name}/{found.name}"
        multicallable = channel.unary_unary(
            path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        resolved = _Method(
            path,
            request_class,
            response_class,
            schema.pool,
            multicallable,
            schema.reflected,
            channel,
            schema.codec,
        )
        self._methods[(key, str(method), channel)] = resolved
        return resolved

    def _forget(self, service: Service, stale: _Method, reason: str) -> None:
        """Drop a stale schema, so the next use reads it again (unless that already happened)."""
        key = _schema_key(service)
        schema = self._schemas.get(key)
        if schema is not None and schema.pool is stale.pool:
            del self._schemas[key]
            log.info("reading the schema again", service=service.name, reason=reason)
        self._methods = {k: m for k, m in self._methods.items() if m.pool is not stale.pool}

    async def _schema(self, service: Service, key: tuple[str, ...], timeout: float) -> _Schema:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            schema = self._schemas.get(key)
            if schema is None:
                schema = self._schemas[key] = await self._load_schema(service, timeout)
            return schema

    async def _load_schema(self, service: Service, timeout: float) -> _Schema:
        try:
            if service.descriptor_set is not None:
                files = from_descriptor_set(
                    service.files[service.descriptor_set], service.descriptor_set
                )
            elif service.protos:
                files = await asyncio.to_thread(
                    compile_protos, service.files, service.protos, service.import_paths
                )
            else:
                files = await reflection.fetch_files(self.channel(service), timeout)
            pool = build_pool(files)
            reflected = service.descriptor_set is None and not service.protos
            return _Schema(pool, [pool.FindFileByName(f.name) for f in files], reflected=reflected)
        except grpc.aio.AioRpcError as exc:
            error = _call_error(exc, service.name)
            error.message = f"server reflection failed: {error.message}"
            error.maybe_executed = False  # the method itself was never called
            raise error from None
        except reflection.NoReflectionError:
            raise CallError(
                "SCHEMA_ERROR",
                f"service '{service.name}' at {service.endpoint} does not offer server "
                "reflection; give the service a descriptor_set or protos",
                service=service.name,
            ) from None
        except SchemaError as exc:
            raise CallError(
                "SCHEMA_ERROR", f"service '{service.name}': {exc}", service=service.name
            ) from None


def _request(method: _Method, payload: Any, service: Service) -> Message:
    try:
        return method.codec.message(method.request, payload)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise CallError(
            "INVALID_REQUEST",
            f"input does not fit {method.request.DESCRIPTOR.full_name}: {exc}",
            service=service.name,
        ) from None


def _fits_but_for_unknown_fields(method: _Method, payload: Any) -> bool:
    """Whether the payload fits once the fields the schema does not know are left out."""
    try:
        json_format.ParseDict(
            payload, method.request(), ignore_unknown_fields=True, descriptor_pool=method.pool
        )
    except (json_format.ParseError, TypeError, ValueError):
        return False
    return True


def _schema_key(service: Service) -> tuple[str, ...]:
    digest = hashlib.sha256()
    for name in sorted(service.files):
        digest.update(name.encode() + b"\0" + service.files[name])
    return (service.name, service.endpoint, digest.hexdigest())


def _call_error(exc: grpc.aio.AioRpcError, service: str) -> CallError:
    """The error of a call that was sent: the channel was connected when it went out.

    A timeout, or a connection lost while the call was out, may have left its effect behind.
    """
    code = exc.code().name
    return CallError(
        code,
        exc.details() or code,
        service=service,
        maybe_executed=code in ("DEADLINE_EXCEEDED", "UNAVAILABLE"),
        counts_for_breaker=code in _BREAKER_CODES,
        retry_after=_pushback(exc.trailing_metadata()),
    )


async def _connected(channel: grpc.aio.Channel, service: Service, timeout: float) -> None:
    """Return once the channel is connected, or raise a CallError known not to have been sent.

    Whether a request left is decided here from the channel's state, not from an error's
    words: a channel that cannot become READY (the name does not resolve, the connection is
    refused, the TLS handshake fails) never carried the request.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state = channel.get_state(try_to_connect=True)
    while state is not grpc.ChannelConnectivity.READY:
        if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
            raise CallError(
                "UNAVAILABLE",
                f"cannot connect to {service.endpoint} (the name did not resolve, the "
                "connection was refused or the TLS handshake failed); the request was not sent",
                service=service.name,
                counts_for_breaker=True,
            )
        try:
            async with asyncio.timeout_at(deadline):
                await channel.wait_for_state_change(state)
        except TimeoutError:
            raise CallError(
                "DEADLINE_EXCEEDED",
                f"no connection to {service.endpoint} within {timeout:g}s; the request was not "
                "sent",
                service=service.name,
                counts_for_breaker=True,
            ) from None
        state = channel.get_state(try_to_connect=True)


def _pushback(metadata: Any) -> float | None:
    for key, value in metadata or ():
        if key == "grpc-retry-pushback-ms":
            try:
                return int(value) / 1000
            except ValueError:
                return -1.0  # unparseable pushback means "do not retry"
    return None
