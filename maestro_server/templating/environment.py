"""The single sandboxed jinja2 environment that every Maestro template compiles in."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from maestro_server.templating.gofuncs import FILTERS as GO_FILTERS

# Bounds on what one operator may build; jinja2's sandbox caps range() but not these.
_MAX_POWER = 1_000
_MAX_REPEATED_SIZE = 1_000_000
_MAX_POWER_BITS = 100_000


def _b64encode(value: Any) -> str:
    data = value if isinstance(value, bytes) else str(value).encode()
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"b64decode: not base64 of UTF-8 text: {exc}") from None


def _tojson(value: Any, indent: int | None = None) -> str:
    # jinja2's own tojson escapes <, > and & for HTML; Maestro renders JSON, not HTML.
    return json.dumps(value, indent=indent, ensure_ascii=False)


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """The value, or `default_value` when it is undefined or null (or falsy with boolean=true)."""
    if isinstance(value, Undefined) or value is None or (boolean and not value):
        return default_value
    return value


def _path(value: Any) -> Any:
    """`| path` marks a value that may span segments of an HTTP method's path (see path.py)."""
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid() -> str:
    return str(uuid.uuid4())


class MaestroEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed, immutable and strict; JSON objects are read by key, never by attribute.

    Reading `.order.items` must give the order's `items` key, not the dict method `items`,
    so attribute access on a mapping looks up keys only.
    """

    intercepted_binops = frozenset({"**", "*", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Look up `attribute`: a key of a mapping, else a safe attribute."""
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Apply `**` and `*` unless they would build an enormous value."""
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_POWER:
            raise SecurityError(f"exponent {right} is larger than {_MAX_POWER}")
        big = isinstance(left, int) and isinstance(right, int | float)
        if operator == "**" and big and left.bit_length() * abs(right) > _MAX_POWER_BITS:
            raise SecurityError("the power would be a number over 100,000 bits")
        if operator == "%" and isinstance(left, str):
            _check_widths(left)
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                repeats = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if repeats and len(seq) * times > _MAX_REPEATED_SIZE:
                    raise SecurityError("repetition would build a value over 1,000,000 items")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        """Refuse `str.format` and `format_map`: field widths build unbounded strings."""
        if super().wrap_str_format(value) is None:
            return None

        def refuse(*args: Any, **kwargs: Any) -> str:  # noqa: ARG001
            raise SecurityError("str.format is not available in templates; join text with ~")

        return refuse


def _join(value: Any, separator: str = "", attribute: Any = None) -> str:
    items = [str(item) for item in value]
    if sum(map(len, items)) + len(separator) * len(items) > _MAX_REPEATED_SIZE:
        raise SecurityError("join would build a string over 1,000,000 characters")
    return (
        separator.join(items)
        if attribute is None
        else separator.join(str(getattr(item, attribute, item)) for item in value)
    )


_PRINTF_WIDTH = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d+))?")


def _check_widths(text: str) -> None:
    for match in _PRINTF_WIDTH.finditer(text):
        if any(group and int(group) > 10_000 for group in match.groups()):
            raise SecurityError("a format width over 10,000")


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    _check_widths(text)
    return text % (kwargs or args)


def _center(value: Any, width: int = 80) -> str:
    if width > _MAX_REPEATED_SIZE:
        raise SecurityError("center width over 1,000,000")
    return str(value).center(width)


def _make_environment() -> MaestroEnvironment:
    env = MaestroEnvironment(undefined=StrictUndefined, autoescape=False, cache_size=0)
    env.filters.update(
        b64encode=_b64encode,
        b64decode=_b64decode,
        tojson=_tojson,
        default=_default,
        d=_default,
        join=_join,
        center=_center,
        format=_format,
        path=_path,
        **GO_FILTERS,
    )
    env.globals.update(uuid=_uuid, now=_now)
    return env


ENVIRONMENT = _make_environment()
"""The environment all templates compile in; compiled templates are immutable and shareable."""
