"""Value trees of a workflow (inputs, outputs, headers, paths) compiled to `CompiledValue`s.

A tree without templates collapses to one `Literal`; every template compiled is kept as a
`TemplateSite`, so the cross-checks (validate.py) can see what it reads.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, SequenceNode

from maestro_server.definition.loader import STR_TAG
from maestro_server.definition.positions import template_position
from maestro_server.definition.reader import Reader
from maestro_server.definition.template_rules import check_template
from maestro_server.definition.validate import Scope, TemplateSite
from maestro_server.templating.values import (
    CompiledValue,
    Literal,
    MappingValue,
    SequenceValue,
    TemplateSyntaxError,
    compile_template,
    is_template,
)


class ValueCompiler:
    """Compiles the values of one workflow, recording its template sites in `sites`."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.sites: list[TemplateSite] = []

    def value(
        self, node: Node, path: str, step_id: str | None, scope: Scope, field: str
    ) -> CompiledValue | None:
        """A value tree whose strings may be templates; collapses to a Literal without them."""
        r = self.reader
        if isinstance(node, MappingNode):
            pairs = r.mapping(node, path, "an object") or {}
            items = []
            for key, (_, child) in pairs.items():
                compiled = self.value(child, f"{path}.{key}", step_id, scope, f"{field}.{key}")
                if compiled is not None:
                    items.append((key, compiled))
            if all(isinstance(v, Literal) for _, v in items):
                return Literal({k: v.value for k, v in items if isinstance(v, Literal)})
            return MappingValue(tuple(items))
        if isinstance(node, SequenceNode):
            values = [
                self.value(child, f"{path}[{i}]", step_id, scope, f"{field}[{i}]")
                for i, child in enumerate(node.value)
            ]
            present = [v for v in values if v is not None]
            if all(isinstance(v, Literal) for v in present):
                return Literal([v.value for v in present if isinstance(v, Literal)])
            return SequenceValue(tuple(present))
        if node.tag == STR_TAG and is_template(node.value):
            return self.string(node, node.value, path, step_id, scope, field=field)
        value = r.data(node, path)
        return Literal(value) if value is not None or node.tag.endswith(":null") else None

    def string(
        self, node: Node, text: str, path: str, step_id: str | None, scope: Scope, *, field: str
    ) -> CompiledValue | None:
        """One string: a Literal, or a compiled template (None after a syntax error)."""
        if not is_template(text):
            return Literal(text)
        try:
            template = compile_template(text, field)
        except TemplateSyntaxError as exc:
            if exc.offset is not None:  # a Go form, located exactly
                r = self.reader
                location = template_position(r.path, r.text, node, text, exc.offset)
                r.error_at(
                    location, path, "template-syntax", f"template syntax error: {exc.message}"
                )
                return None
            where = f" (line {exc.line} of the template)" if exc.line > 1 else ""
            self.reader.error(
                node, path, "template-syntax", f"template syntax error{where}: {exc.message}"
            )
            return None
        check_template(self.reader, template, node, path, self.reader.text)
        self.sites.append(TemplateSite(template, node, path, step_id, scope))
        return template
