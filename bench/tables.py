"""The benchmark's results as Markdown tables, printed at the end of a run."""

from __future__ import annotations

from typing import Any


def _num(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def systems(results: dict[str, Any]) -> list[str]:
    lat, comp, thr = results["latency"], results["compensation_latency"], results["throughput"]
    cpu = results["server_cpu_ms_per_workflow"]
    lines = [
        "| system | p50 ms | p99 ms | ×direct | compensation p50 ms | wf/s c=32 | wf/s c=128 "
        "| ×aiohttp c=128 | ×httpx c=128 | CPU s/1000 c=128 | server CPU ms/wf c=1 "
        "| server CPU ms/wf c=128 | downstream CPU s/1000 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in lat:
        t32, t128 = thr["32"][name], thr["128"][name]
        server = cpu.get(name, {})
        lines.append(
            f"| {name} | {lat[name]['p50_ms']:.2f} | {lat[name]['p99_ms']:.2f} "
            f"| {lat[name]['ratio_to_aiohttp']:.2f} | {comp[name]['p50_ms']:.2f} "
            f"| {t32['workflows_per_s']:.0f} | {t128['workflows_per_s']:.0f} "
            f"| {t128['ratio_to_aiohttp']:.2f} | {t128['ratio_to_httpx']:.2f} "
            f"| {t128['cpu_s_per_1000']:.1f} | {_num(server.get('1'))} | {_num(server.get('128'))} "
            f"| {t128['downstream_cpu_s_per_1000']:.1f} |"
        )
    lines += ["", "| steps | embedded ms per step |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in results["growth_ms_per_step"].items()]
    return lines


COST_HEADER = [
    "| PostgreSQL per workflow | transactions | durable commits | rollbacks | rows written "
    "| WAL bytes (this db) | WAL bytes (cluster) | backend CPU ms | other dbs' transactions "
    "| lease rounds (not per workflow) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def _cost_row(label: str, cost: dict[str, Any]) -> str:
    return (
        f"| {label} | {cost['transactions']:.2f} | {_num(cost['durable_commits'])} "
        f"| {cost['rollbacks']:.2f} "
        f"| {cost['rows_written']:.1f} | {_num(cost['wal_bytes_own'], 0)} "
        f"| {cost['wal_bytes_cluster']:,.0f} | {cost['backend_cpu_ms']:.2f} "
        f"| {cost['other_transactions']} | {cost['lease_rounds']} |"
    )


def postgres(results: dict[str, Any]) -> list[str]:
    costs = results.get("postgres_cost")
    if not costs:
        return []
    return [
        "",
        *COST_HEADER,
        *(_cost_row(f"one replica, c={c}", cost) for c, cost in costs.items()),
    ]


def scale_out(results: dict[str, Any]) -> list[str]:
    out = results.get("scale_out")
    if not out:
        return []
    one, two, guess = out["one_replica"], out["two_replicas"], out["estimate"]
    lines = [
        "",
        f"| scale-out, c={out['concurrency']} | wf/s | server CPU ms/wf (sum) | exactly once |",
        "|---|---|---|---|",
    ]
    for label, run in (("one replica (B idle)", one), ("two replicas", two)):
        lines.append(
            f"| {label} | {run['workflows_per_s']:.0f} | {run['server_cpu_ms_per_workflow']:.2f} "
            f"| {'yes' if run['exactly_once'] else 'NO'} |"
        )
    lines += ["", *COST_HEADER]
    lines += [_cost_row("one replica", one["postgres"]), _cost_row("two replicas", two["postgres"])]
    lines += [
        "",
        f"Estimate: a primary with {guess['primary_cores_assumed']} cores spent on the backends' "
        f"work serves {guess['primary_workflows_per_s']:,.0f} wf/s; one replica process on one "
        f"core serves {guess['replica_workflows_per_s_on_one_core']:,.0f} wf/s, so one primary "
        f"serves about {guess['replicas_per_primary']:.1f} replicas (at that load: "
        f"{guess['transactions_per_s_at_primary_limit']:,.0f} transactions/s, "
        f"{guess['wal_mib_per_s_at_primary_limit']:.1f} MiB/s of WAL; WAL writing, checkpoints "
        "and disk not counted).",
    ]
    return lines


def scale(results: dict[str, Any]) -> list[str]:
    figures = results.get("scale")
    if not figures:
        return []
    lines = ["", "| scale | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in figures.items() if isinstance(v, int | float)]
    slowest = figures["slowest"]
    steps = ", ".join(f"{e['event']} +{e['s_after_create']:.2f} s" for e in slowest["events"])
    lines += [
        "",
        f"Slowest ({slowest['execution_id']}, created {slowest['created_s_after_first']:.2f} s "
        f"after the first, {slowest.get('requested_s_before_created', 0):.2f} s after its "
        f"start request): {steps}",
    ]
    return lines


def scale_signals(results: dict[str, Any]) -> list[str]:
    figures = results.get("scale_signals")
    if not figures:
        return []
    lines = ["", "| waiting for signals | value |", "|---|---|"]
    return lines + [f"| {k} | {v:,.2f} |" for k, v in figures.items()]


def targets(results: dict[str, Any]) -> list[str]:
    lines = ["", "| item | target | measured | limit | result |", "|---|---|---|---|---|"]
    for t in results["targets"]:
        value = "—" if t["value"] is None else f"{t['value']:.3f} {t['unit']}".rstrip()
        lines.append(f"| {t['item']} | {t['name']} | {value} | {t['limit']} | {t['result']} |")
    return lines


def table(results: dict[str, Any]) -> str:
    """Every table the results have, the targets last."""
    lines = systems(results) if "latency" in results else []
    lines += postgres(results) + scale_out(results) + scale(results) + scale_signals(results)
    lines += targets(results)
    load = results.get("machine", {}).get("load_average")
    if load:
        lines += ["", f"Load average (1 min) at start and end: {load[0]:.2f}, {load[1]:.2f}."]
    return "\n".join(lines).strip("\n")
