"""`maestro validate --explain STEP`: what one step will send, before anything is sent.

The step's request is rendered with the example input (`--input-file`); outputs of earlier
steps are stand-ins built from their response messages (`<account.email>` for text, zeros for
numbers) or, without a schema, `<output.key>` text. Then the message the request is checked
against is printed, and whether the rendered request fits it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from maestro_server.definition.fields import describe, field_slot, item_slot, scalar_kind
from maestro_server.definition.reader import did_you_mean
from maestro_server.definition.schemas import ServiceSchema, schema_of
from maestro_server.durations import format_duration
from maestro_server.errors import InvalidInputError, TemplateError
from maestro_server.model.workflow import (
    ELEMENT_INDEX,
    GrpcMethod,
    HttpMethod,
    Sleep,
    Step,
    WaitForSignal,
    Workflow,
)
from maestro_server.schemas.descriptors import FileProtos, SchemaError
from maestro_server.schemas.methods import find_method

_SAMPLES = {"integer": 0, "number": 0.0, "boolean": False}


def explain(
    workflow: Workflow,
    step_id: str,
    data: Mapping[str, Any],
    reflected: Mapping[str, FileProtos] | None = None,
) -> str:
    """The rendered request of one step and the message it is checked against, as text."""
    reflected = reflected or {}
    try:
        step = workflow.step(step_id)
    except KeyError:
        ids = [s.id for s in workflow.steps]
        raise InvalidInputError(
            f"--explain: no step '{step_id}'{did_you_mean(step_id, ids)} (steps: {', '.join(ids)})"
        ) from None
    schemas = {name: _schema(s, reflected.get(name)) for name, s in workflow.services.items()}
    context = _context(workflow, step, data, schemas)
    if step.pause is not None:
        return _pause_text(step, step.pause, context)
    if step.workflow is not None:
        lines = [f"step {step.id}: runs workflow {step.workflow.source} as a child execution"]
        if step.for_each is not None:
            lines.append(_bind_element(step, context))
        lines.append("the child's input, rendered with the example input:")
        rendered = _render(step.input, context) if step.input is not None else {}
        lines.append(json.dumps(rendered, indent=2, ensure_ascii=False))
        return "\n".join(lines) + "\n"
    service = workflow.services[step.service]
    lines = [f"step {step.id}: service {service.name} ({service.type} {service.endpoint})"]
    if step.for_each is not None:
        lines.append(_bind_element(step, context))
    request = None
    if isinstance(step.method, GrpcMethod) and schemas.get(step.service) is not None:
        schema = schemas[step.service]
        assert schema is not None
        method = find_method(schema.pool, schema.services, step.method.name, step.method.service)
        request = method.input_type
        lines.append(f"method {method.containing_service.full_name}/{method.name}")
    elif isinstance(step.method, HttpMethod):
        lines.append(f"{step.method.verb} {_render(step.method.path, context)}")
    else:
        lines.append(f"method {step.method} (no schema: give descriptor_set, protos or --reflect)")
    lines.append("request, rendered with the example input (earlier outputs are stand-ins):")
    rendered = _render(step.input, context) if step.input is not None else {}
    lines.append(json.dumps(rendered, indent=2, ensure_ascii=False))
    if request is not None:
        lines.append(f"checked against {request.full_name}:")
        lines.extend(_message_text(request))
        lines.append(_fits(rendered, request))
    return "\n".join(lines) + "\n"


def _bind_element(step: Step, context: dict[str, Any]) -> str:
    """Bind a for_each step's first element (or a stand-in) and `.index`; say which."""
    assert step.for_each is not None
    name = step.for_each.name
    items = _render(step.for_each.items, context)
    context[ELEMENT_INDEX] = 0
    head = f"for each {name} in {step.for_each.source}"
    if isinstance(items, list) and items:
        context[name] = items[0]
        count = f"{len(items)} element{'s' if len(items) != 1 else ''}"
        return f"{head}: {count}; shown for element 0 (index 0)"
    context[name] = _Stand(name)
    why = "an empty list" if isinstance(items, list) else "a list not known here"
    return f"{head}: {why}; shown with a stand-in element (index 0)"


