"""Compiled templates and the value trees built from them.

A workflow's `input`, `output`, `when`, HTTP paths and headers compile once, at load, into
`CompiledValue` trees. Rendering a tree against an execution's context gives plain JSON.
A string that is exactly one `{{ … }}` keeps the type of its value (number, bool, object, list);
any other string with a template in it renders to text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.meta import find_undeclared_variables

from maestro_server.errors import TemplateError
from maestro_server.templating.environment import ENVIRONMENT
from maestro_server.templating.goparse import GoSyntaxError
from maestro_server.templating.gotemplate import translate
from maestro_server.templating.syntax import rewrite_leading_dots

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]

_TEMPLATE_MARKERS = ("{{", "{%", "{#")
MAX_RENDERED_CHARS = 1_000_000
_SINGLE_EXPRESSION = re.compile(r"\A\s*\{\{(?P<expr>.*?)\}\}\s*\Z", re.S)


class TemplateSyntaxError(Exception):
    """A template does not compile; `line` is 1-based within the template text.

    `offset` (0-based, in the template text) is known for Go forms: where the problem is.
    """

    def __init__(self, message: str, line: int, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Reference:
    """A name a template reads from its context: `user`, or `steps` + `create_user`."""

    name: str
    step: str | None = None
    """For `.steps.<id>…`, the step id."""


def is_template(text: str) -> bool:
    """Whether `text` contains template syntax and must be compiled."""
    return any(marker in text for marker in _TEMPLATE_MARKERS)


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """One compiled template string."""

    source: str
    field: str
    """Where the template sits, e.g. `input.email`; named in render errors."""
    references: frozenset[Reference]
    _expression: TemplateExpression | None = dataclasses.field(repr=False)
    _template: jinja2.Template | None = dataclasses.field(repr=False)
    _path: tuple[str, ...] | None = dataclasses.field(default=None, repr=False)
    """For a plain path such as `.steps.create_user.id`, its keys: looked up without jinja2."""
    _expression_text: str | None = dataclasses.field(default=None, repr=False)
    """A plain path's jinja2 expression, compiled into `_expression` when a render needs it."""

    def render(self, context: Mapping[str, Any]) -> JsonValue:
        """Render against `context`; raises TemplateError naming the field."""
        try:
            if self._path is not None:
                # The common case, a path through mappings, costs a few dict lookups; anything
                # else (a missing key, a global, a non-mapping) takes jinja2's path and errors.
                value = _lookup(context, self._path)
                if value is not _MISSING:
                    return _to_json(value, self.field)
                return _to_json(self._path_expression()(context), self.field)
            if self._expression is not None:
                return _to_json(self._expression(context), self.field)
            assert self._template is not None
            text = self._template.render(context)
            if len(text) > MAX_RENDERED_CHARS:
                raise TemplateError(
                    f"renders over {MAX_RENDERED_CHARS} characters", step=None, field=self.field
                )
            return text
        except TemplateError:
            raise
        except jinja2.UndefinedError as exc:
            message = f"{exc.message} in `{self.source}`"
            raise TemplateError(message, step=None, field=self.field) from None
        except Exception as exc:  # noqa: BLE001 - a template may raise anything a filter raises
            message = f"{type(exc).__name__}: {exc} in `{self.source}`"
            raise TemplateError(message, step=None, field=self.field) from None

    def _path_expression(self) -> TemplateExpression:
        """A plain path's expression, compiled the first time a lookup leaves the path.

        Most never do: compiling at load cost a workflow 1 ms a template (jinja2 generates and
        compiles Python), which `maestro execute` and `validate` paid at every start.
        """
        if self._expression is None:
            assert self._expression_text is not None
            expression = ENVIRONMENT.compile_expression(
                self._expression_text, undefined_to_none=False
            )
            # A cache, not a change of value: frozen for everything else.
            object.__setattr__(self, "_expression", expression)
        assert self._expression is not None
        return self._expression


@dataclass(frozen=True, slots=True)
class Literal:
    """A value without templates, rendered as is."""

    value: JsonValue

    def render(self, context: Mapping[str, Any]) -> JsonValue:  # noqa: ARG002
        """Return the value unchanged."""
        return self.value


@dataclass(frozen=True, slots=True)
class MappingValue:
    """An object whose values may hold templates."""

    items: tuple[tuple[str, CompiledValue], ...]

    def render(self, context: Mapping[str, Any]) -> JsonValue:
        """Render every value."""
        return {key: value.render(context) for key, value in self.items}


