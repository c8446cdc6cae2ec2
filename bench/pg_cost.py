"""What a workflow costs PostgreSQL: transactions, rows written, WAL bytes, backend CPU.

Read from the statistics of the bench's own database (`pg_stat_database`), before and after a
phase. The meter reads them from another database (the admin one), so its readings are not
counted in the bench database's. Its only queries there (the WAL sums below) run between phases;
any it ran within a phase would be subtracted (`own_transactions`). The bench sends the database
nothing else: what is counted is what the servers did.

PostgreSQL 15+ keeps these counters in shared memory, and each backend adds its pending counts
when it goes idle, at most once a second; `pg_stat_force_next_flush()` hurries only the
caller's own backend, so it cannot hurry the servers'. After a phase the meter therefore polls
until the counts have not moved for 11 s (or 30 s pass). Before 15 the statistics collector
lags similarly, and the same polling settles it.

Each server also makes a lease round every few seconds, whatever the load: one transaction
(`renew_round`), which writes only when a lease is about to lapse. The meter reads how many the
servers made from their `/metrics` (`maestro_lease_rounds_total`) and counts them apart
(`lease_rounds`), so `transactions` are what the workflows cost, and settling is not held up by
a round every 5 s.

WAL position is cluster-wide: `pg_current_wal_lsn()` moves with every database on the server.
When `pg_walinspect` is available the meter also sums the WAL records of this database's
relations and of its transactions (`wal_bytes_own`), and counts their commit records
(`durable_commits`): unlike `xact_commit`, which counts read-only transactions too (a watcher's
poll of the log is one), these are the commits that wrote something, the durable writes of
issue 13's item 1. Without the extension: only the cluster-wide WAL figure, no commit count.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from processes import cpu_seconds

SETTLE_GAP_S = 1.2  # a backend flushes its counts at most once a second
SETTLE_QUIET_S = 11.0
"""A backend gone idle with counts pending flushes them after 10 s (PostgreSQL's
PGSTAT_IDLE_INTERVAL): counts unchanged for less than that may still grow."""
SETTLE_DEADLINE_S = 30.0

COUNTERS = """
SELECT d.xact_commit + d.xact_rollback, d.xact_rollback,
       d.tup_inserted + d.tup_updated + d.tup_deleted,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, pg_current_wal_lsn()::text,
       (SELECT coalesce(sum(o.xact_commit + o.xact_rollback), 0)::bigint
          FROM pg_stat_database o WHERE o.datname IS DISTINCT FROM d.datname)
  FROM pg_stat_database d WHERE d.datname = %(db)s
"""

OWN_WAL = """
WITH r AS (SELECT xid::text AS xid, record_length, block_ref, resource_manager, record_type
             FROM pg_get_wal_records_info(%(start)s::pg_lsn, %(end)s::pg_lsn)),
     ours AS (SELECT DISTINCT xid FROM r WHERE xid <> '0' AND block_ref LIKE %(rel)s)
