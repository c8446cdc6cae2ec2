"""Issue 13's targets table: each item judged from one run's figures, NOT RUN when absent."""

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from targets import targets


def _cost(transactions: float, commits: float | None) -> dict[str, Any]:
    return {
        "transactions": transactions,
        "durable_commits": commits,
        "rows_written": 9.0,
        "wal_bytes_own": None,
        "wal_bytes_cluster": 9000.0,
    }


def _results() -> dict[str, Any]:
    p50 = {"direct-aiohttp": 2.0, "direct-httpx": 3.0, "maestro-embedded": 3.0}
    p50 |= {"maestro-serve-sqlite": 4.0, "maestro-serve-postgres": 10.0}
    wf_s = {"direct-aiohttp": 1000.0, "direct-httpx": 500.0, "maestro-embedded": 800.0}
    wf_s |= {"maestro-serve-sqlite": 450.0, "maestro-serve-postgres": 250.0}
    return {
        "latency": {n: {"p50_ms": v} for n, v in p50.items()},
        "throughput": {
            "128": {
                n: {"ratio_to_aiohttp": v / 1000, "ratio_to_httpx": v / 500}
                for n, v in wf_s.items()
            }
        },
        "server_cpu_ms_per_workflow": {
            "maestro-serve-sqlite": {"1": 3.0, "128": 2.0},
            "maestro-serve-postgres": {"1": 5.0, "128": 4.0},
        },
        "postgres_cost": {"1": _cost(7.0, 6.0), "128": _cost(5.0, 5.0)},
        "downstream_effects": {n: {"CreateUser": 3} for n in p50},
        "growth_ms_per_step": {"4": 1.0, "16": 1.0, "64": 1.1},
    }


def test_each_item_is_judged_against_its_limit_in_item_order() -> None:
    rows = {(t.item, t.name): (t.value, t.result) for t in targets(_results())}
    assert rows["2", "serve-sqlite: throughput at c=128 / direct aiohttp"] == (0.45, "PASS")
    assert rows["2", "serve-sqlite: added p50 per step at c=1"] == (0.5, "PASS")
    assert rows["2", "serve-sqlite: server CPU per workflow at c=128"] == (2.0, "PASS")
    assert rows["3", "serve-postgres: throughput at c=128 / direct aiohttp"] == (0.25, "FAIL")
    assert rows["3", "serve-postgres: added p50 per step at c=1"] == (2.0, "FAIL")
    commits = "durable commits per 4-step workflow, PostgreSQL WAL (worse of c=1, c=128)"
    assert rows["1", commits] == (6.0, "PASS")
    transactions = "PostgreSQL transactions per 4-step workflow (worse of c=1, c=128)"
    assert rows["3", transactions] == (7.0, "FAIL")
    assert rows["5", "embedded: added p50 per step at c=1"] == (0.25, "PASS")
    assert rows["check", "equal downstream effects for every system"] == (1.0, "PASS")
    items = [t.item for t in targets(_results())]
    numbered = [int(re.sub(r"\D.*", "", i)) for i in items if i[0].isdigit()]
    assert numbered == sorted(numbered)
    assert items[-2:] == ["check", "earlier"]


def test_scenarios_that_did_not_run_say_so_without_a_figure() -> None:
    rows = targets(_results())
    skipped = {t.item for t in rows if t.result == "NOT RUN"}
    assert skipped == {"4", "6", "7", "8", "16.5"}
    assert all(t.value is None for t in rows if t.result == "NOT RUN")


def test_unequal_effects_fail_the_run() -> None:
    results = _results()
    results["downstream_effects"]["maestro-serve-sqlite"] = {"CreateUser": 2}
    (check,) = [t for t in targets(results) if t.item == "check"]
    assert check.result == "FAIL"


def test_the_startup_and_scale_figures_are_judged_when_present() -> None:
    results = _results() | {
        "startup": {"help_s": 0.1, "validate_s": 0.5, "execute_s": 0.3},
        "scale": {"executions": 10_000, "peak_rss_mib": 200.0, "execution_max_s": 2.5},
    }
    judged = {t.name: t.result for t in targets(results) if t.item in {"7", "8"}}
    assert list(judged.values()) == ["PASS", "FAIL", "PASS", "PASS", "FAIL", "INFO"]


def _waiting(**changes: float) -> dict[str, float]:
    figures = {
        "executions": 10_000,
        "rss_waiting_mib": 300.0,
        "rss_after_restart_mib": 320.0,
        "idle_cpu_ms_per_s_waiting": 1.0,
        "idle_cpu_ms_per_s_after_restart": 2.0,
        "completed_with_their_payload": 10_000,
        "threads_before": 10,
        "threads_waiting": 10,
        "seconds_to_resume_after_kill": 4.0,
        "signals_per_s": 900.0,
    }
    return figures | changes


def test_issue_16s_waiting_figures_are_judged_after_issue_13s() -> None:
    """RSS and idle CPU take the worse of before the kill and after the restart."""
    rows = targets(_results() | {"scale_signals": _waiting()})
    judged = [(t.value, t.result) for t in rows if t.item == "16.5"]
    assert judged[:4] == [(320.0, "PASS"), (2.0, "PASS"), (10_000.0, "PASS"), (1.0, "PASS")]
    assert [t.item for t in rows].index("16.5") > [t.item for t in rows].index("8")
    failing = _waiting(idle_cpu_ms_per_s_after_restart=50.0, completed_with_their_payload=9_999)
    failing |= {"threads_waiting": 11}
    results = [
        t.result for t in targets(_results() | {"scale_signals": failing}) if t.item == "16.5"
    ]
    assert results[:4] == ["PASS", "FAIL", "FAIL", "FAIL"]


def test_an_outcome_only_stream_passes_only_without_events_it_did_not_ask_for() -> None:
    results = _results()
    cpu = results["server_cpu_ms_per_workflow"]
    cpu["maestro-serve-sqlite-outcome-only"] = {"1": 2.0, "128": 1.5}
    results["outcome_only_streams"] = {
        "maestro-serve-sqlite-outcome-only": {"streams": 600, "unasked_events": 0},
        "maestro-serve-postgres-outcome-only": {"streams": 600, "unasked_events": 2},
    }
    rows = {(t.item, t.name): (t.value, t.result) for t in targets(results)}
    unasked = "events streamed that were not asked for (600 streams)"
    assert rows["6", f"serve-sqlite-outcome-only: {unasked}"] == (0, "PASS")
    assert rows["6", f"serve-postgres-outcome-only: {unasked}"] == (2, "FAIL")
    ratio = "serve-sqlite-outcome-only: server CPU per workflow at c=128 / streaming every event"
    assert rows["6", ratio] == (0.75, "INFO")
