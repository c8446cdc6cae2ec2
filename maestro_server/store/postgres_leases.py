"""Leases on PostgreSQL: which replica runs which execution.

An owner renews its leases while it runs; when a replica dies its leases lapse, and another
takes its executions over (`FOR UPDATE SKIP LOCKED`: two replicas never claim the same one).
Claims return ids: the definition is read only for an execution really resumed.
"""

from __future__ import annotations

from datetime import timedelta

from maestro_server.store import rules
from maestro_server.store.base import Claim
from maestro_server.store.postgres_db import PostgresDatabase
from maestro_server.store.queries import UNFINISHED


class PostgresLeases:
    """The Leases role, for `owner` (this replica), each lease lasting `lease`."""

    def __init__(self, url: str, owner: str, lease: timedelta) -> None:
        self.url = url
        self.owner = owner
        self.lease = lease
        self._db = PostgresDatabase(url)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._db.aclose()

    async def claim_executions(self) -> list[Claim]:
        """See Leases.claim_executions: those with no live lease, or this replica's own."""
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
        return [Claim(execution_id) for execution_id in ids]

    async def lapsed(self) -> bool:
        """See Leases.lapsed: one probe of the unfinished executions' index."""
        row = await self._db.one(
            f"SELECT EXISTS (SELECT 1 FROM executions WHERE {UNFINISHED} "
            "AND lease_expires_at < now() AND owner IS DISTINCT FROM %(owner)s) AS lapsed",
            {"owner": self.owner},
        )
        return bool(row and row["lapsed"])

    async def claim_execution(self, execution_id: str) -> bool:
        """See Leases.claim_execution.

        A finished execution has no owner (its last append let it go), so of two replicas
        resuming it at once, one claims it: the other's UPDATE, waiting on the row, finds it
        owned under a live lease when it gets the row.
        """
        claimed = await self._db.run(
            "UPDATE executions SET owner = %(owner)s, lease_expires_at = now() + %(lease)s "
            "WHERE execution_id = %(id)s AND (owner = %(owner)s OR owner IS NULL "
            "OR lease_expires_at < now())",
            {"owner": self.owner, "lease": self.lease, "id": execution_id},
        )
        if claimed == 1:
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
        found = await self._db.all(
            "UPDATE executions SET lease_expires_at = now() + %(lease)s "
            "WHERE execution_id = ANY(%(ids)b) AND owner = %(owner)s RETURNING execution_id",
            {"lease": self.lease, "ids": execution_ids, "owner": self.owner},
        )
        return {row["execution_id"] for row in found}
