"""The benchmark's PostgreSQL meter counts what happened in its database, and only that."""

import sys
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from tests.postgres import ADMIN_URL, fresh_database

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from pg_cost import PgMeter


async def test_the_meter_counts_transactions_commits_and_rows_of_its_database() -> None:
    """A connection, 5 writes and 3 reads in the bench database: 9 transactions (a backend's
    start-up is one), 5 durable commits, 5 rows; the meter's own readings (from the admin
    database) and other databases are not counted."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database("maestro_bench_meter"))
        except psycopg.OperationalError as exc:
            pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
        meter = PgMeter(ADMIN_URL, url)
        await meter.open()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE TABLE t (n int)")
        before = await meter.settled()
        with psycopg.connect(url, autocommit=True) as db:
            for n in range(5):
                db.execute("INSERT INTO t VALUES (%s)", (n,))
            for _ in range(3):
                db.execute("SELECT count(*) FROM t")
        with psycopg.connect(ADMIN_URL, autocommit=True) as elsewhere:
            elsewhere.execute("SELECT 1")
        after = await meter.settled()
        cost = await meter.cost(before, after, workflows=1, seconds=1.0)
        await meter.close()
    assert (cost.transactions, cost.rows_written, cost.rollbacks) == (9, 5, 0)
    if meter.walinspect:
        assert cost.durable_commits == 5
        assert cost.wal_bytes_own is not None
        assert 0 < cost.wal_bytes_own <= cost.wal_bytes_cluster
