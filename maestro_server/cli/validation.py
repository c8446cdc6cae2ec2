"""`maestro validate --reflect`: the same checks, with schemas fetched by server reflection.

A workflow is loaded once as it is; its gRPC services that name no `descriptor_set` or `protos`
are then asked for their schemas by server reflection (nothing else is called), and the
workflow is loaded again with them. A service that cannot be reflected is an error at the
service, since the check asked for could not be made. grpc is imported only then: a
`maestro validate` without `--reflect` runs without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from maestro_server.definition import load_workflow_file
from maestro_server.diagnostics import Diagnostic
from maestro_server.errors import InvalidInputError, InvalidWorkflowError
from maestro_server.model.workflow import Workflow
from maestro_server.schemas.descriptors import FileProtos
from maestro_server.secret_values import Secrets

REFLECTION_TIMEOUT = 10.0


def load_reflected(
    file: str | Path, endpoints: Mapping[str, str]
) -> tuple[Workflow, dict[str, FileProtos]]:
    """Load a workflow checked against reflected schemas too, and those schemas by service.

    Raises InvalidWorkflowError.
    """
    import asyncio

    from maestro_server.transports.grpc.reflected import reflected_services

    workflow = load_workflow_file(file)
    try:
        pointed = workflow.with_endpoints(endpoints)
    except KeyError as exc:
        raise InvalidInputError(f"--endpoint: {exc.args[0]}") from None
    services = reflected_services(pointed)
    if not services:
        return workflow, {}
    files, errors = asyncio.run(_reflect(pointed))
    if errors:
        raise InvalidWorkflowError(
            [
                Diagnostic(
                    pointed.services[name].location,
                    f"service '{name}' at {pointed.services[name].endpoint}: cannot read its "
                    f"schema by server reflection: {reason}",
                    "reflection-failed",
                    f"services.{name}",
                )
                for name, reason in sorted(errors.items())
            ]
        )
    return load_workflow_file(file, reflected=files), files


async def _reflect(workflow: Workflow) -> tuple[dict[str, FileProtos], dict[str, str]]:
    from maestro_server.transports.grpc.invoker import GrpcInvoker
    from maestro_server.transports.grpc.reflected import reflect_schemas, reflected_services

    invoker = GrpcInvoker(Secrets())  # MAESTRO_SECRET_… for services that want mTLS
    try:
        return await reflect_schemas(invoker, reflected_services(workflow), REFLECTION_TIMEOUT)
    finally:
        await invoker.close()


def endpoint_flags(flags: list[str]) -> dict[str, str]:
    """`SERVICE=ADDRESS` flags as a mapping."""
    endpoints = {}
    for flag in flags:
        name, sep, address = flag.partition("=")
        if not sep or not name or not address:
            raise InvalidInputError(f"--endpoint wants SERVICE=ADDRESS, not {flag!r}")
        endpoints[name] = address
    return endpoints
