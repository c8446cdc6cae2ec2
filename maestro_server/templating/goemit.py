"""Parsed Go pipelines written out as jinja2 expressions with the same meaning.

Go functions become the `go_…` filters of gofuncs.py (the first argument filtered, the others
passed), `and`/`or`/`not` jinja2's own operators, which short-circuit and return an operand as
Go's do. Fields read by key: `.a.b` from dot (the context at the root, a loop's element inside
`range`), `$.a` from the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maestro_server.templating.goparse import GoSyntaxError, Node, UnknownFunctionError

_JINJA_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False"}
    | {"None", "for", "endfor", "endif", "block", "with", "set", "import", "from", "recursive"}
)

FUNCTIONS: dict[str, tuple[str, int, int | None]] = {
    "printf": ("go_printf", 1, None),
    "print": ("go_print", 0, None),
    "println": ("go_println", 0, None),
    "len": ("go_len", 1, 1),
    "index": ("go_index", 1, None),
    "eq": ("go_eq", 1, None),
    "ne": ("go_ne", 2, 2),
    "lt": ("go_lt", 2, 2),
    "le": ("go_le", 2, 2),
    "gt": ("go_gt", 2, 2),
    "ge": ("go_ge", 2, 2),
    "and": ("and", 1, None),
    "or": ("or", 1, None),
    "not": ("not", 1, 1),
    "default": ("go_default", 1, None),
    "upper": ("go_upper", 1, 1),
    "lower": ("go_lower", 1, 1),
    "trim": ("go_trim", 1, 1),
    "quote": ("go_quote", 0, None),
    "toJson": ("go_tojson", 1, 1),
    "b64enc": ("go_b64enc", 1, 1),
    "b64dec": ("go_b64dec", 1, 1),
}
"""Go and sprig functions: the filter each becomes, and how many arguments it takes."""


@dataclass
class Scope:
    """What `.` and the `$variables` are where a pipeline is written out."""

    dot: str | None = None
    """The jinja2 name holding dot; None at the root (the template's context)."""
    variables: dict[str, str] = field(default_factory=dict)


def emit(node: Node, scope: Scope) -> str:
    """A jinja2 expression with the node's Go meaning."""
    if node.kind == "literal":
        return _literal(node.value)
    if node.kind == "dot":
        if scope.dot is None:
            raise GoSyntaxError(
                "'.' alone is the whole context; name what to read, e.g. .input", node.offset
            )
        return scope.dot
    if node.kind == "var":
        return _variable(node, scope)
    if node.kind == "field":
        return _field(node, scope)
    name = str(node.value)
    if name == "paren":
        return emit(node.args[0], scope)
    if name not in FUNCTIONS:
        raise UnknownFunctionError(name, node.offset)
    filter_name, least, most = FUNCTIONS[name]
    if len(node.args) < least or (most is not None and len(node.args) > most):
        wanted = str(least) if least == most else f"at least {least}"
        raise GoSyntaxError(
            f"wrong number of args for {name}: want {wanted} got {len(node.args)}", node.offset
        )
    args = [emit(arg, scope) for arg in node.args]
    if filter_name in ("and", "or"):
        return "(" + f" {filter_name} ".join(f"({arg})" for arg in args) + ")"
    if filter_name == "not":
        return f"(not ({args[0]}))"
    if not args:
        return '""'
    return f"(({args[0]}) | {filter_name}({', '.join(args[1:])}))"


def _variable(node: Node, scope: Scope) -> str:
    name = str(node.value)
    if name == "":
        raise GoSyntaxError(
            "'$' alone is the whole context; name what to read, e.g. $.input", node.offset
        )
    if name not in scope.variables:
        raise GoSyntaxError(f"undefined variable: ${name}", node.offset)
    return scope.variables[name]


def _field(node: Node, scope: Scope) -> str:
    names = list(node.names)
    receiver = node.receiver
    if receiver is None and scope.dot is not None:
        base = scope.dot
    elif receiver is None or (receiver.kind == "var" and receiver.value == ""):
        root = names.pop(0)
        if root in _JINJA_WORDS:
            raise GoSyntaxError(f"cannot read .{root} from the root", node.offset)
        base = root
    else:
        base = f"({emit(receiver, scope)})"
    for name in names:
        base += f".{name}" if name not in _JINJA_WORDS else f"[{_literal(name)}]"
    return base


def _literal(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    escaped = "".join(
        "\\\\" if c == "\\" else '\\"' if c == '"' else f"\\x{ord(c):02x}" if ord(c) < 0x20 else c
        for c in text
    )
    return f'"{escaped}"'