SELECT coalesce(sum(record_length), 0)::bigint,
       count(*) FILTER (WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%%')
  FROM r WHERE block_ref LIKE %(rel)s OR xid IN (SELECT xid FROM ours)
"""


@dataclass(frozen=True)
class Reading:
    """The bench database's counters at one moment."""

    transactions: int  # xact_commit + xact_rollback
    rollbacks: int
    rows_written: int  # tup_inserted + tup_updated + tup_deleted
    wal_position: int  # bytes, cluster-wide
    wal_lsn: str
    other_transactions: int  # in every other database: what else moved the WAL
    backend_cpu_s: dict[int, float]  # the bench database's backends, by pid
    own_transactions: int  # the meter's own in the bench database, up to this reading
    lease_rounds: int  # the servers' lease renewal rounds so far, one transaction each

    @property
    def workload_transactions(self) -> int:
        """Transactions but the meter's own and the servers' lease rounds."""
        return self.transactions - self.own_transactions - self.lease_rounds


@dataclass(frozen=True)
class Cost:
    """What `workflows` workflows cost PostgreSQL, per workflow."""

    workflows: int
    transactions: float  # the lease rounds apart: they run every few seconds, whatever the load
    lease_rounds: int  # in the phase (all of it, not per workflow)
    rollbacks: float
    rows_written: float
    wal_bytes_cluster: float
    wal_bytes_own: float | None
    durable_commits: float | None  # commit records of transactions that wrote to this database
    backend_cpu_ms: float
    other_transactions: int  # in other databases during the phase (all of it, not per workflow)
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class PgMeter:
    """Reads the counters of database `db` through a connection to `admin_url`."""

    def __init__(self, admin_url: str, bench_url: str) -> None:
        self.admin_url = admin_url
        self.bench_url = bench_url
        self.db = bench_url.rsplit("/", 1)[1]
        self.own = 0
        self.walinspect = False
        self._admin: psycopg.AsyncConnection[Any] | None = None
        self._oid = 0
        self.version = 0
        self.can_flush = False
        self.metrics: list[str] = []
        """The servers' /metrics addresses: their lease rounds are counted apart."""

    async def open(self) -> None:
        self._admin = await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True)
        row = await (
            await self._admin.execute(
                "SELECT current_setting('server_version_num')::int, oid FROM pg_database "
                "WHERE datname = %s",
                (self.db,),
            )
        ).fetchone()
        assert row is not None, f"no database {self.db}"
        self.version, self._oid = row
        if self.version >= 150000:
            try:
                await self._admin.execute("SELECT pg_stat_force_next_flush()")
                self.can_flush = True
            except psycopg.Error:  # superusers only, by default
                pass
        # The extension goes in the bench database (made for this run, dropped after), before
        # anything is measured there.
        try:
            async with await psycopg.AsyncConnection.connect(self.bench_url, autocommit=True) as db:
                await db.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
                self.walinspect = True
        except psycopg.Error as exc:
            print(f"pg_walinspect not available ({exc}): WAL bytes are cluster-wide only")

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()

    async def read(self) -> Reading:
        assert self._admin is not None
        if self.can_flush:  # the meter's own counts (in the admin database) at once
            await self._admin.execute("SELECT pg_stat_force_next_flush()")
        row = await (await self._admin.execute(COUNTERS, {"db": self.db})).fetchone()
        assert row is not None, f"no statistics for database {self.db}"
        pids = await (
            await self._admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.db,)
            )
        ).fetchall()
        return Reading(
            transactions=int(row[0]),
            rollbacks=int(row[1]),
            rows_written=int(row[2]),
            wal_position=int(row[3]),
            wal_lsn=str(row[4]),
            other_transactions=int(row[5]),
            backend_cpu_s={pid: cpu_seconds(pid) for (pid,) in pids},
            own_transactions=self.own,
            lease_rounds=await self._lease_rounds(),
        )

    async def _lease_rounds(self) -> int:
        """The lease renewal rounds the servers have made (`maestro_lease_rounds_total`)."""
        total = 0.0
        async with httpx.AsyncClient() as client:
            for address in self.metrics:
                for line in (await client.get(address)).text.splitlines():
                    if line.startswith("maestro_lease_rounds_total "):
                        total += float(line.split()[1])
        return int(total)

    async def settled(self) -> Reading:
        """A reading once the servers' backends have added their pending counts.

        Without waiting out the idle flush, one phase's counts were read in the next: one
        replica alone showed 5 rows per workflow and two replicas 23, where each writes 21.
        """
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        last = await self.read()
        changed = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(SETTLE_GAP_S)
            now = await self.read()
            if (now.workload_transactions, now.rows_written) != (
                last.workload_transactions,
                last.rows_written,
            ):
                changed = time.monotonic()
            elif time.monotonic() - changed >= SETTLE_QUIET_S:
                return now
            last = now
        return last

    async def cost(self, before: Reading, after: Reading, workflows: int, seconds: float) -> Cost:
        """What happened between two readings, per workflow."""
        own_wal, commits = await self._own_wal(before.wal_lsn, after.wal_lsn)
        cpu = sum(s - before.backend_cpu_s.get(pid, 0.0) for pid, s in after.backend_cpu_s.items())
        return Cost(
            workflows=workflows,
            transactions=(after.workload_transactions - before.workload_transactions) / workflows,
            lease_rounds=after.lease_rounds - before.lease_rounds,
            rollbacks=(after.rollbacks - before.rollbacks) / workflows,
            rows_written=(after.rows_written - before.rows_written) / workflows,
            wal_bytes_cluster=(after.wal_position - before.wal_position) / workflows,
            wal_bytes_own=None if own_wal is None else own_wal / workflows,
            durable_commits=None if commits is None else commits / workflows,
            backend_cpu_ms=cpu / workflows * 1000,
            other_transactions=after.other_transactions - before.other_transactions,
            seconds=seconds,
        )

    async def _own_wal(self, start: str, end: str) -> tuple[int | None, int | None]:
        """WAL bytes of this database's relations and transactions between two positions, and
        how many of those transactions committed."""
        if not self.walinspect:
            return None, None
        # Two transactions in the bench database (a backend's start-up is one), between phases:
        # the next phase starts with a settled reading, taken after this connection closed (a
        # backend flushes its counts on exit).
        self.own += 2
        async with await psycopg.AsyncConnection.connect(self.bench_url, autocommit=True) as db:
            query = {"start": start, "end": end, "rel": f"%/{self._oid}/%"}
            row = await (await db.execute(OWN_WAL, query)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)
