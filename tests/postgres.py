"""A fresh PostgreSQL database for the test run, on the machine's server at 127.0.0.1:5432."""

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import psycopg
import pytest

ADMIN_URL = os.environ.get("MAESTRO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_database(prefix: str = "maestro_test") -> Iterator[str]:
    """The URL of a database made for the caller and dropped after; psycopg.OperationalError
    when PostgreSQL is not reachable."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a database made for this run and dropped after it."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database())
        except psycopg.OperationalError as exc:
            pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
        yield url


def empty_tables(url: str) -> None:
    """Remove what an earlier test stored (the schema stays)."""
    with psycopg.connect(url, autocommit=True) as db:
        exists = db.execute("SELECT to_regclass('executions') IS NOT NULL").fetchone()
        if exists and exists[0]:
            signals = db.execute("SELECT to_regclass('signals') IS NOT NULL").fetchone()
            more = ", signals" if signals and signals[0] else ""  # schema version 4 and up
            db.execute(f"TRUNCATE workflows, executions, events, requests{more}")
