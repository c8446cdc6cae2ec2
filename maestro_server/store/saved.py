"""Many executions read whole at once: the SQL stores' side of `saved_executions`.

What resuming them needs (see `ExecutionLog.saved_executions`). A server that restarts with
10,000 unfinished executions reads them in four statements per batch, not four round trips each
(an execution, its log, its journaled requests, its signals). Each statement selects by
`execution_id <member>`: the dialect's way of asking for one of many ids as a single parameter
(SQLite's json_each over a JSON array, PostgreSQL's `= ANY(array)`), so a batch is never
limited by a driver's count of parameters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maestro_server.model.execution import Event
from maestro_server.model.signals import Signal
from maestro_server.store import rows, signal_rows
from maestro_server.store.base import SavedExecution
from maestro_server.store.dialect import Dialect

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SavedQueries:
    """The four statements of a batch, in either dialect."""

    executions: str
    events: str
    requests: str
    signals: str


def saved_queries(member: str) -> SavedQueries:
    """The statements for ids matched by `execution_id {member}`."""
    where = f"WHERE execution_id {member}"
    return SavedQueries(
        executions=f"SELECT {rows.EXECUTION_COLUMNS} FROM executions {where}",
        events="SELECT execution_id, sequence, payload FROM events "
        f"{where} ORDER BY execution_id, sequence",
        requests=f"SELECT execution_id, key, request FROM requests {where}",
        signals=f"SELECT {signal_rows.COLUMNS} FROM signals {where} "
        "ORDER BY execution_id, position",
    )


def assemble(
    ids: Sequence[str],
    found: tuple[Sequence[Row], Sequence[Row], Sequence[Row], Sequence[Row]],
    d: Dialect,
) -> list[SavedExecution]:
    """The executions asked for, in the order asked, from the rows of the four statements.

    `found` holds them in SavedQueries' order; unknown ids are left out.
    """
    executions, event_rows, request_rows, signal_rows_found = found
    records = {row["execution_id"]: row for row in executions}
    events: defaultdict[str, list[Event]] = defaultdict(list)
    for row in event_rows:
        events[row["execution_id"]].append(rows.event_from_row(row["execution_id"], row, d))
    requests: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    for row in request_rows:
        requests[row["execution_id"]][row["key"]] = d.decode_json(row["request"])
    signals: defaultdict[str, list[Signal]] = defaultdict(list)
    for row in signal_rows_found:
        signals[row["execution_id"]].append(signal_rows.signal_from_row(row, d))
    return [
        SavedExecution(
            rows.execution_from_row(records[i], d),
            tuple(events[i]),
            requests[i],
            tuple(signals[i]),
        )
        for i in ids
        if i in records
    ]


async def read(
    run: Callable[[str, Mapping[str, Any]], Awaitable[Sequence[Row]]],
    queries: SavedQueries,
    ids: Sequence[str],
    args: Mapping[str, Any],
    d: Dialect,
) -> list[SavedExecution]:
    """The executions `ids`, each statement run by `run` with `args`, one after the other.

    For a store whose statements are awaited one by one (SQLite runs its four together on its
    thread and calls `assemble`).
    """
    if not ids:
        return []
    found = (
        await run(queries.executions, args),
        await run(queries.events, args),
        await run(queries.requests, args),
        await run(queries.signals, args),
    )
    return assemble(ids, found, d)