def _pause_text(step: Step, pause: WaitForSignal | Sleep, context: Mapping[str, Any]) -> str:
    """What a `wait` or `sleep` step waits for: it sends nothing."""
    if isinstance(pause, WaitForSignal):
        timeout = f", for at most {format_duration(pause.timeout)}" if pause.timeout else ""
        output = f" (read as .{step.output})" if step.output else ""
        return (
            f"step {step.id}: sends nothing; waits for the signal '{pause.signal}'{timeout}\n"
            f"its output is the signal's payload{output}\n"
        )
    if pause.duration is not None:
        return f"step {step.id}: sends nothing; sleeps {format_duration(pause.duration)}\n"
    until = _render(pause.until, context)
    rendered = "rendered with the example input"
    return f"step {step.id}: sends nothing; sleeps until {until} ({rendered})\n"


def _schema(service: Any, reflected: FileProtos | None) -> ServiceSchema | None:
    try:
        return schema_of(service, reflected)
    except SchemaError:
        return None  # validation reports it; here the step is shown without its schema


def _context(
    workflow: Workflow,
    step: Step,
    data: Mapping[str, Any],
    schemas: Mapping[str, ServiceSchema | None],
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "input": dict(data),
        "execution": {"id": "explain"},
        "workflow": {"name": workflow.name, "version": workflow.version},
        "steps": {},
    }
    for other in workflow.steps:
        output: Any = _Stand(other.output or f"steps.{other.id}.output")
        schema = schemas.get(other.service)
        if isinstance(other.method, GrpcMethod) and schema is not None:
            try:
                found = find_method(
                    schema.pool, schema.services, other.method.name, other.method.service
                )
                output = _sample(found.output_type, other.output or other.id, 0)
            except SchemaError:
                pass
        if other.for_each is not None:
            output = [output]  # a list of the elements' outputs
        values["steps"][other.id] = {"output": output}
        if other.output is not None and other.id != step.id:
            values[other.output] = output
    return values


class _Stand(Mapping[str, str]):
    """The output of a step without a schema: every key reads as `<name.key>` text."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, key: str) -> str:
        return f"<{self.name}.{key}>"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _sample(message: Descriptor, name: str, depth: int) -> dict[str, Any]:
    sample: dict[str, Any] = {}
    for field in message.fields:
        sample[field.name] = _field_sample(field, f"{name}.{field.name}", depth)
    return sample


def _field_sample(field: FieldDescriptor, name: str, depth: int) -> Any:
    slot = field_slot(field)
    if slot.shape in ("list", "map", "any"):
        return {} if slot.shape == "map" else [] if slot.shape == "list" else None
    if slot.shape == "message":
        return _sample(slot.message, name, depth + 1) if slot.message and depth < 3 else {}
    kind = scalar_kind(item_slot(field))
    if kind == "enum":
        assert field.enum_type is not None
        return field.enum_type.values[0].name
    return _SAMPLES.get(kind, f"<{name}>")


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    try:
        return value.render(context)
    except TemplateError as exc:
        return f"(cannot render: {exc.message})"


def _message_text(
    message: Descriptor, indent: str = "  ", seen: set[str] | None = None
) -> list[str]:
    seen = seen if seen is not None else set()
    seen.add(message.full_name)
    lines = [f"{indent}{describe(f)} {f.name} = {f.number};" for f in message.fields]
    for field in message.fields:
        nested = item_slot(field).message if field.type == FieldDescriptor.TYPE_MESSAGE else None
        if (
            nested is not None
            and nested.full_name not in seen
            and not nested.full_name.startswith("google.protobuf.")
        ):
            lines.append(f"{indent}{nested.full_name}:")
            lines.extend(_message_text(nested, indent + "  ", seen))
    return lines


def _fits(rendered: Any, request: Descriptor) -> str:
    try:
        json_format.ParseDict(rendered, message_factory.GetMessageClass(request)())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        return f"the request does not fit {request.full_name}: {exc}"
    return f"the request fits {request.full_name}"
