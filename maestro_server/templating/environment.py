"""The single sandboxed jinja2 environment that every Maestro template compiles in."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Bounds on what one operator may build; jinja2's sandbox caps range() but not these.
_MAX_POWER = 1_000
_MAX_REPEATED_SIZE = 1_000_000


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid() -> str:
    return str(uuid.uuid4())


class MaestroEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed, immutable and strict; JSON objects are read by key, never by attribute.

    Reading `.order.items` must give the order's `items` key, not the dict method `items`,
    so attribute access on a mapping looks up keys only.
    """

    intercepted_binops = frozenset({"**", "*"})

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
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                repeats = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if repeats and len(seq) * times > _MAX_REPEATED_SIZE:
                    raise SecurityError("repetition would build a value over 1,000,000 items")
        return super().call_binop(context, operator, left, right)


def _make_environment() -> MaestroEnvironment:
    env = MaestroEnvironment(undefined=StrictUndefined, autoescape=False, cache_size=0)
    env.filters.update(
        b64encode=_b64encode,
        b64decode=_b64decode,
        tojson=_tojson,
        default=_default,
        d=_default,
    )
    env.globals.update(uuid=_uuid, now=_now)
    return env


ENVIRONMENT = _make_environment()
"""The environment all templates compile in; compiled templates are immutable and shareable."""
