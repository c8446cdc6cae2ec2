"""Endpoints written as link-local or cloud-metadata addresses, refused at validation.

The server refuses them unless `--allow-endpoint` names what may be called (the operator's
list then decides); names are checked against what they resolve to when called
(transports/guard.py). See model/addresses.py for the addresses and why.
"""

from __future__ import annotations

from maestro_server.diagnostics import Diagnostic
from maestro_server.model.addresses import endpoint_host, forbidden_reason, literal_address
from maestro_server.model.workflow import Workflow


def address_problems(workflow: Workflow) -> list[Diagnostic]:
    """A diagnostic, at the endpoint, for each service whose endpoint is a forbidden address."""
    problems = []
    for service in workflow.services.values():
        target = endpoint_host(service.endpoint, service.type)
        address = literal_address(target[0]) if target is not None else None
        reason = forbidden_reason(address) if address is not None else None
        if reason is None:
            continue
        message = (
            f"endpoint '{service.endpoint}' of service '{service.name}' is {reason}: link-local "
            "and cloud-metadata addresses are refused unless the server's --allow-endpoint "
            "allows them"
        )
        location = service.endpoint_location or service.location
        problems.append(
            Diagnostic(location, message, "forbidden-address", f"services.{service.name}.endpoint")
        )
    return problems
