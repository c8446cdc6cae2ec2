"""Schemas of a workflow's gRPC services fetched by server reflection, for validation.

Only for services that name no `descriptor_set` or `protos`; the calls are reflection requests
and nothing else. A service that cannot be reflected is reported by name, not raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc

from maestro_server.model.workflow import Service, ServiceType, Workflow
from maestro_server.schemas.descriptors import FileProtos, SchemaError
from maestro_server.transports.base import CallError
from maestro_server.transports.grpc import reflection
from maestro_server.transports.grpc.invoker import GrpcInvoker


def reflected_services(workflow: Workflow) -> list[Service]:
    """The gRPC services whose schema only server reflection can give."""
    return [
        service
        for service in workflow.services.values()
        if service.type is ServiceType.GRPC
        and service.descriptor_set is None
        and not service.protos
    ]


async def reflect_schemas(
    invoker: GrpcInvoker, services: Iterable[Service], timeout: float
) -> tuple[dict[str, FileProtos], dict[str, str]]:
    """Each service's files by name, and why each service that gave none did not."""
    services = list(services)
    results = await asyncio.gather(*(_reflect(invoker, service, timeout) for service in services))
    files: dict[str, FileProtos] = {}
    errors: dict[str, str] = {}
    for service, result in zip(services, results, strict=True):
        if isinstance(result, str):
            errors[service.name] = result
        else:
            files[service.name] = result
    return files, errors


async def _reflect(invoker: GrpcInvoker, service: Service, timeout: float) -> FileProtos | str:
    try:
        return await reflection.fetch_files(invoker.channel(service), timeout)
    except reflection.NoReflectionError:
        return "it does not offer server reflection"
    except SchemaError as exc:
        return str(exc)
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    except CallError as exc:  # e.g. a TLS secret this process does not have
        return exc.message
