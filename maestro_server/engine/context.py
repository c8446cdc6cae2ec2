"""What templates see during an execution, and rendering requests from it."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from maestro_server.definition.headers import checked_value
from maestro_server.errors import TemplateError
from maestro_server.model.workflow import (
    ELEMENT_INDEX,
    Compensation,
    HttpMethod,
    Service,
    Step,
    Workflow,
)
from maestro_server.templating.path import HttpPath
from maestro_server.templating.values import CompiledValue
from maestro_server.transports.base import HttpTarget, Request


class ExecutionContext:
    """`.input`, `.execution`, `.workflow`, each step's output name and `.steps.<id>.output`."""

    def __init__(
        self,
        workflow: Workflow,
        execution_id: str,
        input: Any,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.workflow = workflow
        self.execution_id = execution_id
        self._secrets: Mapping[str, str] = secrets or {}
        self.values: dict[str, Any] = {
            "input": input,
            "execution": {"id": execution_id},
            "workflow": {"name": workflow.name, "version": workflow.version},
            "steps": {},
        }
        self._key_suffix = ""
        """`[<index>]` in an element's view: its calls' idempotency keys name the element."""

    def record(self, step: Step, output: Any) -> None:
        """Make a step's output visible to later templates (None for skipped or failed steps)."""
        self.values["steps"][step.id] = {"output": output}
        if step.output is not None:
            self.values[step.output] = output

    def element(self, step: Step, index: int, item: Any) -> ExecutionContext:
        """What one element of a for_each step sees: the element and `.index` bound.

        Its requests carry `<execution_id>:<step_id>[<index>]` (and `…:compensate`).
        """
        assert step.for_each is not None
        view = copy.copy(self)
        view.values = {**self.values, step.for_each.name: item, ELEMENT_INDEX: index}
        view._key_suffix = f"[{index}]"
        return view

    def undoing(self, step: Step, output: Any) -> ExecutionContext:
        """An element's view for its compensation: the step's output is that element's."""
        view = copy.copy(self)
        steps = {**self.values["steps"], step.id: {"output": output}}
        view.values = {**self.values, "steps": steps}
        if step.output is not None:
            view.values[step.output] = output
        return view

    def render(self, value: CompiledValue | HttpPath | None, *, step: str | None) -> Any:
        """Render a value tree; TemplateError names the step."""
        if value is None:
            return None
        try:
            return value.render(self.values)
        except TemplateError as exc:
            if exc.step is not None or step is None:
                raise
            raise TemplateError(exc.reason, step=step, field=exc.field) from None

    def step_request(self, step: Step, service: Service) -> Request:
        """The request of a step, rendered once for all its attempts."""
        return self._request(
            step.id,
            service,
            step.method,
            step.input,
            f"{self.execution_id}:{step.id}{self._key_suffix}",
        )

    def compensation_request(
        self, step: Step, compensation: Compensation, service: Service
    ) -> Request:
        """The request of a step's compensation."""
        return self._request(
            step.id,
            service,
            compensation.method,
            compensation.input,
            f"{self.execution_id}:{step.id}{self._key_suffix}:compensate",
        )

    def _request(
        self, step_id: str, service: Service, method: Any, input: CompiledValue | None, key: str
    ) -> Request:
        target = method
        if isinstance(method, HttpMethod):
            path = self.render(method.path, step=step_id)
            if not isinstance(path, str):
                raise TemplateError(
                    "the HTTP path must render to text", step=step_id, field="method"
                )
            target = HttpTarget(method.verb, path)
        payload = self.render(input, step=step_id)
        headers, secret_values = self._headers(service, step_id)
        return Request(
            service, target, {} if payload is None else payload, headers, key, secret_values
        )

    def _headers(self, service: Service, step_id: str) -> tuple[dict[str, str], frozenset[str]]:
        """Render a service's headers, the only templates that may read `.secrets`.

        Returns the headers and the secret values they used, to redact from what comes back.
        """
        if not service.headers:
            return {}, frozenset()
        secrets = _RecordingSecrets(self._secrets)
        values = {**self.values, "secrets": secrets}
        headers = {}
        for name, value in service.headers.items():
            try:
                headers[name] = checked_value(name, _text(value.render(values)))
            except TemplateError as exc:
                raise TemplateError(exc.reason, step=step_id, field=exc.field) from None
        return headers, frozenset(secrets.read)


class _RecordingSecrets(Mapping[str, str]):
    """Secrets that note which values were read."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = secrets
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        value = self._secrets[name]
        self.read.add(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(())  # secrets are read by name; a template cannot list (and send) them all

    def __len__(self) -> int:
        return 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
