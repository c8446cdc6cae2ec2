"""SQLite and PostgreSQL: how each writes the schema's steps, its parameters and its values."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from maestro_server.store.schema import (
    POSTGRES,
    SQLITE,
    AddColumn,
    Backfill,
    Column,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropIndex,
    Kind,
    Step,
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """One SQL dialect, and how Python values travel to and from its columns."""

    name: str
    types: Mapping[Kind, str]
    param: Callable[[str], str]
    """The placeholder of a named parameter."""
    field: Callable[[str, str], str]
    """The expression of one key of a JSON column, as JSON."""
    encode_json: Callable[[Any], Any]
    decode_json: Callable[[Any], Any]
    encode_time: Callable[[datetime | None], Any]
    decode_time: Callable[[Any], datetime | None]

    def render(self, step: Step) -> list[str]:
        """The statements of a migration step (none for a backfill: the store runs it)."""
        if isinstance(step, CreateTable):
            columns = [self._column(c) for c in step.columns if self._has(c.only)]
            columns.append(f"PRIMARY KEY ({', '.join(step.primary_key)})")
            return [f"CREATE TABLE {step.name} ({', '.join(columns)})"]
        if isinstance(step, CreateIndex):
            if not self._has(step.only):
                return []
            unique = "UNIQUE " if step.unique else ""
            indexed = ", ".join(step.columns)
            return [f"CREATE {unique}INDEX {step.name} ON {step.table} ({indexed})"]
        if isinstance(step, DropIndex):
            return [f"DROP INDEX {step.name}"] if self._has(step.only) else []
        if isinstance(step, AddColumn):
            if not self._has(step.column.only):
                return []
            return [f"ALTER TABLE {step.table} ADD COLUMN {self._column(step.column)}"]
        if isinstance(step, DropColumn):
            return [f"ALTER TABLE {step.table} DROP COLUMN {step.name}"]
        assert isinstance(step, Backfill)
        return []

    def insert(
        self,
        table: str,
        names: Iterable[str],
        suffix: str = "",
        expressions: Mapping[str, str] | None = None,
    ) -> str:
        """An INSERT of named parameters, one per column, and of other columns' expressions."""
        values = {name: self.param(name) for name in names} | dict(expressions or {})
        return (
            f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())})"
            f"{suffix}"
        )

    def _has(self, only: str) -> bool:
        return not only or only == self.name

    def _column(self, column: Column) -> str:
        sql = f"{column.name} {self.types[column.kind]}"
        if not column.nullable:
            sql += " NOT NULL"
        if column.default:
            sql += f" DEFAULT {column.default}"
        if column.references:
            sql += f" REFERENCES {column.references} ON DELETE CASCADE"
        return sql


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _same(value: Any) -> Any:
    return value


SQLITE_DIALECT = Dialect(
    name=SQLITE,
    # Times are ISO text with their zone: they sort as text (every one is written in UTC).
    types={Kind.TEXT: "TEXT", Kind.JSON: "TEXT", Kind.TIME: "TEXT", Kind.INT: "INTEGER"},
    param=lambda name: f":{name}",
    field=lambda column, key: f"{column} -> '$.{key}'",
    encode_json=json.dumps,
    decode_json=_loads,
    encode_time=_iso,
    decode_time=_from_iso,
)
POSTGRES_DIALECT = Dialect(
    name=POSTGRES,
    types={Kind.TEXT: "TEXT", Kind.JSON: "JSONB", Kind.TIME: "TIMESTAMPTZ", Kind.INT: "INTEGER"},
    param=lambda name: f"%({name})s",
    field=lambda column, key: f"{column} -> '{key}'",
    encode_json=Jsonb,
    decode_json=_same,
    encode_time=_same,
    decode_time=_same,
)
