"""A server's own addresses for workflows' services: `maestro serve --endpoint SERVICE=ADDRESS`.

A workflow names the endpoints of the environment it was written for (the example's
`auth-service:50051`); a server elsewhere maps those service names to its own addresses. The
mapping applies to every workflow that has a service of that name, is checked like the
workflow's own endpoints, and is kept with each execution (see ExecutionSource.endpoints).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from maestro_server.definition.services import endpoint_form_problem
from maestro_server.diagnostics import Diagnostic
from maestro_server.errors import InvalidInputError, InvalidWorkflowError
from maestro_server.model.workflow import Step, Workflow


def parse_endpoints(flags: Iterable[str], source: str = "--endpoint") -> dict[str, str]:
    """`SERVICE=ADDRESS` pairs → a mapping; a malformed one is an error naming it."""
    endpoints: dict[str, str] = {}
    for flag in flags:
        name, sep, address = flag.partition("=")
        name, address = name.strip(), address.strip()
        if not sep or not name or not address:
            raise InvalidInputError(f"{source} wants SERVICE=ADDRESS, not {flag!r}")
        endpoints[name] = address
    return endpoints


def read_endpoint_file(path: Path) -> dict[str, str]:
    """An endpoint file: one `SERVICE=ADDRESS` per line; `#` starts a comment."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the endpoints: {exc.strerror}") from None
    endpoints: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        pair = line.split("#", 1)[0].strip()
        if pair:
            endpoints |= parse_endpoints([pair], f"{path}:{number}:")
    return endpoints


def point_services(
    workflow: Workflow, endpoints: Mapping[str, str]
) -> tuple[Workflow, dict[str, str]]:
    """The workflow with its services the mapping names pointed there, and what was applied.

    An address that does not fit its service's type (a URL for a gRPC service) is a problem
    at that service's endpoint.
    """
    applied = {name: address for name, address in endpoints.items() if name in workflow.services}
    problems = []
    for name, address in applied.items():
        service = workflow.services[name]
        problem = endpoint_form_problem(service.type, address)
        if problem is not None:
            problems.append(
                Diagnostic(
                    service.endpoint_location or service.location,
                    f"the server's --endpoint for service '{name}': {problem}",
                    "bad-endpoint",
                    f"services.{name}.endpoint",
                )
            )
    if problems:
        raise InvalidWorkflowError(problems)
    steps = tuple(_children_pointed(step, endpoints) for step in workflow.steps)
    return replace(workflow.with_endpoints(applied), steps=steps), applied


def _children_pointed(step: Step, endpoints: Mapping[str, str]) -> Step:
    """A sub-workflow file's services are pointed too: its child runs on this server."""
    ref = step.workflow
    if ref is None or ref.definition is None:
        return step
    child, _ = point_services(ref.definition, endpoints)
    return replace(step, workflow=replace(ref, definition=child))
