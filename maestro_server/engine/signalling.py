"""Signals on their way to the runners: checked when sent, found by the owner when stored.

The replica that receives a signal stores it (`ExecutionLog.add_signal`) and hands it to the
runner if the execution runs here. Otherwise the replica that runs it finds it at its next lease
renewal (`deliver_new_signals`), and a replica that takes the execution over reads every signal
with the log. Renewals ask only about executions a step is waiting in, from the position their
runner has seen: one query, however many executions wait.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from maestro_server.engine.runner import Runner
from maestro_server.errors import InvalidRequestError
from maestro_server.model.signals import SIGNAL_NAME, Signal
from maestro_server.store.base import ExecutionLog

# As execution ids: they travel in logs and URLs.
_SIGNAL_ID = re.compile(r"[\x21-\x7e]{1,200}")


def signal_to_send(
    execution_id: str, name: str, payload: dict[str, Any], signal_id: str, now: datetime
) -> Signal:
    """A signal as a client sends it, checked; an empty id becomes a new one."""
    if not execution_id:
        raise InvalidRequestError("execution_id", "execution_id is required")
    if not SIGNAL_NAME.fullmatch(name):
        raise InvalidRequestError(
            "name",
            f"name must start with a letter and hold only letters, digits, '_', '-' and '.' "
            f"(at most 128), not {name[:60]!r}",
        )
    if signal_id and not _SIGNAL_ID.fullmatch(signal_id):
        raise InvalidRequestError(
            "signal_id",
            "signal_id must be 1 to 200 printable ASCII characters without spaces, not "
            f"{signal_id[:60]!r}",
        )
    return Signal(execution_id, name, signal_id or str(uuid.uuid4()), payload, now)


async def deliver_new_signals(store: ExecutionLog, runners: Mapping[str, Runner]) -> None:
    """Hand the runners that wait for a signal what other replicas stored since they looked."""
    positions = {
        execution_id: runner.signal_position
        for execution_id, runner in runners.items()
        if runner.waiting_for_signal
    }
    if not positions:
        return
    found: dict[str, list[Signal]] = {}
    for signal in await store.new_signals(positions):
        found.setdefault(signal.execution_id, []).append(signal)
    for execution_id, signals in found.items():
        runner = runners.get(execution_id)
        if runner is not None:
            runner.deliver(signals)
