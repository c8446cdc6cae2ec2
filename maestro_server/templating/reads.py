"""What a template reads from its context, and what it renders to, known without rendering.

Validation uses this to check paths against the services' schemas (`.user.id` must be a field
of the response that `user` holds) and the door uses it to know which `.input` values an
execution cannot do without. Go forms are analysed after their translation to jinja2, so both
languages are covered by one walk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from jinja2 import nodes

from maestro_server.templating.values import Template, jinja_ast

Key = str | int

_TEXT_FILTERS = frozenset(
    {"string", "tojson", "b64encode", "b64decode", "upper", "lower", "trim", "title"}
    | {"capitalize", "replace", "join", "format", "urlencode", "escape", "e", "center"}
    | {"indent", "truncate", "wordwrap", "striptags", "go_text", "go_printf", "go_print"}
    | {"go_println", "go_quote", "go_tojson", "go_b64enc", "go_b64dec", "go_upper"}
    | {"go_lower", "go_trim"}
)
_KIND_OF_FILTER = {
    **dict.fromkeys(_TEXT_FILTERS, "string"),
    **dict.fromkeys(("int", "length", "count", "wordcount", "go_len"), "integer"),
    **dict.fromkeys(("float",), "number"),
    **dict.fromkeys(("list", "sort", "unique"), "array"),
    **dict.fromkeys(("go_eq", "go_ne", "go_lt", "go_le", "go_gt", "go_ge"), "boolean"),
}
_OPTIONAL_TESTS = frozenset({"defined", "undefined", "none"})
Walk = Callable[..., Iterator["Read"]]


@dataclass(frozen=True, slots=True)
class Read:
    """One path a template reads: `.user.id` is root `user`, keys ("id",)."""

    root: str
    keys: tuple[Key, ...]
    offset: int
    """Where the path is written in the template's source (0 when it cannot be found)."""
    optional: bool = False
    """Read where a missing value is fine (`default`, `index`, `is defined`)."""
    conditional: bool = False
    """Read on some paths only: inside `if`/`range` bodies, on the right of `and`/`or`."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a template reads, and what it renders to as far as is known."""

    reads: tuple[Read, ...]
    kind: str | None
    """The JSON type it renders to (string, integer, number, boolean, object, array, null),
    or None when that depends on data; a template with text around its actions is a string."""
    path: Read | None
    """For a template that is exactly one path (`{{ .user.id }}`): that path, whose value it
    renders unchanged."""


def analyze(template: Template) -> Analysis:
    """The reads and the rendered type of a compiled template."""
    ast, single = jinja_ast(template.source)
    local = frozenset(
        name.name for name in ast.find_all(nodes.Name) if name.ctx in ("store", "param")
    )
    reads = [
        read
        for read in _walk(ast, template.source, conditional=False, optional=False)
        if read.root not in local
    ]
    if single is None:
        return Analysis(tuple(reads), "string", None)
    [output] = ast.body
    assert isinstance(output, nodes.Output)
    expression = output.nodes[0]
    path = _chain(expression)
    read = None
    if path is not None and isinstance(path[0], nodes.Name):
        read = next((r for r in reads if (r.root, r.keys) == (path[0].name, path[1])), None)
    return Analysis(tuple(reads), _kind(expression), read)


def _kind(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const):
        return _value_kind(node.value)
    if isinstance(node, nodes.Filter):
        return _KIND_OF_FILTER.get(node.name)
    if isinstance(node, nodes.Not | nodes.Compare | nodes.Test):
        return "boolean"
    if isinstance(node, nodes.Concat):
        return "string"
    if isinstance(node, nodes.Dict):
        return "object"
    if isinstance(node, nodes.List):
        return "array"
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
        return "string" if node.node.name in ("uuid", "now") else None
    return None


def _value_kind(value: object) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else None


def _chain(node: nodes.Node) -> tuple[nodes.Node, tuple[Key, ...], list[nodes.Node]] | None:
    """A path `a.b[0]`: its base, the keys, and the key expressions that are not constants."""
    keys: list[Key] = []
    dynamic: list[nodes.Node] = []
    if not isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        return None
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int):
            keys.append(node.arg.value)
        else:
            keys.clear()  # a computed key: the path is known only up to it
            dynamic.append(node.arg)
        node = node.node
    return node, tuple(reversed(keys)), dynamic