@dataclass(frozen=True, slots=True)
class SequenceValue:
    """A list whose items may hold templates."""

    items: tuple[CompiledValue, ...]

    def render(self, context: Mapping[str, Any]) -> JsonValue:
        """Render every item."""
        return [item.render(context) for item in self.items]


CompiledValue = Template | Literal | MappingValue | SequenceValue


def iter_templates(value: CompiledValue) -> Iterable[Template]:
    """Every Template inside a value tree."""
    if isinstance(value, Template):
        yield value
    elif isinstance(value, MappingValue):
        for _, item in value.items:
            yield from iter_templates(item)
    elif isinstance(value, SequenceValue):
        for item in value.items:
            yield from iter_templates(item)


def compile_template(source: str, field: str) -> Template:
    """Compile one template string, Go forms translated; raises TemplateSyntaxError."""
    ast, single = jinja_ast(source)
    path = _plain_path(ast) if single is not None else None
    if path is not None and path[0] not in _DECLARED:  # compiled if a render ever needs it
        return Template(source, field, _path_references(path), None, None, path, single)
    try:
        expression = (
            ENVIRONMENT.compile_expression(single, undefined_to_none=False)
            if single is not None
            else None
        )
        template = ENVIRONMENT.from_string(ast) if single is None else None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(exc.message or "invalid template", exc.lineno) from None
    return Template(source, field, _references(ast), expression, template)


def jinja_ast(source: str) -> tuple[nodes.Template, str | None]:
    """The jinja2 syntax tree of a template, Go forms translated; raises TemplateSyntaxError.

    Also the expression's text when the template is one `{{ … }}` alone (None otherwise).
    """
    try:
        translated = translate(source)
    except GoSyntaxError as exc:
        line = source.count("\n", 0, exc.offset) + 1
        raise TemplateSyntaxError(exc.message, line, exc.offset) from None
    rewritten = rewrite_leading_dots(translated)
    single = _SINGLE_EXPRESSION.match(rewritten)
    expression = single.group("expr") if single is not None else None
    if expression is not None and not is_template(expression):
        text = "{{" + expression + "}}"
    else:
        expression, text = None, rewritten
    try:
        return ENVIRONMENT.parse(text), expression
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(exc.message or "invalid template", exc.lineno) from None


def _plain_path(ast: nodes.Template) -> tuple[str, ...] | None:
    """`a.b['c']` as ("a", "b", "c"); None for any other expression."""
    [output] = ast.body
    assert isinstance(output, nodes.Output)
    node: nodes.Node = output.nodes[0]
    keys: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        key = node.attr if isinstance(node, nodes.Getattr) else _const(node.arg)
        if key is None:
            return None
        keys.append(key)
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    keys.append(node.name)
    return tuple(reversed(keys))


_MISSING = object()


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = context
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


_DECLARED = frozenset({*ENVIRONMENT.globals, "self"})
"""Names jinja2 does not count as read from the context (its globals, the template itself):
a path starting with one takes the general way, `_references`."""


def _path_references(path: tuple[str, ...]) -> frozenset[Reference]:
    """What `_references` finds in a plain path, without jinja2's code generator."""
    if path[0] != "steps":
        return frozenset({Reference(path[0])})
    return frozenset({Reference("steps", path[1])} if len(path) > 1 else ())


def _references(ast: nodes.Template) -> frozenset[Reference]:
    names = find_undeclared_variables(ast)
    refs = {Reference(name) for name in names if name != "steps"}
    if "steps" in names:
        for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
            assert isinstance(node, nodes.Getattr | nodes.Getitem)
            target = node.node
            if isinstance(target, nodes.Name) and target.name == "steps":
                key = node.attr if isinstance(node, nodes.Getattr) else _const(node.arg)
                refs.add(Reference("steps", key))
    return frozenset(refs)


def _const(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _to_json(value: Any, field: str) -> JsonValue:
    """Check that a template's native result is JSON, converting tuples and iterators to lists."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)  # drops markupsafe.Markup
    if isinstance(value, Mapping):
        return {str(k): _to_json(v, field) for k, v in value.items()}
    if isinstance(value, list | tuple | range) or hasattr(value, "__next__"):
        return [_to_json(v, field) for v in value]
    raise TemplateError(
        f"renders a {type(value).__name__}, which is not a JSON value", step=None, field=field
    )
