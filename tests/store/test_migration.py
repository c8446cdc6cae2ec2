"""A version-1 database, made with the version-1 DDL, opens as version 2 with its progress.

Version 2 keeps an execution's whole progress in one column, replayed from its log by the
migration; the summary columns version 1 folded by hand (output, error, steps) go.
"""

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from maestro_server.model.execution import Cause, ErrorInfo, ExecutionState, StepState
from maestro_server.store.base import ExecutionRecord
from maestro_server.store.codec import event_to_json
from maestro_server.store.postgres import PostgresStore
from maestro_server.store.schema import SCHEMA_VERSION
from maestro_server.store.sqlite import SqliteStore
from tests.postgres import fresh_database
from tests.store.test_store_contract import RUN, T0

# The DDL of schema version 1, as Maestro wrote it before version 2.
SQLITE_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE workflows (
    name TEXT NOT NULL, version TEXT NOT NULL, description TEXT NOT NULL, yaml TEXT NOT NULL,
    files TEXT NOT NULL, hash TEXT NOT NULL, path TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE executions (
    execution_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL,
    workflow_version TEXT NOT NULL, workflow_hash TEXT NOT NULL, source TEXT NOT NULL,
    input TEXT NOT NULL, step_ids TEXT NOT NULL, state TEXT NOT NULL, output TEXT,
    error TEXT, created_at TEXT NOT NULL, ended_at TEXT, last_sequence INTEGER NOT NULL,
    steps TEXT NOT NULL);
CREATE INDEX executions_by_state ON executions (state);
CREATE TABLE events (
    execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (execution_id, sequence));
CREATE TABLE requests (
    execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
    key TEXT NOT NULL, request TEXT NOT NULL, PRIMARY KEY (execution_id, key));
"""
POSTGRES_V1 = [
    "CREATE TABLE schema_version (version INTEGER)",
    "INSERT INTO schema_version VALUES (1)",
    """CREATE TABLE workflows (
        name TEXT NOT NULL, version TEXT NOT NULL, description TEXT NOT NULL,
        yaml TEXT NOT NULL, files JSONB NOT NULL, hash TEXT NOT NULL, path TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (name, version))""",
    """CREATE TABLE executions (
        execution_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL,
        workflow_version TEXT NOT NULL, workflow_hash TEXT NOT NULL, source JSONB NOT NULL,
        input JSONB NOT NULL, step_ids JSONB NOT NULL, state TEXT NOT NULL, output JSONB,
        error JSONB, created_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ,
        last_sequence INTEGER NOT NULL, steps JSONB NOT NULL, owner TEXT,
        lease_expires_at TIMESTAMPTZ)""",
    "CREATE INDEX executions_unfinished ON executions (state, lease_expires_at)",
    """CREATE TABLE events (
        execution_id TEXT NOT NULL REFERENCES executions ON DELETE CASCADE,
        sequence INTEGER NOT NULL, payload JSONB NOT NULL,
        PRIMARY KEY (execution_id, sequence))""",
    """CREATE TABLE requests (
        execution_id TEXT NOT NULL REFERENCES executions ON DELETE CASCADE,
        key TEXT NOT NULL, request JSONB NOT NULL, PRIMARY KEY (execution_id, key))""",
]
ERROR = {"code": "UNAVAILABLE", "message": "down", "service": "svc", "retryable": False}
# e1 compensated (its log written before events carried a cause); e2 created, never started.
EXECUTIONS: list[dict[str, Any]] = [
    {
        "execution_id": "e1",
        "state": "COMPENSATED",
        "output": None,
        "error": ERROR,
        "created_at": T0,
        "ended_at": RUN[-1].time,
        "last_sequence": 7,
        "steps": {"a": {"state": "COMPENSATED"}},
    },
    {
        "execution_id": "e2",
        "state": "PENDING",
        "output": None,
        "error": None,
        "created_at": T0.replace(minute=1),
        "ended_at": None,
        "last_sequence": 0,
        "steps": {},
    },
]
SOURCE = {"yaml": "name: w\n", "path": "w.yaml", "files": {}}


def v1_payload(sequence: int) -> dict[str, Any]:
    payload = event_to_json(RUN[sequence - 1])
    del payload["cause"]
    return payload


def check_upgraded(e1: ExecutionRecord, e2: ExecutionRecord) -> None:
    assert (e1.state, e1.last_sequence, e1.ended_at) == (
        ExecutionState.COMPENSATED,
        7,
        RUN[-1].time,
    )
    assert e1.error == ErrorInfo("UNAVAILABLE", "down", "svc", False)
    assert e1.steps["a"].state is StepState.COMPENSATED
    assert e1.steps["a"].output == {"id": 7}
    assert e1.steps["b"].in_doubt and e1.steps["b"].attempts == 2
    assert e1.progress.completed == ("a", "b")
    assert e1.progress.stop is not None and e1.progress.stop.cause is Cause.STEP_FAILED
    assert (e2.state, e2.last_sequence, e2.steps) == (ExecutionState.PENDING, 0, {})


async def test_sqlite_version_1_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "maestro.db"
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_V1)
        for row in EXECUTIONS:
            db.execute(
                "INSERT INTO executions VALUES (?, 'w', '1', 'h1', ?, '{\"x\": 1}', "
                '\'["a", "b"]\', ?, ?, ?, ?, ?, ?, ?)',
                (
                    row["execution_id"],
                    json.dumps(SOURCE),
                    row["state"],
                    json.dumps(row["output"]),
                    json.dumps(row["error"]),
                    row["created_at"].isoformat(),
                    row["ended_at"].isoformat() if row["ended_at"] else None,
                    row["last_sequence"],
                    json.dumps(row["steps"]),
                ),
            )
        for event in RUN:
            db.execute(
                "INSERT INTO events VALUES ('e1', ?, ?)",
                (event.sequence, json.dumps(v1_payload(event.sequence))),
            )
    store = await SqliteStore(path).open()
    try:
        check_upgraded(await store.get_execution("e1"), await store.get_execution("e2"))
        assert [r.execution_id for r in await store.unfinished_executions()] == ["e2"]
    finally:
        await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = {row[1] for row in db.execute("PRAGMA table_info(executions)")}
        assert "progress" in columns and not columns & {"output", "error", "steps"}


@pytest.fixture
def v1_postgres() -> Iterator[str]:
    try:
        with fresh_database("maestro_v1") as url:
            yield url
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")


async def test_postgres_version_1_upgrades(v1_postgres: str) -> None:
    with psycopg.connect(v1_postgres, autocommit=True) as db:
        for statement in POSTGRES_V1:
            db.execute(statement)
        for row in EXECUTIONS:
            db.execute(
                "INSERT INTO executions VALUES (%s, 'w', '1', 'h1', %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, 'replica-old', now())",
                (
                    row["execution_id"],
                    Jsonb(SOURCE),
                    Jsonb({"x": 1}),
                    Jsonb(["a", "b"]),
                    row["state"],
                    Jsonb(row["output"]),
                    Jsonb(row["error"]),
                    row["created_at"],
                    row["ended_at"],
                    row["last_sequence"],
                    Jsonb(row["steps"]),
                ),
            )
        for event in RUN:
            db.execute(
                "INSERT INTO events VALUES ('e1', %s, %s)",
                (event.sequence, Jsonb(v1_payload(event.sequence))),
            )
    store = await PostgresStore(v1_postgres, "replica-new").open()
    try:
        check_upgraded(await store.get_execution("e1"), await store.get_execution("e2"))
    finally:
        await store.aclose()
    with psycopg.connect(v1_postgres) as db:
        assert db.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
            (version,) for version in range(1, SCHEMA_VERSION + 1)
        ]
        columns = {
            row[0]
            for row in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'executions'"
            )
        }
        assert "progress" in columns and not columns & {"output", "error", "steps"}
