"""A step's `for_each`, `as` and `concurrency` → `ForEach`.

`for_each` is a template that renders to a list (`"{{ .input.items }}"`) or a list written out;
`as` names the element (default `item`, an identifier, not `index`, which is the element's
position, nor a reserved name); `concurrency` is 1 (in order) to 64.
"""

from __future__ import annotations

from maestro_server.definition.reader import Pairs, Reader
from maestro_server.definition.validate import Scope
from maestro_server.definition.value_compiler import ValueCompiler
from maestro_server.model.workflow import (
    ELEMENT_INDEX,
    MAX_CONCURRENCY,
    RESERVED_NAMES,
    ForEach,
)
from maestro_server.templating.values import Literal, MappingValue

FOR_EACH_KEYS = ("for_each", "as", "concurrency")


def read_for_each(
    r: Reader, values: ValueCompiler, pairs: Pairs, path: str, step_id: str
) -> ForEach | None:
    """The step's ForEach, or None when it has no `for_each` (or an invalid one)."""
    if "for_each" not in pairs:
        for key in ("as", "concurrency"):
            if key in pairs:
                r.error(
                    pairs[key][0],
                    f"{path}.{key}",
                    "for-each-only",
                    f"'{key}' belongs to a for_each step; this step has no 'for_each'",
                )
        return None
    node = pairs["for_each"][1]
    items = values.value(node, f"{path}.for_each", step_id, Scope.FOR_EACH, "for_each")
    if isinstance(items, MappingValue) or (
        isinstance(items, Literal) and not isinstance(items.value, list)
    ):
        r.error(
            node,
            f"{path}.for_each",
            "bad-value",
            "'for_each' must be a template that renders to a list, such as "
            '"{{ .input.items }}", or a list',
        )
        return None
    name = _name(r, pairs, path)
    concurrency = r.get(
        pairs,
        "concurrency",
        lambda n, p, w: r.integer(n, p, w, 1, MAX_CONCURRENCY),
        f"{path}.concurrency",
    )
    if items is None or name is None:
        return None
    return ForEach(items, name, concurrency or 1)


def _name(r: Reader, pairs: Pairs, path: str) -> str | None:
    if "as" not in pairs:
        return "item"
    node = pairs["as"][1]
    name = r.string(node, f"{path}.as", "'as'")
    if name is None:
        return None
    problem = None
    if not name.isidentifier() or not name.isascii():
        problem = "must be an identifier (letters, digits, '_')"
    elif name == ELEMENT_INDEX:
        problem = f"cannot be '{ELEMENT_INDEX}': that is the element's position"
    elif name in RESERVED_NAMES:
        problem = f"is reserved ({', '.join(sorted(RESERVED_NAMES))})"
    if problem is not None:
        r.error(node, f"{path}.as", "bad-name", f"'as: {name}' {problem}")
        return None
    return name
