"""What a server lets a submitted workflow do: the endpoints it may call, and how big it may be.

A workflow sent to a server names endpoints the server will call, so it could make the server
reach anything the server can reach. `--allow-endpoint` patterns bound that: a workflow naming
an endpoint outside them is rejected when it is validated, before anything runs. Without
patterns, link-local and cloud-metadata addresses are refused all the same (endpoints.py).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from urllib.parse import urlsplit

from maestro_server.definition.endpoints import address_problems
from maestro_server.diagnostics import Diagnostic
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import ServiceType, Workflow

MAX_STEPS = 500


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """Endpoint patterns and size limits.

    Patterns are globs such as `*.svc.cluster.local:*` or `https://crm.example.com`; an empty
    list allows every endpoint but link-local and cloud-metadata addresses.
    """

    allowed_endpoints: tuple[str, ...] = ()
    max_steps: int = MAX_STEPS

    @property
    def guards_addresses(self) -> bool:
        """Whether link-local and metadata addresses are refused (no allow-list decides)."""
        return not self.allowed_endpoints

    def check(self, workflow: Workflow) -> None:
        """Raise InvalidWorkflowError naming every service and limit the workflow breaks.

        Its sub-workflow files are checked too: their child executions run on this server.
        """
        problems = self._problems(workflow)
        if problems:
            raise InvalidWorkflowError(problems)

    def _problems(self, workflow: Workflow) -> list[Diagnostic]:
        problems = address_problems(workflow) if self.guards_addresses else []
        for service in workflow.services.values():
            if not self._allowed(service.endpoint, service.type):
                message = (
                    f"endpoint '{service.endpoint}' of service '{service.name}' is not "
                    f"allowed by this server (allowed: {', '.join(self.allowed_endpoints)})"
                )
                problems.append(
                    Diagnostic(
                        service.location,
                        message,
                        "endpoint-not-allowed",
                        f"services.{service.name}.endpoint",
                    )
                )
        if len(workflow.steps) > self.max_steps:
            first = workflow.steps[self.max_steps].location
            message = f"{len(workflow.steps)} steps; this server runs at most {self.max_steps}"
            problems.append(Diagnostic(first, message, "too-many-steps", "steps"))
        for step in workflow.steps:
            if step.workflow is not None and step.workflow.definition is not None:
                problems += self._problems(step.workflow.definition)
        return problems

    def _allowed(self, endpoint: str, kind: ServiceType) -> bool:
        if not self.allowed_endpoints:
            return True
        candidates = {endpoint}
        if kind is ServiceType.HTTP:  # `https://host` also matches as `host:443` and `host`
            parts = urlsplit(endpoint)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            candidates |= {
                f"{parts.scheme}://{parts.hostname}",
                f"{parts.hostname}:{port}",
                parts.hostname or "",
            }
        else:
            candidates.add(endpoint.removeprefix("dns:///"))
        return any(
            fnmatch.fnmatchcase(candidate, pattern)
            for candidate in candidates
            for pattern in self.allowed_endpoints
        )
