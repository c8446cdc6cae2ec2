"""Issue 13's targets (and issue 16's item 5, "16.5"), judged from one run's results: each a
figure, its limit, PASS or FAIL.

A target whose scenario did not run in this run says NOT RUN (never a figure from another run);
a figure without a limit of its own says INFO.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from systems import OUTCOME_ONLY, STEPS

PASS, FAIL, INFO, NOT_RUN = "PASS", "FAIL", "INFO", "NOT RUN"
TRANSACTIONS_LIMIT = STEPS + 2  # one durable commit per step, one to start, one to finish


@dataclass(frozen=True)
class Target:
    """One row of the targets table."""

    item: str  # the numbered item, or "check"
    name: str
    value: float | None
    unit: str
    limit: str
    result: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def at_most(item: str, name: str, value: float, limit: float, unit: str = "") -> Target:
    return Target(item, name, value, unit, f"≤ {limit:g}", PASS if value <= limit else FAIL)


def at_least(item: str, name: str, value: float, limit: float, unit: str = "") -> Target:
    return Target(item, name, value, unit, f"≥ {limit:g}", PASS if value >= limit else FAIL)


def below(item: str, name: str, value: float, limit: float, unit: str = "") -> Target:
    return Target(item, name, value, unit, f"< {limit:g}", PASS if value < limit else FAIL)


def info(item: str, name: str, value: float, unit: str = "") -> Target:
    return Target(item, name, value, unit, "", INFO)


def not_run(item: str, name: str, why: str) -> Target:
    return Target(item, name, None, "", why, NOT_RUN)


def added_ms_per_step(latency: dict[str, dict[str, float]], name: str) -> float:
    """(p50 of the system - p50 of direct aiohttp, both at c=1) / steps."""
    return (latency[name]["p50_ms"] - latency["direct-aiohttp"]["p50_ms"]) / STEPS


def served(
    results: dict[str, Any], name: str, item: str, share: float, added: float
) -> list[Target]:
    """Items 2 and 3: a `maestro serve` system against direct aiohttp."""
    label = name.removeprefix("maestro-")
    if name not in results["latency"]:
        return [not_run(item, f"{label}: every target", "its store was not reachable")]
    c128 = results["throughput"]["128"][name]
    rows = [
        at_least(
            item, f"{label}: throughput at c=128 / direct aiohttp", c128["ratio_to_aiohttp"], share
        ),
        at_most(
            item,
            f"{label}: added p50 per step at c=1",
            added_ms_per_step(results["latency"], name),
            added,
            "ms",
        ),
    ]
    httpx = f"{label}: throughput at c=128 / direct httpx"
    if name.endswith("sqlite"):  # an earlier issue's target, kept
        rows.append(at_least(f"{item} (earlier)", httpx, c128["ratio_to_httpx"], 0.60))
    else:
        rows.append(info(item, httpx, c128["ratio_to_httpx"]))
    cpu = results["server_cpu_ms_per_workflow"][name]
    if name.endswith("sqlite"):
        rows.append(
            at_most(item, f"{label}: server CPU per workflow at c=128", cpu["128"], 2.5, "ms")
        )
    else:
        rows.append(info(item, f"{label}: server CPU per workflow at c=128", cpu["128"], "ms"))
    rows.append(info(item, f"{label}: server CPU per workflow at c=1", cpu["1"], "ms"))
    return rows


def outcome_only(results: dict[str, Any]) -> list[Target]:
    """Item 6: a client asking for the outcome alone gets only that, and what it saves."""
    streams = results.get("outcome_only_streams") or {}
    if not streams:
        return [not_run("6", "event stream: only the asked-for events", "no served system ran")]
    rows = []
    for name, counts in streams.items():
        label = name.removeprefix("maestro-")
        rows.append(
            Target(
                "6",
                f"{label}: events streamed that were not asked for ({counts['streams']} streams)",
                counts["unasked_events"],
                "",
                "= 0",
                PASS if counts["streams"] and not counts["unasked_events"] else FAIL,
            )
        )
        every = name.removesuffix(OUTCOME_ONLY)
        cpu = results["server_cpu_ms_per_workflow"]
        if every in cpu and name in cpu:
            rows.append(
                info(
                    "6",
                    f"{label}: server CPU per workflow at c=128 / streaming every event",
                    cpu[name]["128"] / cpu[every]["128"],
                )
            )
    return rows


def postgres(results: dict[str, Any]) -> list[Target]:
    """Items 1 and 3 on PostgreSQL: transactions per workflow, the worse of c=1 and c=128."""
    cost = results.get("postgres_cost")
    if not cost:
        return [not_run("1, 3", "transactions per workflow", "PostgreSQL was not reachable")]
    worst = max(cost["1"]["transactions"], cost["128"]["transactions"])
    rows = [
        at_most(
            "3",
            f"PostgreSQL transactions per {STEPS}-step workflow (worse of c=1, c=128)",
            worst,
            TRANSACTIONS_LIMIT,
        )
    ]
    if cost["1"]["durable_commits"] is not None:
        commits = max(cost["1"]["durable_commits"], cost["128"]["durable_commits"])
        name = f"durable commits per {STEPS}-step workflow, PostgreSQL WAL (worse of c=1, c=128)"
        rows.insert(0, at_most("1", name, commits, TRANSACTIONS_LIMIT))
    else:
        rows.insert(0, not_run("1", "durable commits per workflow", "no pg_walinspect"))
    for c in ("1", "128"):
        rows.append(
            info("3", f"PostgreSQL rows written per workflow at c={c}", cost[c]["rows_written"])
        )
        wal = cost[c]["wal_bytes_own"]
        rows.append(
            info(
                "3",
                f"PostgreSQL WAL bytes per workflow at c={c}",
                wal if wal is not None else cost[c]["wal_bytes_cluster"],
                "B",
            )
        )
    return rows


def scale_out(results: dict[str, Any]) -> list[Target]:
    """Item 4: two replicas on one database."""
    out = results.get("scale_out")
    if not out:
        return [
            not_run(
                "4",
                "two replicas on one PostgreSQL",
                "PostgreSQL was not reachable, or --no-scale-out",
            )
        ]
    two = out["two_replicas"]
    return [
        Target(
            "4",
            "two replicas: every execution's effects exactly once, no call repeated",
            float(two["exactly_once"]),
            "",
            "= 1",
            PASS if two["exactly_once"] and out["one_replica"]["exactly_once"] else FAIL,
        ),
        at_most(
            "4",
            "two replicas: transactions per workflow / one replica's",
            out["transactions_two_over_one"],
            1.1,
        ),
        info("4", "two replicas: combined throughput at c=128", two["workflows_per_s"], "wf/s"),
        info(
            "4", "two replicas: combined throughput / one replica's", out["throughput_two_over_one"]
        ),
        info(
            "4",
            "replicas one primary can serve (estimate; see scale_out.estimate)",
            out["estimate"]["replicas_per_primary"],
        ),
    ]


def startup(figures: dict[str, Any] | None) -> list[Target]:
    """Item 7, CLI start-up: the hook for bench/startup.py (its own change). run.py puts its
    figures, wall seconds, under results["startup"] as {"help_s", "validate_s", "execute_s"}."""
    names = (
        ("help_s", "`maestro --help` wall time", 0.15),
        ("validate_s", "`maestro validate` of the onboarding workflow, wall time", 0.30),
        ("execute_s", "`maestro execute` of the onboarding workflow, wall time", 0.4),
    )
    if figures is None:
        return [not_run("7", name, "bench/startup.py is not plugged in") for _, name, _ in names]
    return [at_most("7", name, figures[key], limit, "s") for key, name, limit in names]


def scale(figures: dict[str, Any] | None) -> list[Target]:
    """Item 8: many executions in flight, each waiting 2 s."""
    if figures is None:
        return [not_run("8", "10,000 executions waiting 2 s each", "opt-in: make bench-scale")]
    count = f"{figures['executions']:,} executions"
    return [
        below("8", f"{count}: peak RSS of the server", figures["peak_rss_mib"], 1024, "MiB"),
        at_most(
            "8",
            f"{count}: slowest execution, from its start request to its end",
            figures["execution_max_s"],
            2.4,
            "s",
        ),
        info(
            "8",
            f"{count}: slowest execution, from its creation in the server to its end",
            figures.get("created_to_end_max_s", figures["execution_max_s"]),
            "s",
        ),
    ]


IDLE_CPU_LIMIT_MS_PER_S = 10.0
"""A waiting execution burns no CPU: the whole idle server may use 1% of a core (its lease
upkeep, gRPC's own timers), however many executions wait."""


def waiting(figures: dict[str, Any] | None) -> list[Target]:
    """Issue 16, item 5: executions waiting for a signal, a SIGKILL and a restart between."""
    if figures is None:
        return [
            not_run("16.5", "10,000 executions waiting for a signal", "opt-in: make bench-scale")
        ]
    count = f"{figures['executions']:,} waiting"
    rss = max(figures["rss_waiting_mib"], figures["rss_after_restart_mib"])
    every = figures["completed_with_their_payload"]
    return [
        below(
            "16.5",
            f"{count}: server RSS (worse of before the kill, after the restart)",
            rss,
            1024,
            "MiB",
        ),
        at_most(
            "16.5",
            f"{count}: server CPU while they wait (worse of before the kill, after the restart)",
            max(figures["idle_cpu_ms_per_s_waiting"], figures["idle_cpu_ms_per_s_after_restart"]),
            IDLE_CPU_LIMIT_MS_PER_S,
            "ms/s",
        ),
        Target(
            "16.5",
            f"{count}: resumed after SIGKILL + restart, each completed with its signal's payload",
            float(every),
            "",
            f"= {figures['executions']:,}",
            PASS if every == figures["executions"] else FAIL,
        ),
        Target(
            "16.5",
            f"{count}: server threads while they wait / with one started",
            figures["threads_waiting"] / figures["threads_before"],
            "",
            "= 1",
            PASS if figures["threads_waiting"] == figures["threads_before"] else FAIL,
        ),
        info(
            "16.5",
            f"{count}: seconds from the restart until all are resumed",
            figures["seconds_to_resume_after_kill"],
            "s",
        ),
        info("16.5", f"{count}: signals per second through the SDK", figures["signals_per_s"]),
    ]


def _item_order(target: Target) -> tuple[int, str]:
    """By the item's number (16.5 after 8), then checks and earlier targets last."""
    number = re.match(r"\d+", target.item)
    return (int(number.group()) if number else 99, target.item)


def targets(results: dict[str, Any]) -> list[Target]:
    """Every target of issue 13 in item order, then the checks every run must pass."""
    rows = postgres(results) if "latency" in results else []
    if "latency" in results:
        rows = [
            *served(results, "maestro-serve-sqlite", "2", 0.40, 0.6),
            *served(results, "maestro-serve-postgres", "3", 0.30, 1.0),
            *rows,
            *scale_out(results),
            at_most(
                "5",
                "embedded: added p50 per step at c=1",
                added_ms_per_step(results["latency"], "maestro-embedded"),
                0.3,
                "ms",
            ),
            *outcome_only(results),
        ]
    rows += startup(results.get("startup"))
    rows += scale(results.get("scale"))
    rows += waiting(results.get("scale_signals"))
    if "downstream_effects" in results:
        effects = results["downstream_effects"]
        equal = all(e == next(iter(effects.values())) for e in effects.values())
        rows.append(
            Target(
                "check",
                "equal downstream effects for every system",
                float(equal),
                "",
                "= 1",
                PASS if equal else FAIL,
            )
        )
        flat = (
            max(results["growth_ms_per_step"]["16"], results["growth_ms_per_step"]["64"])
            / results["growth_ms_per_step"]["4"]
        )
        rows.append(
            at_most("earlier", "embedded: time per step at 16 and 64 steps / at 4", flat, 1.2)
        )
    return sorted(rows, key=_item_order)
