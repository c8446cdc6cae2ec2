"""The functions of Go's text/template, and the sprig ones Go users reach for most.

Go templates are translated to jinja2 (gotemplate.py); each function becomes a `go_…` filter
whose first argument is the function's first argument. They keep Go's meaning, including its
errors (`eq` of a string and a number, `index` out of range, `upper` of a number). One
deliberate difference: sprig's `b64dec` returns its error message as text; here it fails.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError

from maestro_server.templating.gofmt import (
    format_float,
    go_type,
    quote,
    sprint,
    sprintf,
    sprintln,
    value_text,
)

MAX_RANGE = 100_000


class GoTemplateError(Exception):
    """A Go function was called with arguments it cannot take, as Go would report it."""


def defined(value: Any) -> Any:
    """The value itself; a missing one fails here as it would anywhere (strict undefined)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def go_text(value: Any) -> str:
    """How an action prints its value: fmt's %v, and `<no value>` for nil."""
    value = defined(value)
    return "<no value>" if value is None else value_text(value)


def _printf(format_text: Any, *args: Any) -> str:
    return sprintf(_string("printf", format_text), [defined(a) for a in args])


def _print(*args: Any) -> str:
    return sprint([defined(a) for a in args])


def _println(*args: Any) -> str:
    return sprintln([defined(a) for a in args])


def _len(value: Any) -> int:
    value = defined(value)
    if isinstance(value, str):
        return len(value.encode())  # Go's len of a string counts bytes
    if isinstance(value, list | tuple | Mapping):
        return len(value)
    raise GoTemplateError(f"error calling len: len of type {_type(value)}")


def _index(item: Any, *keys: Any) -> Any:
    item = defined(item)
    if item is None:
        raise GoTemplateError("error calling index: index of untyped nil")
    for key in map(defined, keys):
        if item is None:
            raise GoTemplateError("error calling index: index of nil pointer")
        if isinstance(item, Mapping):
            if not isinstance(key, str):
                raise GoTemplateError(
                    f"error calling index: value has type {_type(key)}; should be string"
                )
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if key is None:
                raise GoTemplateError("error calling index: cannot index slice/array with nil")
            if not isinstance(key, int) or isinstance(key, bool):
                raise GoTemplateError(
                    f"error calling index: cannot index slice/array with type {_type(key)}"
                )
            sequence = item.encode() if isinstance(item, str) else item
            if not 0 <= key < len(sequence):
                raise GoTemplateError(f"error calling index: index out of range: {key}")
            item = sequence[key]
        else:
            raise GoTemplateError(f"error calling index: can't index item of type {_type(item)}")
    return item


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any, name: str = "eq") -> bool:
    first = defined(first)
    if not others:
        raise GoTemplateError(f"error calling {name}: missing argument for comparison")
    for other in map(defined, others):
        kinds = {_kind(first), _kind(other)}
        if len(kinds) == 2:
            if "nil" not in kinds:
                raise GoTemplateError(f"error calling {name}: incompatible types for comparison")
            continue
        if kinds == {"other"}:
            raise GoTemplateError(f"error calling {name}: non-comparable type {_type(first)}")
        if first == other:
            return True
    return False


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second, name="ne")


def _lt(first: Any, second: Any, name: str = "lt") -> bool:
    first, second = defined(first), defined(second)
    kinds = {_kind(first), _kind(second)}
    if kinds & {"nil", "other"}:
        raise GoTemplateError(f"error calling {name}: invalid type for comparison")
    if len(kinds) == 2:
        raise GoTemplateError(f"error calling {name}: incompatible types for comparison")
    if kinds == {"bool"}:
        raise GoTemplateError(f"error calling {name}: invalid type for comparison")
    return bool(first < second)


def _le(first: Any, second: Any, name: str = "le") -> bool:
    return _lt(first, second, name) or _eq(first, second, name=name)


def _gt(first: Any, second: Any) -> bool:
    return not _le(first, second, "gt")


def _ge(first: Any, second: Any) -> bool:
    return not _lt(first, second, "ge")


