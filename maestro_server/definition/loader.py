"""Safe YAML loading: text → a node tree that keeps every line and column.

The only module that imports yaml. It loads with the safe C loader, resolves plain scalars by
YAML 1.2's core schema (`yes`, `on`, `010` and `12:30` stay strings or decimals, unlike YAML 1.1),
and refuses what could hurt: more than one document, nesting deeper than `MAX_DEPTH`, and
aliases that expand past `MAX_EXPANDED_NODES` (the "billion laughs").
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from maestro_server.diagnostics import Diagnostic, SourceLocation
from maestro_server.errors import InvalidWorkflowError

MAX_SOURCE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000

STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"

_STANDARD_TAGS = frozenset(
    {STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG, MAP_TAG, SEQ_TAG, MERGE_TAG}
)

_CORE_SCHEMA = {
    BOOL_TAG: (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    INT_TAG: (r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    FLOAT_TAG: (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
}


class _CoreSchemaLoader(yaml.CSafeLoader):
    """The safe C loader with YAML 1.2 core-schema scalar resolution."""


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag in (NULL_TAG, MERGE_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, (_pattern, _first) in _CORE_SCHEMA.items():
    _CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def location(path: str, node: Node) -> SourceLocation:
    """The 1-based position of a node."""
    return SourceLocation(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _fail(path: str, line: int, column: int, message: str, code: str) -> InvalidWorkflowError:
    return InvalidWorkflowError([Diagnostic(SourceLocation(path, line, column), message, code)])


def decode(data: bytes, path: str) -> str:
    """Decode UTF-8, pointing at the first bad byte's line, column and offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        message = f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise _fail(path, line, column, message, "invalid-encoding") from None
    return text.removeprefix("\ufeff")


def compose(text: str, path: str) -> Node:
    """Parse YAML text into a single node tree; raises InvalidWorkflowError."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_SOURCE_BYTES:
        raise _fail(path, 1, 1, f"workflow is larger than {MAX_SOURCE_BYTES} bytes", "too-large")
    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise _fail(path, line, column, "NUL character in the workflow", "invalid-encoding")
    try:
        _check_depth(text, path)
        root = yaml.compose(text, Loader=_CoreSchemaLoader)
    except yaml.MarkedYAMLError as exc:
        line, column = _position(exc.problem_mark or exc.context_mark)
        raise _fail(path, line, column, _syntax_message(exc), "yaml-syntax") from None
    except yaml.YAMLError as exc:
        raise _fail(path, 1, 1, f"YAML error: {exc}", "yaml-syntax") from None
    if root is None:
        message = "empty workflow: expected a mapping with name, services and steps"
        raise _fail(path, 1, 1, message, "empty")
    _check_expansion(root, path)
    return root


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem, context = exc.problem or "invalid YAML", exc.context
    if not context:
        return f"YAML syntax error: {problem}"
    if problem.startswith("but "):
        return f"YAML syntax error: {context}, {problem}"
    mark = exc.context_mark
    where = f" at {mark.line + 1}:{mark.column + 1}" if mark else ""
    return f"YAML syntax error: {problem} ({context}{where})"


def _check_depth(text: str, path: str) -> None:
    # The composer recurses per level; count levels on the flat event stream first.
    depth = 0
    for event in yaml.parse(text, Loader=_CoreSchemaLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line, column = _position(event.start_mark)
                message = f"nesting deeper than {MAX_DEPTH} levels"
                raise _fail(path, line, column, message, "too-deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _position(mark: Any) -> tuple[int, int]:
    # yaml.Mark, or the C loader's own Mark type; both have line and column.
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _check_expansion(root: Node, path: str) -> None:
    # Aliases share nodes; a tree of shared nodes can stand for billions of values. Count the
    # expanded size with a memo so that counting itself stays cheap. Tags are checked on the way:
    # the tree is only ever read as data, but a `!!python/…` tag is never what a user meant.
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if node.tag not in _STANDARD_TAGS:
            line, column = _position(node.start_mark)
            message = f"unsupported YAML tag {node.tag!r}: only plain data is allowed"
            raise _fail(path, line, column, message, "unsupported-tag")
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        if total > MAX_EXPANDED_NODES:
            loc = location(path, node)
            message = f"YAML aliases expand to more than {MAX_EXPANDED_NODES} values"
            raise _fail(path, loc.line, loc.column, message, "alias-bomb")
        sizes[id(node)] = total
        return total

    size(root)
