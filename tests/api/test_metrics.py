"""Prometheus metrics move by the right amounts after real executions."""

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from maestro_client import EventType, MaestroClient
from tests.api.conftest import INPUT, maestro_serve, onboarding_yaml


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_after_a_completed_and_a_compensated_run(
    service_processes: dict[str, str],
) -> None:
    """Started, finished by state, attempts by service and method, compensations, gauges."""
    with maestro_serve("--metrics-port", "0") as server:
        port = int(str(server.log[-1]["metrics_port"]))
        async with MaestroClient(server.address) as client:
            ok = [e async for e in client.execute(onboarding_yaml(service_processes), INPUT)]
            failing = onboarding_yaml(service_processes, email="failing_email_service")
            undone = [e async for e in client.execute(failing, INPUT)]
        assert ok[-1].type == EventType.WORKFLOW_COMPLETED
        assert undone[-1].type == EventType.WORKFLOW_COMPENSATED
        metrics = scrape(port)
    workflow = (("workflow", "user_onboarding"),)
    assert metrics[("maestro_executions_started_total", workflow)] == 2
    assert metrics[("maestro_executions_finished_total", (("state", "COMPLETED"), *workflow))] == 1
    assert (
        metrics[("maestro_executions_finished_total", (("state", "COMPENSATED"), *workflow))] == 1
    )
    assert (
        metrics[
            (
                "maestro_step_attempt_seconds_count",
                (("method", "CreateUser"), ("outcome", "OK"), ("service", "auth_service")),
            )
        ]
        == 2
    )
    assert (
        metrics[
            (
                "maestro_step_attempt_seconds_count",
                (("method", "POST"), ("outcome", "OK"), ("service", "crm_service")),
            )
        ]
        == 2
    )
    assert (
        metrics[
            (
                "maestro_step_attempt_seconds_count",
                (
                    ("method", "SendTemplate"),
                    ("outcome", "INVALID_ARGUMENT"),
                    ("service", "email_service"),
                ),
            )
        ]
        == 1
    )
    for service in ("billing_service", "crm_service"):
        assert (
            metrics[
                ("maestro_compensations_total", (("outcome", "succeeded"), ("service", service)))
            ]
            == 1
        )
    assert metrics[("maestro_executions_in_flight", ())] == 0
    assert metrics[("maestro_event_stream_subscribers", ())] == 0
    assert metrics[("maestro_circuit_breaker_state", (("service", "email_service"),))] == 0


def test_lease_rounds_are_counted() -> None:
    """Each lease round counts once (on PostgreSQL, one transaction): a third of `--lease`."""
    with maestro_serve("--metrics-port", "0", "--lease", "300ms") as server:
        port = int(str(server.log[-1]["metrics_port"]))
        deadline = time.monotonic() + 10
        while (rounds := scrape(port)[("maestro_lease_rounds_total", ())]) < 3:
            assert time.monotonic() < deadline, f"{rounds} lease rounds in 10 s"
            time.sleep(0.05)