def _empty(value: Any) -> bool:
    """Empty as sprig's `empty` says: nil, false, zero, and empty strings, lists and maps."""
    return isinstance(value, Undefined) or not value


def _default(fallback: Any, *given: Any) -> Any:
    """Sprig's `default FALLBACK GIVEN`: GIVEN unless it is empty (or missing)."""
    fallback = defined(fallback)
    if not given or _empty(given[0]):
        return fallback
    return given[0]


def _string(name: str, value: Any) -> str:
    value = defined(value)
    if not isinstance(value, str):
        wanted = "invalid value" if value is None else f"wrong type for value; got {_type(value)}"
        raise GoTemplateError(f"{name}: {wanted}; expected string")
    return value


def _b64dec(value: Any) -> str:
    try:
        return base64.b64decode(_string("b64dec", value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise GoTemplateError(f"b64dec: not base64 of UTF-8 text: {exc}") from None


def _quote(*values: Any) -> str:
    return " ".join(quote(value_text(defined(v))) for v in values if defined(v) is not None)


def go_json(value: Any) -> str:
    """encoding/json's Marshal: compact, keys sorted, <, > and & escaped, floats as Go writes."""
    value = defined(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GoTemplateError(f"toJson: unsupported value: {value_text(value)}")
        mode = "e" if value and not 1e-6 <= abs(value) < 1e21 else "f"
        return _go_float(value, mode)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items())
        return "{" + ",".join(f"{_json_string(str(k))}:{go_json(v)}" for k, v in items) + "}"
    raise GoTemplateError(f"toJson: unsupported type {_type(value)}")


def _go_float(value: float, mode: str) -> str:
    text = format_float(value, mode)
    return text.replace("e-0", "e-")  # encoding/json writes e-7, not strconv's e-07


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_JSON_ESCAPES |= {"\t": "\\t", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_JSON_ESCAPES |= {"\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_string(text: str) -> str:
    out = ['"']
    for char in text:
        escaped = _JSON_ESCAPES.get(char)
        if escaped is None and ord(char) < 0x20:
            escaped = f"\\u{ord(char):04x}"
        out.append(escaped or char)
    out.append('"')
    return "".join(out)


def go_range(value: Any, variables: int = 1) -> Iterator[tuple[Any, Any]]:
    """(index or key, element) of what `range` walks: lists, maps by sorted key, 0…n-1."""
    value = defined(value)
    if value is None:
        return iter(())
    if isinstance(value, list | tuple):
        return iter(enumerate(value))
    if isinstance(value, Mapping):
        return iter((key, value[key]) for key in sorted(value))
    if isinstance(value, int) and not isinstance(value, bool):
        if variables > 1:
            raise GoTemplateError(f"can't use {value} to iterate over more than one variable")
        if value > MAX_RANGE:
            raise SecurityError(f"range over {value}: more than {MAX_RANGE:,} iterations")
        return iter((i, i) for i in range(value))
    raise GoTemplateError(f"range can't iterate over {value_text(value)}")


def _type(value: Any) -> str:
    return "<nil>" if value is None else go_type(value)


def _strings(name: str, function: Callable[[str], str]) -> Callable[[Any], str]:
    return lambda value: function(_string(name, value))


FILTERS: dict[str, Callable[..., Any]] = {
    "go_text": go_text,
    "go_range": go_range,
    "go_printf": _printf,
    "go_print": _print,
    "go_println": _println,
    "go_len": _len,
    "go_index": _index,
    "go_eq": _eq,
    "go_ne": _ne,
    "go_lt": _lt,
    "go_le": _le,
    "go_gt": _gt,
    "go_ge": _ge,
    "go_default": _default,
    "go_upper": _strings("upper", str.upper),
    "go_lower": _strings("lower", str.lower),
    "go_trim": _strings("trim", str.strip),
    "go_quote": _quote,
    "go_tojson": go_json,
    "go_b64enc": _strings("b64enc", lambda s: base64.b64encode(s.encode()).decode("ascii")),
    "go_b64dec": _b64dec,
}
"""The filters Go functions translate to, registered in the environment."""
