"""Signals as rows of the SQL stores (the `signals` table, schema version 4), in either dialect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_server.model.signals import Signal
from maestro_server.store.dialect import Dialect

COLUMNS = "execution_id, position, signal_id, name, payload, received_at"


def signal_values(signal: Signal, position: int, d: Dialect) -> dict[str, Any]:
    """A signal's row, at `position`."""
    return {
        "execution_id": signal.execution_id,
        "position": position,
        "signal_id": signal.signal_id,
        "name": signal.name,
        "payload": d.encode_json(signal.payload),
        "received_at": d.encode_time(signal.received_at),
    }


def signal_from_row(row: Mapping[str, Any], d: Dialect) -> Signal:
    """A signal from its row."""
    received_at = d.decode_time(row["received_at"])
    assert received_at is not None
    return Signal(
        execution_id=row["execution_id"],
        name=row["name"],
        signal_id=row["signal_id"],
        payload=d.decode_json(row["payload"]),
        received_at=received_at,
        position=row["position"],
    )


def by_id(d: Dialect) -> str:
    """The query of one signal by its execution and id."""
    return (
        f"SELECT {COLUMNS} FROM signals WHERE execution_id = {d.param('id')} "
        f"AND signal_id = {d.param('signal_id')}"
    )


def next_position(d: Dialect) -> str:
    """The query of an execution's next signal position, as `position`."""
    return (
        "SELECT COALESCE(MAX(position), 0) + 1 AS position FROM signals "
        f"WHERE execution_id = {d.param('id')}"
    )


def after(d: Dialect) -> str:
    """The query of an execution's signals after a position, in order."""
    return (
        f"SELECT {COLUMNS} FROM signals WHERE execution_id = {d.param('id')} "
        f"AND position > {d.param('after')} ORDER BY position"
    )


def after_each(d: Dialect) -> str:
    """The query of many executions' signals, each after its own position, in order.

    `positions` is a JSON object of execution id → position (SQLite's json_each): one
    statement however many executions are asked about.
    """
    return (
        f"SELECT {COLUMNS} FROM json_each({d.param('positions')}) AS seen "
        "JOIN signals ON signals.execution_id = seen.key AND signals.position > seen.value "
        "ORDER BY signals.execution_id, signals.position"
    )
