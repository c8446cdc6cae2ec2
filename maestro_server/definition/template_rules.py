"""What validation refuses in templates that the sandbox would refuse only at run time.

`{{ .input.x | attr('__globals__') }}` compiles, and jinja2's sandbox stops it when it runs;
a workflow that tries it is refused by `validate` instead, at the line and column of the name.
Refused: attributes whose name starts with `_` (`.__class__`, `._private`), subscripts with
dunder names (`['__class__']`), and such names given to `attr` and the other filters that read
attributes (`map(attribute=…)`, `sort(attribute=…)`, `selectattr(…)`). A JSON key that starts
with `_` is still read by subscript: `.doc['_id']`. The `path` filter belongs only at the end of
a template in an HTTP method's path.
"""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
from jinja2 import nodes
from yaml.nodes import Node

from maestro_server.definition.reader import Reader
from maestro_server.diagnostics import Diagnostic, SourceLocation
from maestro_server.templating.environment import ENVIRONMENT
from maestro_server.templating.path import PATH_FILTER
from maestro_server.templating.syntax import rewrite_leading_dots
from maestro_server.templating.values import Template

# Filter → positions of its arguments (after the value) that name attributes; `attribute=`
# counts for each of them too.
_ATTRIBUTE_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "attr": (0,),
    "selectattr": (0,),
    "rejectattr": (0,),
    "groupby": (0,),
    "sum": (0,),
    "map": (),
    "sort": (2,),
    "unique": (1,),
    "min": (1,),
    "max": (1,),
    "join": (1,),
}


def check_template(
    reader: Reader,
    template: Template,
    node: Node,
    path: str,
    text: str,
    *,
    offset: int = 0,
    spans: bool = False,
) -> None:
    """Record a diagnostic, at its line and column, for each name the sandbox would refuse.

    `text` is the whole workflow file; `offset` is where the template starts in the node's
    value; `spans` allows the `path` filter at the end (an HTTP path's spanning template).
    """
    try:
        ast = ENVIRONMENT.parse(rewrite_leading_dots(template.source))
    except jinja2.TemplateSyntaxError:
        return  # compiled once already; the syntax error, if any, is reported there
    allowed_filter = _top_node(ast) if spans else None
    for name, line, message, code in _problems(ast, allowed_filter):
        where = _offset_in(template.source, name, line)
        error_at(reader, text, node, offset + where, name, path=path, code=code, message=message)


def error_at(
    reader: Reader,
    text: str,
    node: Node,
    value_offset: int,
    needle: str,
    *,
    path: str,
    code: str,
    message: str,
) -> None:
    """Record a problem at `needle` inside a scalar node (at the node, when not found)."""
    position = locate(text, node, value_offset, needle)
    location = (
        SourceLocation(reader.path, *position) if position is not None else reader.location(node)
    )
    reader.diagnostics.append(Diagnostic(location, message, code, path))


def locate(text: str, node: Node, value_offset: int, needle: str) -> tuple[int, int] | None:
    """The file position of `needle`, found at `value_offset` in the node's (decoded) value.

    The value is the YAML scalar after unescaping and folding, so the needle is looked for in
    the raw text of the node: the same occurrence, counted from the start. None when the raw
    text spells it otherwise (an escape inside it).
    """
    value = getattr(node, "value", "")
    if not isinstance(value, str) or not needle:
        return None
    occurrence = value.count(needle, 0, value_offset)
    start, end = node.start_mark.index, node.end_mark.index
    found = start - 1
    for _ in range(occurrence + 1):
        found = text.find(needle, found + 1, end)
        if found < 0:
            return None
    line = text.count("\n", 0, found) + 1
    column = found - (text.rfind("\n", 0, found) + 1) + 1
    return line, column


def _top_node(ast: nodes.Template) -> nodes.Node | None:
    output = ast.body[0] if ast.body else None
    return output.nodes[0] if isinstance(output, nodes.Output) and output.nodes else None


def _problems(
    ast: nodes.Template, allowed_filter: nodes.Node | None
) -> Iterator[tuple[str, int, str, str]]:
    """(name, template line, message, code) of each refused name."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            hint = (
                ""
                if node.attr.startswith("__")
                else f" (a JSON key that starts with '_' is read as ['{node.attr}'])"
            )
            message = (
                f"attribute '{node.attr}' starts with '_': templates may not read internal "
                f"attributes{hint}"
            )
            yield node.attr, node.lineno, message, "unsafe-attribute"
        elif isinstance(node, nodes.Getitem):
            name = _constant(node.arg)
            if name is not None and name.startswith("__"):
                yield (
                    name,
                    node.lineno,
                    f"'{name}' is an internal attribute, which templates may not read",
                    "unsafe-attribute",
                )
        elif isinstance(node, nodes.Filter):
            yield from _filter_problems(node, allowed_filter)


def _filter_problems(
    node: nodes.Filter, allowed_filter: nodes.Node | None
) -> Iterator[tuple[str, int, str, str]]:
    if node.name == PATH_FILTER and node is not allowed_filter:
        yield (
            PATH_FILTER,
            node.lineno,
            "the path filter goes only at the end of a template in an HTTP method's path "
            "(`/files/{{ .input.file | path }}`)",
            "misplaced-filter",
        )
        return
    positions = _ATTRIBUTE_ARGUMENTS.get(node.name)
    if positions is None:
        return
    arguments = [node.args[i] for i in positions if i < len(node.args)]
    arguments += [pair.value for pair in node.kwargs if pair.key == "attribute"]
    if node.name == "map" and node.args and _constant(node.args[0]) == "attr":
        arguments += node.args[1:2]
    for argument in arguments:
        name = _constant(argument)
        if name is not None and any(part.startswith("_") for part in name.split(".")):
            yield (
                name,
                node.lineno,
                f"the {node.name} filter reads attribute '{name}', which starts with '_': "
                "templates may not read internal attributes",
                "unsafe-attribute",
            )


def _constant(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _offset_in(source: str, name: str, line: int) -> int:
    """Where `name` first stands on the template's `line` (1-based); 0 when it does not."""
    line_start = 0
    for _ in range(line - 1):
        next_line = source.find("\n", line_start)
        if next_line < 0:
            break
        line_start = next_line + 1
    found = source.find(name, line_start)
    return found if found >= 0 else source.find(name) if name in source else 0
