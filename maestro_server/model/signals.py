"""Signals: named messages sent to a running execution, which `wait` steps consume.

A signal is kept with its execution as soon as it is sent, in the order received, whether or
not a step waits for it yet. A `wait` step takes the first signal of its name that no earlier
step took; which ones were taken is in the log (SIGNAL_RECEIVED names the signal's id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SIGNAL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
"""What a signal's name may be: as a step id, and dots (`payment.confirmed`)."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal sent to an execution."""

    execution_id: str
    name: str
    signal_id: str
    """The sender's id for it: the same id again is the same signal (kept once)."""
    payload: dict[str, Any]
    received_at: datetime
    position: int = 0
    """1, 2, 3 … per execution, in the order received (0 before it is stored)."""
