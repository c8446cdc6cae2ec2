"""What the group commits of the SQL stores share: each waiter of a group hears its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


def settle(waiters: Iterable[asyncio.Future[Any]], outcomes: Iterable[Any]) -> None:
    """Hand each waiter its outcome: an exception is raised to it, anything else returned.

    A waiter that gave up (cancelled) is skipped; its write is committed all the same.
    """
    for future, outcome in zip(waiters, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