def _walk(node: nodes.Node, source: str, *, conditional: bool, optional: bool) -> Iterator[Read]:
    """Every context path under `node`; locals (loop variables, `set` names) are skipped."""

    def walk(
        child: nodes.Node, *, cond: bool = conditional, opt: bool = optional
    ) -> Iterator[Read]:
        return _walk(child, source, conditional=cond, optional=opt)

    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        chain = _chain(node)
        assert chain is not None
        base, keys, dynamic = chain
        if isinstance(base, nodes.Name) and base.ctx == "load":
            yield Read(base.name, keys, _locate(source, base.name, keys), optional, conditional)
        elif not isinstance(base, nodes.Name):
            yield from walk(base)
        for key in dynamic:
            yield from walk(key)
        return
    if isinstance(node, nodes.If):
        yield from walk(node.test)
        for child in [*node.body, *node.elif_, *node.else_]:
            yield from walk(child, cond=True)
        return
    if isinstance(node, nodes.For):
        yield from walk(node.iter)
        for child in [*node.body, *node.else_]:
            yield from walk(child, cond=True)
        return
    if isinstance(node, nodes.CondExpr):
        yield from walk(node.test)
        yield from walk(node.expr1, cond=True)
        if node.expr2 is not None:
            yield from walk(node.expr2, cond=True)
        return
    if isinstance(node, nodes.And | nodes.Or):
        yield from walk(node.left)
        yield from walk(node.right, cond=True)
        return
    if isinstance(node, nodes.Test) and node.name in _OPTIONAL_TESTS:
        yield from walk(node.node, opt=True)
        return
    if isinstance(node, nodes.Filter):
        yield from _filter(node, walk)
        return
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        # `.user.email.split("@")` reads `.user.email` and calls a method of its value.
        yield from walk(node.node.node)
        arguments: list[nodes.Node | None] = [*node.args, *node.kwargs]
        for argument in [*arguments, node.dyn_args, node.dyn_kwargs]:
            if argument is not None:
                yield from walk(argument)
        return
    for child in node.iter_child_nodes():
        yield from walk(child)


def _filter(node: nodes.Filter, walk: Walk) -> Iterator[Read]:
    """Reads of a filter; some may be missing.

    Those are the subject of `default`, the value of Go's `default`, and the key Go's
    `index .m "k"` reads (`.m` itself must be there).
    """
    subject = node.node
    if node.name in ("default", "d"):
        yield from walk(subject, opt=True)
        yield from (r for arg in node.args for r in walk(arg))
        return
    if node.name == "go_default":
        if subject is not None:
            yield from walk(subject)
        for arg in node.args:
            yield from walk(arg, opt=True)
        return
    if (
        node.name == "go_index"
        and subject is not None
        and all(isinstance(a, nodes.Const) and isinstance(a.value, str | int) for a in node.args)
    ):
        for read in walk(subject):
            yield read
            extra = tuple(a.value for a in node.args if isinstance(a, nodes.Const))
            keys = (*read.keys, *extra)
            yield Read(read.root, keys, read.offset, optional=True, conditional=read.conditional)
        return
    for child in node.iter_child_nodes():
        yield from walk(child)


def _locate(source: str, root: str, keys: tuple[Key, ...]) -> int:
    """Where `root` (and as many of its keys as can be found) is written; 0 when it is not."""
    start = _first_dotted(source, root, keys)
    if start is None:
        start = _search(source, root, keys)
    return _with_leading_dots(source, start) if start is not None else 0


def _search(source: str, root: str, keys: tuple[Key, ...]) -> int | None:
    """Where `root` and as many of its keys as can be found are written, in any form."""
    for count in range(len(keys), -1, -1):
        pattern = r"(?<![A-Za-z0-9_])" + re.escape(root) + r"(?![A-Za-z0-9_])"
        for key in keys[:count]:
            text = re.escape(str(key))
            pattern += (
                rf"(?:\s*\.\s*{text}(?![A-Za-z0-9_])|\s*\[\s*['\"]?{text}['\"]?\s*\]"
                rf"|\s+\"{text}\"|\s+{text}(?![A-Za-z0-9_]))"
            )
        match = re.search(pattern, source)
        if match is not None:
            return match.start()
    return None


def _with_leading_dots(source: str, start: int) -> int:
    while start > 0 and source[start - 1] in ".$":
        start -= 1
    return start


def _first_dotted(source: str, root: str, keys: tuple[Key, ...]) -> int | None:
    """Where `_search` finds `root` and all its keys, without compiling a pattern.

    When the first place `root` is written as a word goes on `.a.b` (the usual way), that is
    where; else None, for the search to decide. No match can start before that place, and
    there the dotted form matches: the search would find it there too. (The search compiles
    a pattern per path read: 1 ms each, at every load.)
    """
    position = source.find(root)
    while position >= 0 and not _whole_word(source, position, position + len(root)):
        position = source.find(root, position + 1)
    if position < 0:
        return None
    end = position + len(root)
    for key in keys:
        text = "." + str(key)
        if not source.startswith(text, end) or not _whole_word(source, end + 1, end + len(text)):
            return None
        end += len(text)
    return position


def _whole_word(source: str, start: int, end: int) -> bool:
    """Whether source[start:end] is neither preceded nor followed by a word character."""
    return (start == 0 or not _word_character(source[start - 1])) and (
        end == len(source) or not _word_character(source[end])
    )


def _word_character(character: str) -> bool:
    return character.isascii() and (character.isalnum() or character == "_")
