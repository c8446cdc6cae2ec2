"""Durations as Maestro writes them, in workflows and on the command line alike.

`250ms`, `5s`, `1.5m`, `2h`, `7d`, or several parts in a row (`1m30s`, `1d12h`). Each caller
decides what it accepts beyond that (a workflow's timeouts must be longer than zero) and how it
reports a bad one.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_PART = re.compile(r"(?P<amount>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """The duration `text` writes.

    Raises ValueError when `text` is not a duration, OverflowError when it is longer than a
    timedelta holds (about 2.7 million years).
    """
    parts = list(_PART.finditer(text))
    if not text or "".join(part.group() for part in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    try:
        return sum((UNITS[p["unit"]] * float(p["amount"]) for p in parts), timedelta())
    except OverflowError:
        raise OverflowError(f"duration {text!r} is too long") from None


def format_duration(value: timedelta) -> str:
    """A duration as a workflow writes it: `30s`, `1m30s`, `24h`, `250ms` (whole milliseconds)."""
    left = round(value / UNITS["ms"])
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(UNITS[unit] / UNITS["ms"])
        amount, left = divmod(left, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
