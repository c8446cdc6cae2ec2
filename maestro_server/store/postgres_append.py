"""Appends on PostgreSQL: one fenced statement writes a batch of events and announces it.

Events, journaled requests and the progress they lead to are written in one statement, only if
the fence holds: this replica still owns the execution (its lease) and the batch follows the
log's last event (compare-and-set), so a replica that lost its lease cannot write. The statement
NOTIFYs every replica at commit, so their watchers follow the execution at once
(`postgres_listen`). When the fence does not hold, `refusal` says why. An execution's first
batch inserts the execution instead, in the same one statement (`create`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from maestro_server.errors import FailedPreconditionError
from maestro_server.store import rows, rules
from maestro_server.store.base import ExecutionRecord, LogEntries
from maestro_server.store.codec import event_to_json
from maestro_server.store.dialect import POSTGRES_DIALECT as SQL
from maestro_server.store.postgres_db import PostgresDatabase
from maestro_server.store.postgres_listen import CHANNEL, notice

_WRITTEN = """
logged AS (
    INSERT INTO events (execution_id, sequence, payload)
    SELECT progress.execution_id, e.sequence, e.payload::jsonb
    FROM progress, unnest(%(sequences)b::integer[], %(payloads)b::text[]) AS e(sequence, payload)
), journaled AS (
    INSERT INTO requests (execution_id, key, request)
    SELECT progress.execution_id, r.key, r.request::jsonb
    FROM progress, unnest(%(keys)b::text[], %(requests)b::text[]) AS r(key, request)
    ON CONFLICT DO NOTHING
)
SELECT count(*) AS written FROM progress
"""
"""The events and requests of a batch, written if its execution's row (`progress`) was."""


def _append_query(release: str) -> str:
    return f"""
WITH progress AS (
    UPDATE executions SET progress = %(progress)s, state = %(state)s, ended_at = %(ended_at)s,
        last_sequence = %(last_sequence)s{release}
    WHERE execution_id = %(execution_id)s AND last_sequence = %(previous)s
        AND owner = %(owner)s
    RETURNING execution_id, pg_notify(%(channel)s, %(notice)s)
),{_WRITTEN}"""


APPEND = {
    False: _append_query(""),
    # A finished execution is nobody's: any replica may resume it.
    True: _append_query(", owner = NULL, lease_expires_at = NULL"),
}
"""Events, journaled requests and the progress they lead to, in one statement: written only
if the fence (owner and last sequence) holds, and announced to every replica at commit.

Arrays are sent in binary (`%(name)b`): in text, psycopg escapes every quote of every JSON
payload with a regular expression: a tenth of the server's CPU per workflow.

By whether the batch ends the execution; built once, not per append."""


def create(
    entries: LogEntries, creation: ExecutionRecord, owner: str, lease: timedelta
) -> tuple[str, dict[str, Any]]:
    """The append of an execution's first batch, and its arguments.

    The execution is inserted as the batch leaves it (owned by `owner` under a `lease`, unless
    the batch ends it), with the same events and requests as `APPEND`. Nothing is written if
    the id is taken (`written` is 0).
    """
    execution = rows.execution_values(replace(creation, progress=entries.progress), SQL)
    query = _create_query(tuple(execution), entries.progress.state.terminal)
    return query, {**append_values(entries, owner), **execution, "lease": lease}


@functools.cache
def _create_query(columns: tuple[str, ...], terminal: bool) -> str:
    lease = (
        {"owner": "NULL", "lease_expires_at": "NULL"}
        if terminal
        else {"owner": "%(owner)s", "lease_expires_at": "now() + %(lease)s"}
    )
    insert = SQL.insert("executions", columns, " ON CONFLICT DO NOTHING", lease)
    returning = "RETURNING execution_id, pg_notify(%(channel)s, %(notice)s)"
    return f"WITH progress AS ({insert} {returning}),{_WRITTEN}"


def append_values(entries: LogEntries, owner: str) -> dict[str, Any]:
    """The arguments of `APPEND` for `entries`, appended by replica `owner`."""
    progress = entries.progress
    return {
        **rows.progress_values(progress, SQL),
        "execution_id": entries.execution_id,
        "previous": entries.after,
        "owner": owner,
        "sequences": [event.sequence for event in entries.events],
        "payloads": [json.dumps(event_to_json(event)) for event in entries.events],
        "keys": list(entries.requests),
        "requests": [json.dumps(request) for request in entries.requests.values()],
        "channel": CHANNEL,
        "notice": notice(entries.execution_id, progress.last_sequence, owner),
    }


async def refusal(db: PostgresDatabase, entries: LogEntries, owner: str) -> Exception:
    """Why an append's fence did not hold."""
    row = await db.one(
        "SELECT owner FROM executions WHERE execution_id = %(id)s",
        {"id": entries.execution_id},
    )
    if row is None:
        return rules.execution_not_found(entries.execution_id)
    if row["owner"] != owner:
        return FailedPreconditionError(
            f"execution {entries.execution_id!r} is owned by another replica"
        )
    return rules.fell_behind(entries)
