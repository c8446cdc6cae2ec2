"""Leases on PostgreSQL: which replica runs which execution.

An owner renews its leases while it runs; when a replica dies its leases lapse, and another
takes its executions over (`FOR UPDATE SKIP LOCKED`: two replicas never claim the same one).
Claims return ids: the definition is read only for an execution really resumed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import timedelta

from maestro_server.store import rules
from maestro_server.store.base import Claim, LeaseRound
from maestro_server.store.postgres_db import PostgresDatabase
from maestro_server.store.queries import UNFINISHED

_LAPSED = (
    f"SELECT 1 FROM executions WHERE {UNFINISHED} "
    "AND lease_expires_at < now() AND owner IS DISTINCT FROM %(owner)s"
)
"""Another replica's lease on an unfinished execution has lapsed (it died)."""


class PostgresLeases:
    """The Leases role, for `owner` (this replica), each lease lasting `lease`."""

    shared = True
    """Replicas share the database: a signal or cancel sent through one reaches another's
    runner at its renewal."""

    def __init__(self, url: str, owner: str, lease: timedelta) -> None:
        self.url = url
        self.owner = owner
        self.lease = lease
        self._db = PostgresDatabase(url)
        self._leased: dict[str, float] = {}
        """When this replica took or last extended each lease it holds (`time.monotonic()`,
        read before the statement, so never later than the database's `now()`)."""

    def _took(self, execution_ids: Iterable[str], at: float) -> None:
        """Leases taken at `at` (see `_leased`)."""
        self._leased.update((execution_id, at) for execution_id in execution_ids)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._db.aclose()

    async def claim_executions(self) -> list[Claim]:
        """See Leases.claim_executions: those with no live lease, or this replica's own."""
        taken_at = time.monotonic()
        async with self._db.connection() as db, db.transaction():
            found = await (
                await db.execute(
                    f"SELECT execution_id FROM executions WHERE {UNFINISHED} "
                    "AND (owner IS NULL OR owner = %(owner)s OR lease_expires_at < now()) "
                    "ORDER BY created_at, execution_id FOR UPDATE SKIP LOCKED",
                    {"owner": self.owner},
                )
            ).fetchall()
            ids = [row["execution_id"] for row in found]
            if ids:
                await db.execute(
                    "UPDATE executions SET owner = %(owner)s, lease_expires_at = now() + %(lease)s "
                    "WHERE execution_id = ANY(%(ids)b)",
                    {"owner": self.owner, "lease": self.lease, "ids": ids},
                )
        self._took(ids, taken_at)
        return [Claim(execution_id) for execution_id in ids]

    async def renew_round(
        self,
        execution_ids: list[str],
        unheard: set[str],  # noqa: ARG002 - shared: every owned execution is asked about
        interval: float,
    ) -> LeaseRound:
        """See Leases.renew_round: one statement.

        A lease taken or extended less than half an `interval` ago is left as it is (so an
        execution that short never has its lease written again): it still outlasts the round
        after next by half an interval, should the next round fail. Every other lease is
        extended. All are checked for ownership and cancels. A row without an id says another
        replica's lease lapsed.
        """
        now = time.monotonic()
        lease = self.lease.total_seconds()
        horizon = lease - interval / 2  # renew what has less than this left
        due = [i for i in execution_ids if self._leased.get(i, -math.inf) + lease - now < horizon]
        kept = list(set(execution_ids).difference(due))
        found = await self._db.all(
            "WITH renewed AS (UPDATE executions SET lease_expires_at = now() + %(lease)s "
            "WHERE execution_id = ANY(%(due)b) AND owner = %(owner)s "
            "RETURNING execution_id, cancel_reason) "
            "SELECT execution_id, cancel_reason, true AS renewed FROM renewed UNION ALL "
            "SELECT execution_id, cancel_reason, false FROM executions "
            "WHERE execution_id = ANY(%(kept)b) AND owner = %(owner)s UNION ALL "
            f"SELECT NULL, NULL, false WHERE EXISTS ({_LAPSED})",
            {"lease": self.lease, "due": due, "kept": kept, "owner": self.owner},
            # Once every few seconds: not worth preparing on each connection (psycopg prepares
            # in a round trip of its own, one more transaction), so a round is one transaction.
            prepare=False,
        )
        owned = {row["execution_id"] for row in found if row["execution_id"] is not None}
        cancels = {
            row["execution_id"]: row["cancel_reason"]
            for row in found
            if row["execution_id"] is not None and row["cancel_reason"] is not None
        }
        self._leased.update((row["execution_id"], now) for row in found if row["renewed"])
        for execution_id in set(execution_ids) - owned:
            self._leased.pop(execution_id, None)
        for execution_id in [i for i, at in self._leased.items() if now - at > lease]:
            del self._leased[execution_id]  # lapsed here (its runner ended without a release)
        return LeaseRound(owned, cancels, len(owned) != len(found))

    async def claim_execution(self, execution_id: str) -> bool:
        """See Leases.claim_execution.

        A finished execution has no owner (its last append let it go), so of two replicas
        resuming it at once, one claims it: the other's UPDATE, waiting on the row, finds it
        owned under a live lease when it gets the row.
        """
        taken_at = time.monotonic()
        claimed = await self._db.run(
            "UPDATE executions SET owner = %(owner)s, lease_expires_at = now() + %(lease)s "
            "WHERE execution_id = %(id)s AND (owner = %(owner)s OR owner IS NULL "
            "OR lease_expires_at < now())",
            {"owner": self.owner, "lease": self.lease, "id": execution_id},
        )
        if claimed == 1:
            self._took([execution_id], taken_at)
            return True
        if (
            await self._db.one(
                "SELECT 1 FROM executions WHERE execution_id = %(id)s", {"id": execution_id}
            )
            is None
        ):
            raise rules.execution_not_found(execution_id)
        return False

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        """See Leases.renew_leases: extends this replica's leases."""
        if not execution_ids:
            return set()
        taken_at = time.monotonic()
        found = await self._db.all(
            "UPDATE executions SET lease_expires_at = now() + %(lease)s "
            "WHERE execution_id = ANY(%(ids)b) AND owner = %(owner)s RETURNING execution_id",
            {"lease": self.lease, "ids": execution_ids, "owner": self.owner},
        )
        owned = {row["execution_id"] for row in found}
        self._took(owned, taken_at)
        return owned
