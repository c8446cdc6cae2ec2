"""The listing queries of the SQL stores, built once for either dialect.

Each reads one page: the rows after the page token's key, in the order an index keeps, and one
more to tell whether a next page exists. Never every row, and only the columns a listing shows.
"""

from __future__ import annotations

from typing import Any

from maestro_server.model.execution import ExecutionState
from maestro_server.store import paging, rows, rules
from maestro_server.store.dialect import Dialect

UNFINISHED = "state IN ({})".format(
    ", ".join(f"'{s.value}'" for s in ExecutionState if not s.terminal)
)
"""Executions not yet ended (by the state column's index)."""
Query = tuple[str, dict[str, Any]]


def where(conditions: list[str]) -> str:
    """A WHERE clause of every condition (none when there are none)."""
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def executions_page(
    d: Dialect,
    workflow_name: str,
    states: frozenset[ExecutionState],
    size: int,
    token: str,
    *,
    parent_execution_id: str = "",
) -> Query:
    """One page of executions, newest first (see `rows.listed_execution_from_row`)."""
    after = paging.execution_after(token)
    conditions: list[str] = []
    args: dict[str, Any] = {"size": size + 1}
    if workflow_name:
        conditions.append(f"workflow_name = {d.param('name')}")
        args["name"] = workflow_name
    if parent_execution_id:  # read from executions_by_parent, in order
        conditions.append(f"parent_execution_id = {d.param('parent')}")
        args["parent"] = parent_execution_id
    if states:
        names = [f"state{n}" for n in range(len(states))]
        conditions.append(f"state IN ({', '.join(d.param(n) for n in names)})")
        args.update(zip(names, sorted(s.value for s in states), strict=True))
    if after is not None:
        time, execution_id = d.param("after_time"), d.param("after_id")
        conditions.append(f"(created_at, execution_id) < ({time}, {execution_id})")
        args.update(after_time=d.encode_time(after[0]), after_id=after[1])
    sql = (
        f"SELECT {rows.listed_columns(d)} FROM executions{where(conditions)} "
        f"ORDER BY created_at DESC, execution_id DESC LIMIT {d.param('size')}"
    )
    return sql, args


def delete_finished_before(d: Dialect) -> str:
    """Remove executions that ended before `cutoff`, but children whose parent is still kept.

    Whatever the parent's state, it may still compensate its children: one running, one a
    COMPLETED child whose own parent may compensate it (and it then its children), one left
    COMPENSATION_FAILED that an operator resumes. A child goes once its parent has gone: run
    the statement again until it removes nothing (each run removes one more level).
    """
    return (
        f"DELETE FROM executions WHERE ended_at IS NOT NULL AND ended_at < {d.param('cutoff')} "
        "AND (parent_execution_id IS NULL OR NOT EXISTS (SELECT 1 FROM executions AS parent "
        "WHERE parent.execution_id = executions.parent_execution_id))"
    )


def listed_one(d: Dialect) -> str:
    """One execution, as listed (by its `id`)."""
    return f"SELECT {rows.listed_columns(d)} FROM executions WHERE execution_id = {d.param('id')}"


def unfinished(d: Dialect) -> str:
    """The executions not yet ended, oldest first, as listed."""
    return (
        f"SELECT {rows.listed_columns(d)} FROM executions WHERE {UNFINISHED} "
        "ORDER BY created_at, execution_id"
    )


def workflows_page(d: Dialect, name: str, size: int, token: str) -> Query:
    """One page of definitions by name, newest first (see `rows.listed_workflow_from_row`)."""
    after = paging.workflow_after(token)
    conditions: list[str] = []
    args: dict[str, Any] = {"size": size + 1}
    if name:
        conditions.append(f"name = {d.param('name')}")
        args["name"] = name
    if after is not None:
        # Mixed directions rule out a row comparison; `name >=` bounds the index scan.
        last_name, time, version = (d.param(n) for n in ("last_name", "time", "version"))
        conditions.append(
            f"name >= {last_name} AND (name > {last_name} OR created_at < {time} "
            f"OR (created_at = {time} AND version > {version}))"
        )
        args.update(last_name=after[0], time=d.encode_time(after[1]), version=after[2])
    sql = (
        f"SELECT {rows.LISTED_WORKFLOW_COLUMNS} FROM workflows{where(conditions)} "
        f"ORDER BY name, created_at DESC, version LIMIT {d.param('size')}"
    )
    return sql, args


CANCELLABLE = "state IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(rules.CANCELLABLE)))
"""Executions a cancel is recorded for (see rules.CANCELLABLE)."""


def request_cancel(d: Dialect) -> str:
    """Record a cancel (`reason`) for a cancellable execution (`id`); the first reason stays."""
    return (
        f"UPDATE executions SET cancel_reason = {d.param('reason')} "
        f"WHERE execution_id = {d.param('id')} AND cancel_reason IS NULL AND {CANCELLABLE}"
    )


def cancel_requests(d: Dialect) -> str:
    """The cancels recorded for some executions: rows of `execution_id`, `cancel_reason`.

    `ids` is a JSON array of them, so that a renewal of any number is one statement, whatever
    the dialect's limit on parameters.
    """
    return (
        "SELECT execution_id, cancel_reason FROM executions "
        f"WHERE execution_id IN (SELECT value FROM json_each({d.param('ids')})) "
        "AND cancel_reason IS NOT NULL"
    )
