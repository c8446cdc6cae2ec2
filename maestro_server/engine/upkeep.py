"""A server's background rounds over its executions: lease renewal, and retention.

Renewal keeps this process's executions its own, and is where it hears what clients sent other
replicas (cancels, signals) and takes over the executions of a replica that died. Retention
removes executions that ended long ago. Both run forever, and outlive a store that is down for
a while.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import structlog

from maestro_server.engine.launcher import Launcher
from maestro_server.engine.signalling import deliver_new_signals
from maestro_server.store.base import Store

log = structlog.get_logger("maestro.executions")


async def keep_leases(
    store: Store,
    launcher: Launcher,
    interval: float,
    *,
    draining: Callable[[], bool],
    recover: Callable[[], Awaitable[int]],
    counted: Callable[[], object],
) -> None:
    """Renew the leases of the executions `launcher` runs, every `interval` seconds, forever.

    Executions another process took over are given up. Cancels and signals that clients
    sent through other replicas are passed to the runners here; where no other process
    writes to the store, only those of executions resumed since the last renewal are asked
    about (an idle server with 10,000 executions waiting reads nothing). Only when another
    process's lease has lapsed (it died) are its executions claimed and resumed (`recover`,
    unless `draining`): a renewal reads nothing else, and where one process owns the store
    there is nothing to take over. `counted` is called once per round.
    """
    running = launcher.running
    while True:
        await asyncio.sleep(interval)
        unheard, launcher.unheard = launcher.unheard, set()
        try:
            renewing = launcher.stored()
            counted()
            heard = await store.renew_round(list(renewing), unheard, interval)
            # Only the runners asked about: one started during the renewal is not lost, nor
            # one that replaced a runner that ended meanwhile (a completed child reopened by
            # its parent's saga: not owned when the renewal ran), nor a new one whose creation
            # was not yet durable (the store has no lease of it to renew).
            for execution_id, (runner, _) in renewing.items():
                run = running.get(execution_id)
                if run is not None and run[0] is runner and execution_id not in heard.owned:
                    task = run[1]
                    log.warning(
                        "lease lost; another replica runs the execution now",
                        execution_id=execution_id,
                    )
                    task.cancel()  # the runner stops without writing
            _cancel_requested(launcher, heard.cancels)
            # Where this process is the store's only writer, every signal came through it and
            # was handed over, but to a runner being resumed at the time.
            asked = heard.owned if store.shared else heard.owned & unheard
            runners = {i: r for i, (r, _) in running.items() if i in asked}
            await deliver_new_signals(store, runners)
            if not draining() and heard.lapsed:
                await recover()
        except Exception:  # the store may be down for a while: try again next round
            launcher.unheard |= unheard
            log.exception("lease upkeep failed")


def _cancel_requested(launcher: Launcher, requests: Mapping[str, str]) -> None:
    """Tell the runners here that clients (through any replica) asked to cancel them."""
    for execution_id, reason in requests.items():
        run = launcher.running.get(execution_id)
        if run is not None:
            run[0].cancel(reason)


async def keep_retention(
    store: Store, now: Callable[[], datetime], retention: float, interval: float
) -> None:
    """Forever: remove executions that ended more than `retention` seconds ago."""
    while True:
        try:
            cutoff = now() - timedelta(seconds=retention)
            removed = await store.delete_finished_before(cutoff)
            if removed:
                log.info("old executions removed", count=removed, before=cutoff.isoformat())
        except Exception:  # the store may be down for a while: try again next round
            log.exception("retention failed")
        await asyncio.sleep(interval)
