"""Records as rows of the SQL stores and back, by column name, in either dialect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from maestro_server.model.execution import Event, ExecutionState
from maestro_server.model.progress import Progress, replay
from maestro_server.store.base import ExecutionRecord, ExecutionSource, StoredWorkflow
from maestro_server.store.codec import (
    error_from_json,
    event_from_json,
    event_to_json,
    files_from_json,
    files_to_json,
    progress_from_json,
    progress_to_json,
    stop_from_json,
)
from maestro_server.store.dialect import Dialect

Row = Mapping[str, Any]


def workflow_values(workflow: StoredWorkflow, d: Dialect) -> dict[str, Any]:
    """A definition's row."""
    return {
        "name": workflow.name,
        "version": workflow.version,
        "description": workflow.description,
        "yaml": workflow.yaml,
        "files": d.encode_json(files_to_json(workflow.files)),
        "hash": workflow.hash,
        "path": workflow.path,
        "created_at": d.encode_time(workflow.created_at),
    }


def workflow_from_row(row: Row, d: Dialect) -> StoredWorkflow:
    """A definition from its row."""
    return StoredWorkflow(
        name=row["name"],
        version=row["version"],
        description=row["description"],
        yaml=row["yaml"],
        files=files_from_json(d.decode_json(row["files"])),
        hash=row["hash"],
        path=row["path"],
        created_at=_time(row["created_at"], d),
    )


LISTED_WORKFLOW_COLUMNS = "name, version, description, hash, path, created_at"
"""What `listed_workflow_from_row` reads: what a listing shows, not the YAML and files."""


def listed_workflow_from_row(row: Row, d: Dialect) -> StoredWorkflow:
    """A definition as a listing shows it."""
    return StoredWorkflow(
        name=row["name"],
        version=row["version"],
        description=row["description"],
        yaml="",
        files={},
        hash=row["hash"],
        path=row["path"],
        created_at=_time(row["created_at"], d),
    )


def progress_values(progress: Progress, d: Dialect) -> dict[str, Any]:
    """The columns kept from an execution's progress: all of it, and what queries filter on."""
    return {
        "progress": d.encode_json(progress_to_json(progress)),
        "state": progress.state.value,
        "ended_at": d.encode_time(progress.ended_at),
        "last_sequence": progress.last_sequence,
    }


def progress_update(d: Dialect, guard: str = "") -> str:
    """The UPDATE of an execution's progress columns (`progress_values` and its id)."""
    names = ("progress", "state", "ended_at", "last_sequence")
    sets = ", ".join(f"{name} = {d.param(name)}" for name in names)
    return f"UPDATE executions SET {sets} WHERE execution_id = {d.param('execution_id')}{guard}"


def replayed(execution_id: str, events: Iterable[Row], d: Dialect) -> dict[str, Any]:
    """An execution's progress columns (with its id) from its whole log, for a backfill."""
    progress = replay(event_from_row(execution_id, row, d) for row in events)
    return {"execution_id": execution_id, **progress_values(progress, d)}


def event_values(event: Event, d: Dialect) -> dict[str, Any]:
    """An event's row."""
    return {
        "execution_id": event.execution_id,
        "sequence": event.sequence,
        "payload": d.encode_json(event_to_json(event)),
    }


def event_from_row(execution_id: str, row: Row, d: Dialect) -> Event:
    """An event from its row (`sequence` and `payload`)."""
    return event_from_json(execution_id, row["sequence"], d.decode_json(row["payload"]))


def execution_values(record: ExecutionRecord, d: Dialect) -> dict[str, Any]:
    """A new execution's row."""
    source = record.source or ExecutionSource("", "", {})
    return {
        "execution_id": record.execution_id,
        "workflow_name": record.workflow_name,
        "workflow_version": record.workflow_version,
        "workflow_hash": record.workflow_hash,
        "source": d.encode_json(
            {
                "yaml": source.yaml,
                "path": source.path,
                "files": files_to_json(source.files),
                "endpoints": dict(source.endpoints),
                "versions": dict(source.versions),
            }
        ),
        "parent_execution_id": record.parent_execution_id or None,
        "input": d.encode_json(record.input),
        "step_ids": d.encode_json(list(record.step_ids)),
        "created_at": d.encode_time(record.created_at),
        **progress_values(record.progress, d),
    }


EXECUTION_COLUMNS = (
    "execution_id, workflow_name, workflow_version, workflow_hash, source, input, step_ids, "
    "created_at, progress, cancel_reason, parent_execution_id"
)
"""What `execution_from_row` reads."""


def listed_columns(d: Dialect) -> str:
    """What `listed_execution_from_row` reads: what a listing shows, and no more."""
    return (
        "execution_id, workflow_name, workflow_version, workflow_hash, input, created_at, "
        f"state, ended_at, last_sequence, {d.field('progress', 'output')} AS output, "
        f"{d.field('progress', 'error')} AS error, {d.field('progress', 'stop')} AS stop, "
        "parent_execution_id"
    )


def execution_from_row(row: Row, d: Dialect) -> ExecutionRecord:
    """A whole execution from its row."""
    source = d.decode_json(row["source"])
    return ExecutionRecord(
        execution_id=row["execution_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        workflow_hash=row["workflow_hash"],
        input=d.decode_json(row["input"]),
        created_at=_time(row["created_at"], d),
        step_ids=tuple(d.decode_json(row["step_ids"])),
        source=ExecutionSource(
            source["yaml"],
            source["path"],
            files_from_json(source["files"]),
            source.get("endpoints", {}),
            source.get("versions", {}),
        ),
        progress=progress_from_json(d.decode_json(row["progress"])),
        cancel_reason=row["cancel_reason"],
        parent_execution_id=row["parent_execution_id"] or "",
    )


def listed_execution_from_row(row: Row, d: Dialect) -> ExecutionRecord:
    """An execution as a listing shows it: no definition, no steps."""
    return ExecutionRecord(
        execution_id=row["execution_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        workflow_hash=row["workflow_hash"],
        input=d.decode_json(row["input"]),
        created_at=_time(row["created_at"], d),
        step_ids=(),
        progress=Progress(
            state=ExecutionState(row["state"]),
            last_sequence=row["last_sequence"],
            output=d.decode_json(row["output"]),
            error=error_from_json(d.decode_json(row["error"])),
            stop=stop_from_json(d.decode_json(row["stop"])),
            ended_at=d.decode_time(row["ended_at"]),
        ),
        parent_execution_id=row["parent_execution_id"] or "",
    )


def _time(value: Any, d: Dialect) -> datetime:
    time = d.decode_time(value)
    assert time is not None
    return time
