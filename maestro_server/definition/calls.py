"""Every gRPC call of a workflow checked against its service's schema, before anything runs.

The method must exist (a short name must be unique), every input key must be a field of the
request message (nested messages and maps too), a literal must have its field's type, and a
template whose rendered type is known must fit its field. What the request and response types
are is kept for the checks of output references (references.py) and of the input at the door.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, MethodDescriptor
from yaml.nodes import MappingNode, Node, ScalarNode

from maestro_server.definition.fields import (
    KIND_WORDS,
    Slot,
    accepts,
    field_named,
    field_slot,
    item_slot,
    json_kind,
    map_key_problem,
    message_slot,
    scalar_kind,
    slot_kind,
    value_problem,
)
from maestro_server.definition.paths import (
    describe_slot,
    origin,
    schema_kind,
    walk_response,
)
from maestro_server.definition.positions import template_position
from maestro_server.definition.reader import Reader, did_you_mean, find_node
from maestro_server.definition.schemas import ServiceSchema
from maestro_server.definition.validate import TemplateSite
from maestro_server.diagnostics import SourceLocation
from maestro_server.model.workflow import GrpcMethod, Method, Step
from maestro_server.schemas.methods import MethodNotFoundError, find_method
from maestro_server.templating.reads import Analysis, Read, analyze
from maestro_server.templating.values import (
    CompiledValue,
    Literal,
    MappingValue,
    SequenceValue,
    Template,
)


@dataclass
class CallCheck:
    """The checks of one workflow's calls, and what they learn about its messages."""

    reader: Reader
    steps: Sequence[tuple[Step, Node]]
    schemas: Mapping[str, ServiceSchema]
    sites: Sequence[TemplateSite]
    input_schema: Mapping[str, Any] | None
    analyses: dict[int, Analysis] = field(default_factory=dict)
    """Each template's analysis, by the template's id()."""
    responses: dict[str, MethodDescriptor] = field(default_factory=dict)
    """Step id → its method, for the steps whose service has a schema."""
    expected: dict[int, Slot] = field(default_factory=dict)
    """Template id() → the slot it fills, for templates that are one `.input` path."""

    def run(self) -> None:
        """Resolve every method, then check every request."""
        for site in self.sites:
            self.analyses[id(site.template)] = analyze(site.template)
        requests: list[tuple[Descriptor, CompiledValue | None, Node]] = []
        for index, (step, node) in enumerate(self.steps):
            path = f"steps[{index}]"
            method = self._method(step.service, step.method, node, ["method"], path)
            if method is not None:
                self.responses[step.id] = method
                requests.append((method.input_type, step.input, find_node(node, ["input"])))
            if step.compensate is not None:
                compensation = step.compensate
                method = self._method(
                    compensation.service,
                    compensation.method,
                    node,
                    ["compensate", "method"],
                    f"{path}.compensate",
                )
                if method is not None:
                    where = find_node(node, ["compensate", "input"])
                    requests.append((method.input_type, compensation.input, where))
        for message, value, node in requests:
            if value is not None:
                self._value(value, node, message_slot(message), message.full_name)

    def _method(
        self, service: str, method: Method, node: Node, keys: list[str], path: str
    ) -> MethodDescriptor | None:
        schema = self.schemas.get(service)
        if schema is None or not isinstance(method, GrpcMethod) or method.name == "invalid":
            return None
        where = find_node(node, keys)
        try:
            found = find_method(schema.pool, schema.services, method.name, method.service)
        except MethodNotFoundError as exc:
            names = {m for s in schema.services for m in s.methods_by_name}
            unknown = method.service is None and method.name not in names
            hint = did_you_mean(method.name, names) if unknown else ""
            message = f"service '{service}': {exc}{hint}"
            self.reader.error(where, f"{path}.method", "unknown-method", message)
            return None
        if found.client_streaming or found.server_streaming:
            message = (
                f"method '{found.containing_service.full_name}/{found.name}' streams; "
                "Maestro calls unary methods only"
            )
            self.reader.error(where, f"{path}.method", "streaming-method", message)
            return None
        return found

    # -- requests ---------------------------------------------------------------------------

    def _value(self, value: CompiledValue, node: Node, slot: Slot, target: str) -> None:
        if isinstance(value, Literal):
            self._literal(value.value, node, slot, target)
        elif isinstance(value, Template):
            self._template(value, node, slot, target)
        elif isinstance(value, MappingValue):
            self._object([(k, v, find_node(node, [k])) for k, v in value.items], node, slot, target)
        elif isinstance(value, SequenceValue):
            self._list(list(value.items), node, slot, target)

    def _literal(self, value: Any, node: Node, slot: Slot, target: str) -> None:
        if isinstance(value, dict):
            self._object(
                [(k, v, find_node(node, [k])) for k, v in value.items()], node, slot, target
            )
        elif isinstance(value, list):
            self._list(value, node, slot, target)
        elif slot.shape == "scalar":
            problem = value_problem(slot, value)
            if problem is not None:
                self._wrong(node, slot, target, problem)
        elif slot.shape != "any" and value is not None:
            self._wrong(node, slot, target, f"not {KIND_WORDS[json_kind(value)]}")

    def _object(
        self, items: list[tuple[str, Any, Node]], node: Node, slot: Slot, target: str
    ) -> None:
        if slot.shape == "any":
            return
        if slot.shape == "map":
            assert slot.field is not None
            for key, item, child in items:
                problem = map_key_problem(slot, key)
                if problem is not None:
                    self.reader.error(
                        _key_node(node, key), target, "wrong-type", f"{target}: {problem}"
                    )
                self._check(item, child, item_slot(slot.field), f"{target}[{key}]")
            return
        if slot.shape != "message" or slot.message is None:
            self._wrong(node, slot, target, "not an object")
            return
        for key, item, child in items:
            found = field_named(slot.message, key)
            if found is None:
                names = [f.name for f in slot.message.fields]
                message = (
                    f"'{key}' is not a field of {slot.message.full_name}{did_you_mean(key, names)}"
                )
                self.reader.error(_key_node(node, key), target, "unknown-field", message)
                continue
            self._check(item, child, field_slot(found), f"{slot.message.full_name}.{found.name}")

    def _list(self, items: list[Any], node: Node, slot: Slot, target: str) -> None:
        if slot.shape == "any":
            return
        if slot.shape != "list":
            self._wrong(node, slot, target, "not a list")
            return
        element = Slot("any") if slot.field is None or slot.message else item_slot(slot.field)
        for index, item in enumerate(items):
            self._check(item, find_node(node, [index]), element, f"{target}[{index}]")

    def _check(self, item: Any, node: Node, slot: Slot, target: str) -> None:
        if isinstance(item, Template | Literal | MappingValue | SequenceValue):
            self._value(item, node, slot, target)
        else:
            self._literal(item, node, slot, target)

    def _wrong(self, node: Node, slot: Slot, target: str, problem: str) -> None:
        separator = ", " if problem.startswith("not ") else ": "
        message = f"{target} is {describe_slot(slot)}{separator}{problem}"
        self.reader.error(node, target, "wrong-type", message)

    def _template(self, template: Template, node: Node, slot: Slot, target: str) -> None:
        analysis = self.analyses.get(id(template))
        if analysis is None:
            return
        kind, origin = analysis.kind, ""
        if kind is None and analysis.path is not None:
            if analysis.path.root == "input" and slot.shape != "any":
                self.expected[id(template)] = slot
            kind, origin = self.path_kind(analysis.path)
        if kind is None or accepts(slot, kind):
            return
        message = (
            f"{target} is {describe_slot(slot)}, but {json.dumps(template.source)} renders "
            f"{KIND_WORDS[kind]}{origin}{_hint(template.source, slot, kind)}"
        )
        self.reader.error(node, target, "wrong-type", message)

    # -- what a path holds -------------------------------------------------------------------

    def path_kind(self, read: Read) -> tuple[str | None, str]:
        """The JSON type a path holds, when a schema says, and where that is from."""
        if read.root == "input":
            return schema_kind(self.input_schema, read.keys), " (by input_schema)"
        if read.root in ("execution", "workflow"):
            return "string", ""
        found = self.response_slot(read)
        slot = found[0] if found is not None else None
        if slot is None:
            return None, ""
        kind = slot_kind(slot)
        where = f" ({origin(slot)} is {describe_slot(slot)})" if slot.field is not None else ""
        return kind, where

    def response_slot(self, read: Read) -> tuple[Slot | None, str] | None:
        """What a path into a step's output holds, or (None, why it holds nothing).

        None when the path is not into the output of a gRPC step whose schema is known.
        """
        producers = {step.output: step.id for step, _ in self.steps if step.output}
        keys = read.keys
        if read.root == "steps":
            if len(keys) < 2 or keys[0] not in self.responses:
                return None
            if keys[1] != "output":
                return None, f".steps.{keys[0]} holds only 'output'"
            step_id, keys = str(keys[0]), keys[2:]
        elif read.root in producers:
            step_id = producers[read.root]
        else:
            return None
        method = self.responses.get(step_id)
        if method is None:
            return None
        if self._runs_per_element(step_id):
            # A list of responses, but in the step's own compensation, where it is the
            # element's response: a position reads an element, any other key the element's
            # field; the list as a whole has no message type to check against.
            if not keys:
                return None
            if isinstance(keys[0], int):
                keys = keys[1:]
        return walk_response(method.output_type, keys)

    def _runs_per_element(self, step_id: str) -> bool:
        return any(step.id == step_id and step.for_each is not None for step, _ in self.steps)


def _hint(source: str, slot: Slot, kind: str) -> str:
    """What to write instead, when a conversion would do."""
    wanted = scalar_kind(slot) if slot.shape == "scalar" else slot.shape
    stripped = source.strip()
    single = stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1
    if wanted in ("string", "bytes") and single:
        convert = "string" if kind in ("integer", "number") else "tojson"
        return f": write {json.dumps(stripped[:-2].rstrip() + f' | {convert} }}}}')}"
    if wanted == "integer" and single and kind == "boolean":
        return ": write a whole number, e.g. {{ 1 if … else 0 }}"
    if wanted == "boolean":
        return ': write true or false, e.g. {{ .x == "yes" }}'
    if wanted == "message":
        return ": give an object whose keys are its fields"
    return ""


def _key_node(node: Node, key: str) -> Node:
    """The key's own node in a mapping (for 'unknown field' at the key), else the mapping."""
    if isinstance(node, MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return key_node
    return node


def template_read_position(reader: Reader, site: TemplateSite, read: Read) -> SourceLocation:
    """The file position of a path read by a template."""
    return template_position(reader.path, reader.text, site.node, site.template.source, read.offset)
