"""The tables of the SQL stores and their migrations, described once for every dialect.

A database is made by applying the migrations in order, so a new file and an upgraded one
have the same tables. `store.dialect` renders each step for SQLite or PostgreSQL: logical
types (TEXT, JSON, TIME, INT) become the dialect's own, and what only one dialect has (the
leases exist only where several processes share the database) is marked with `only`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """A column's logical type."""

    TEXT = "TEXT"
    JSON = "JSON"
    TIME = "TIME"
    """A time with its zone."""
    INT = "INT"


@dataclass(frozen=True, slots=True)
class Column:
    """One column."""

    name: str
    kind: Kind
    nullable: bool = False
    references: str = ""
    """A table whose primary key this column holds; its rows go when that row goes."""
    default: str = ""
    """A SQL literal, for a column added to a table that has rows already."""
    only: str = ""
    """The one dialect that has this column; empty for all."""


@dataclass(frozen=True, slots=True)
class CreateTable:
    """A new table."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CreateIndex:
    """A new index; a column may say `DESC`."""

    name: str
    table: str
    columns: tuple[str, ...]
    only: str = ""
    unique: bool = False


@dataclass(frozen=True, slots=True)
class DropIndex:
    """An index no longer used."""

    name: str
    only: str = ""


@dataclass(frozen=True, slots=True)
class AddColumn:
    """A new column of an existing table."""

    table: str
    column: Column


@dataclass(frozen=True, slots=True)
class DropColumn:
    """A column no longer used."""

    table: str
    name: str


@dataclass(frozen=True, slots=True)
class Backfill:
    """Fill a new column from data already stored; each store knows how to, by `name`."""

    name: str


Step = CreateTable | CreateIndex | DropIndex | AddColumn | DropColumn | Backfill


@dataclass(frozen=True, slots=True)
class Migration:
    """What takes a database from `version` - 1 to `version`, in one transaction."""

    version: int
    steps: tuple[Step, ...]


POSTGRES = "postgres"
SQLITE = "sqlite"
PROGRESS_BACKFILL = "progress"
"""Replay each execution's log into its `progress` (and the columns derived from it)."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            CreateTable(
                "workflows",
                (
                    Column("name", Kind.TEXT),
                    Column("version", Kind.TEXT),
                    Column("description", Kind.TEXT),
                    Column("yaml", Kind.TEXT),
                    Column("files", Kind.JSON),
                    Column("hash", Kind.TEXT),
                    Column("path", Kind.TEXT),
                    Column("created_at", Kind.TIME),
                ),
                ("name", "version"),
            ),
            CreateTable(
                "executions",
                (
                    Column("execution_id", Kind.TEXT),
                    Column("workflow_name", Kind.TEXT),
                    Column("workflow_version", Kind.TEXT),
                    Column("workflow_hash", Kind.TEXT),
                    Column("source", Kind.JSON),
                    Column("input", Kind.JSON),
                    Column("step_ids", Kind.JSON),
                    Column("state", Kind.TEXT),
                    Column("output", Kind.JSON, nullable=True),
                    Column("error", Kind.JSON, nullable=True),
                    Column("created_at", Kind.TIME),
                    Column("ended_at", Kind.TIME, nullable=True),
                    Column("last_sequence", Kind.INT),
                    Column("steps", Kind.JSON),
                    Column("owner", Kind.TEXT, nullable=True, only=POSTGRES),
                    Column("lease_expires_at", Kind.TIME, nullable=True, only=POSTGRES),
                ),
                ("execution_id",),
            ),
            CreateIndex("executions_by_state", "executions", ("state",), only=SQLITE),
            CreateIndex(
                "executions_unfinished",
                "executions",
                ("state", "lease_expires_at"),
                only=POSTGRES,
            ),
            CreateTable(
                "events",
                (
                    Column("execution_id", Kind.TEXT, references="executions"),
                    Column("sequence", Kind.INT),
                    Column("payload", Kind.JSON),
                ),
                ("execution_id", "sequence"),
            ),
            CreateTable(
                "requests",
                (
                    Column("execution_id", Kind.TEXT, references="executions"),
                    Column("key", Kind.TEXT),
                    Column("request", Kind.JSON),
                ),
                ("execution_id", "key"),
            ),
        ),
    ),
    Migration(
        2,
        (
            # The progress model's whole value replaces the summary columns folded by hand.
            AddColumn("executions", Column("progress", Kind.JSON, default="'{}'")),
            Backfill(PROGRESS_BACKFILL),
            DropColumn("executions", "output"),
            DropColumn("executions", "error"),
            DropColumn("executions", "steps"),
            # Keyset paging: each listing's order, read from an index one page at a time.
            CreateIndex(
                "executions_newest", "executions", ("created_at DESC", "execution_id DESC")
            ),
            CreateIndex(
                "executions_by_workflow",
                "executions",
                ("workflow_name", "created_at DESC", "execution_id DESC"),
            ),
            CreateIndex(
                "executions_by_state_newest",
                "executions",
                ("state", "created_at DESC", "execution_id DESC"),
            ),
            DropIndex("executions_by_state", only=SQLITE),  # the one above serves its queries
            CreateIndex("workflows_by_name", "workflows", ("name", "created_at DESC", "version")),
        ),
    ),
    Migration(
        3,
        (
            # A client's cancel, recorded where every replica sees it; the one that runs the
            # execution acts on it (see ExecutionLog.request_cancel).
            AddColumn("executions", Column("cancel_reason", Kind.TEXT, nullable=True)),
        ),
    ),
    Migration(
        4,
        (
            # Signals sent to executions, kept in the order received whether or not a step
            # waits for them yet (see ExecutionLog.add_signal); an id is kept once.
            CreateTable(
                "signals",
                (
                    Column("execution_id", Kind.TEXT, references="executions"),
                    Column("position", Kind.INT),
                    Column("signal_id", Kind.TEXT),
                    Column("name", Kind.TEXT),
                    Column("payload", Kind.JSON),
                    Column("received_at", Kind.TIME),
                ),
                ("execution_id", "position"),
            ),
            CreateIndex("signals_by_id", "signals", ("execution_id", "signal_id"), unique=True),
        ),
    ),
    Migration(
        5,
        (
            # A child execution of a sub-workflow step names its parent; listings filter by it
            # one page at a time (keyset paging, as the other filters).
            AddColumn("executions", Column("parent_execution_id", Kind.TEXT, nullable=True)),
            CreateIndex(
                "executions_by_parent",
                "executions",
                ("parent_execution_id", "created_at DESC", "execution_id DESC"),
            ),
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
