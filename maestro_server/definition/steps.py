"""The `steps` block of a workflow → `Step`s with their methods and compensations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from yaml.nodes import Node

from maestro_server.definition.for_each import FOR_EACH_KEYS, read_for_each
from maestro_server.definition.http_paths import read_http_path
from maestro_server.definition.pauses import PAUSE_KEYS, read_pause
from maestro_server.definition.policies import read_retry
from maestro_server.definition.reader import IDENTIFIER, Pairs, Reader, did_you_mean
from maestro_server.definition.sub_workflows import SUB_WORKFLOW_KEYS, read_sub_workflow
from maestro_server.definition.validate import Scope, TemplateSite
from maestro_server.definition.value_compiler import ValueCompiler
from maestro_server.model.workflow import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    PAUSE_METHOD,
    Compensation,
    GrpcMethod,
    HttpMethod,
    Method,
    Service,
    ServiceType,
    Step,
    SubWorkflow,
)
from maestro_server.templating.values import CompiledValue, Template

STEP_KEYS = (
    "id",
    "service",
    "method",
    "input",
    "output",
    "compensate",
    "retry",
    "timeout",
    "when",
    "depends_on",
    "continue_on_error",
    *FOR_EACH_KEYS,
    *PAUSE_KEYS,
    *SUB_WORKFLOW_KEYS,
)
COMPENSATE_KEYS = ("service", "method", "input", "retry", "timeout")
HTTP_VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_GRPC_METHOD = re.compile(
    r"(?:(?P<service>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)/)?"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)


class StepReader:
    """Reads the steps of one workflow against its services."""

    def __init__(self, reader: Reader, values: ValueCompiler) -> None:
        self.reader = reader
        self.values = values

    def steps(self, node: Node, services: Mapping[str, Service]) -> list[tuple[Step, Node]]:
        """Every step read, each with its node (for the cross-checks' positions)."""
        r = self.reader
        items = r.sequence(node, "steps", "'steps'")
        if items is None:
            return []
        if not items:
            r.error(node, "steps", "empty", "'steps' is empty: a workflow needs at least one step")
        steps: list[tuple[Step, Node]] = []
        previous: str | None = None
        for index, item in enumerate(items):
            step = self._step(item, f"steps[{index}]", services, previous)
            if step is not None:
                steps.append((step, item))
                previous = step.id
        return steps

    def _step(
        self, node: Node, path: str, services: Mapping[str, Service], previous: str | None
    ) -> Step | None:
        r = self.reader
        pairs = r.mapping(node, path, "a step", STEP_KEYS)
        pauses = pairs is not None and any(key in pairs for key in PAUSE_KEYS)
        child = pairs is not None and "workflow" in pairs
        needed = ("id",) if pauses or child else ("id", "service", "method")
        if pairs is None or not r.require(pairs, node, path, "a step", *needed):
            return None
        step_id = r.string(pairs["id"][1], f"{path}.id", "'id'")
        if step_id is None:
            return None
        if not IDENTIFIER.fullmatch(step_id):
            r.error(
                pairs["id"][1],
                f"{path}.id",
                "bad-name",
                f"step id '{step_id}' must start with a letter and hold only letters, digits, "
                "'_' and '-' (at most 128)",
            )
        if child:
            return self._sub_workflow_step(node, pairs, path, step_id, previous, services=services)
        if pauses:
            return self._pause_step(node, pairs, path, step_id, previous)
        service_name = r.string(pairs["service"][1], f"{path}.service", "'service'") or ""
        service = services.get(service_name)
        method = self._method(pairs["method"][1], f"{path}.method", service, step_id, Scope.STEP)
        output = None
        if "output" in pairs:
            output = r.string(pairs["output"][1], f"{path}.output", "'output'")
        depends_on = self._depends_on(pairs, path, previous)
        when = self._when(pairs, path, step_id)
        timeout = r.get(pairs, "timeout", r.duration, f"{path}.timeout")
        compensate = None
        if "compensate" in pairs:
            compensate = self._compensation(
                pairs["compensate"][1], f"{path}.compensate", step_id, service_name, services
            )
        step_input = self._input(pairs, path, step_id)
        for_each = read_for_each(r, self.values, pairs, path, step_id)
        base_retry = service.retry if service else DEFAULT_RETRY
        continue_on_error = self._continue_on_error(pairs, path)
        # A step whose method is invalid is still returned (with a placeholder), so that the
        # cross-checks do not report follow-on errors about a step that "does not exist".
        return Step(
            id=step_id,
            service=service_name,
            method=method or GrpcMethod("invalid"),
            location=r.location(node),
            input=step_input,
            output=output,
            compensate=compensate,
            retry=read_retry(r, pairs, path, base_retry),
            timeout=timeout or (service.timeout if service else DEFAULT_TIMEOUT),
            when=when,
            depends_on=depends_on,
            continue_on_error=continue_on_error,
            for_each=for_each,
        )

    def _pause_step(
        self, node: Node, pairs: Pairs, path: str, step_id: str, previous: str | None
    ) -> Step:
        """A `wait` or `sleep` step (returned even when its pause is invalid, as above)."""
        r = self.reader
        pause = read_pause(r, self.values, pairs, path, step_id)
        output = r.get(pairs, "output", r.string, f"{path}.output") if "wait" in pairs else None
        continue_on_error = self._continue_on_error(pairs, path)
        return Step(
            id=step_id,
            service="",
            method=PAUSE_METHOD,
            location=r.location(node),
            output=output,
            when=self._when(pairs, path, step_id),
            depends_on=self._depends_on(pairs, path, previous),
            continue_on_error=continue_on_error,
            pause=pause,
        )

    def _sub_workflow_step(
        self,
        node: Node,
        pairs: Pairs,
        path: str,
        step_id: str,
        previous: str | None,
        *,
        services: Mapping[str, Service],
    ) -> Step:
        """A step that runs a workflow as a child execution (returned even when invalid)."""
        r = self.reader
        ref = read_sub_workflow(r, pairs, path)
        output = r.get(pairs, "output", r.string, f"{path}.output")
        timeout = r.get(pairs, "timeout", r.duration, f"{path}.timeout")
        compensate = None
        if "compensate" in pairs:
            compensate = self._compensation(
                pairs["compensate"][1], f"{path}.compensate", step_id, "", services
            )
        step_input = self._input(pairs, path, step_id)
        continue_on_error = self._continue_on_error(pairs, path)
        return Step(
            id=step_id,
            service="",
            method=PAUSE_METHOD,
            location=r.location(node),
            input=step_input,
            output=output,
            compensate=compensate,
            when=self._when(pairs, path, step_id),
            depends_on=self._depends_on(pairs, path, previous),
            continue_on_error=continue_on_error,
            for_each=read_for_each(r, self.values, pairs, path, step_id),
            workflow=replace(ref or SubWorkflow(name="invalid"), timeout=timeout),
        )

    def _input(self, pairs: Pairs, path: str, step_id: str) -> CompiledValue | None:
        if "input" not in pairs:
            return None
        return self.values.value(pairs["input"][1], f"{path}.input", step_id, Scope.STEP, "input")

    def _continue_on_error(self, pairs: Pairs, path: str) -> bool:
        r = self.reader
        return bool(r.get(pairs, "continue_on_error", r.boolean, f"{path}.continue_on_error"))

    def _depends_on(self, pairs: Pairs, path: str, previous: str | None) -> tuple[str, ...]:
        if "depends_on" not in pairs:
            return (previous,) if previous else ()
        r = self.reader
        listed = r.string_list(pairs["depends_on"][1], f"{path}.depends_on", "'depends_on'")
        return tuple(dict.fromkeys(text for text, _ in listed or []))

    def _when(self, pairs: Pairs, path: str, step_id: str) -> Template | None:
        if "when" not in pairs:
            return None
        when = self.values.value(pairs["when"][1], f"{path}.when", step_id, Scope.STEP, "when")
        if isinstance(when, Template) or when is None:
            return when
        self.reader.error(
            pairs["when"][1],
            f"{path}.when",
            "bad-value",
            "'when' must be a template such as \"{{ .input.send_email }}\"",
        )
        return None

    def _compensation(
        self,
        node: Node,
        path: str,
        step_id: str,
        step_service: str,
        services: Mapping[str, Service],
    ) -> Compensation | None:
        r = self.reader
        what = f"the compensation of step '{step_id}'"
        pairs = r.mapping(node, path, what, COMPENSATE_KEYS)
        if pairs is None or not r.require(pairs, node, path, what, "method"):
            return None
        service_name = step_service
        if "service" in pairs:
            service_name = r.string(pairs["service"][1], f"{path}.service", "'service'") or ""
            if service_name not in services:
                r.error(
                    pairs["service"][1],
                    f"{path}.service",
                    "unknown-service",
                    f"unknown service '{service_name}'{did_you_mean(service_name, services)}",
                )
        service = services.get(service_name)
        method = self._method(
            pairs["method"][1], f"{path}.method", service, step_id, Scope.COMPENSATION
        )
        compensation_input = None
        if "input" in pairs:
            compensation_input = self.values.value(
                pairs["input"][1], f"{path}.input", step_id, Scope.COMPENSATION, "compensate.input"
            )
        if method is None:
            return None
        timeout = r.get(pairs, "timeout", r.duration, f"{path}.timeout")
        return Compensation(
            service=service_name,
            method=method,
            location=r.location(node),
            input=compensation_input,
            retry=read_retry(r, pairs, path, DEFAULT_COMPENSATION_RETRY),
            timeout=timeout or (service.timeout if service else DEFAULT_TIMEOUT),
        )

    def _method(
        self, node: Node, path: str, service: Service | None, step_id: str, scope: Scope
    ) -> Method | None:
        r = self.reader
        text = r.string(node, path, "'method'")
        if text is None or service is None:
            return None
        if service.type is ServiceType.GRPC:
            match = _GRPC_METHOD.fullmatch(text)
            if match is None:
                hint = (
                    " ('VERB /path' is for http services)"
                    if text.split(" ", 1)[0] in HTTP_VERBS
                    else ""
                )
                r.error(
                    node,
                    path,
                    "bad-method",
                    f"gRPC method must be 'Method' or 'package.Service/Method', not "
                    f"'{text}'{hint}; service '{service.name}' is grpc",
                )
                return None
            return GrpcMethod(name=match.group("name"), service=match.group("service"))
        verb, _, rest = text.partition(" ")
        rest = rest.strip()
        if verb not in HTTP_VERBS or not rest.startswith("/"):
            upper = verb.upper() in HTTP_VERBS and rest.startswith("/")
            hint = f" (write the verb in capitals: '{verb.upper()} {rest}')" if upper else ""
            r.error(
                node,
                path,
                "bad-method",
                f"HTTP method must be 'VERB /path' with VERB one of {', '.join(HTTP_VERBS)}, "
                f"not '{text}'{hint}; service '{service.name}' is http",
            )
            return None
        field = "method" if scope is Scope.STEP else "compensate.method"
        compiled = read_http_path(r, node, rest, path=path, field=field, text=r.text)
        if compiled is None:
            return None
        self.values.sites += [
            TemplateSite(e.template, node, path, step_id, scope) for e in compiled.expansions
        ]
        return HttpMethod(verb=verb, path=compiled)
