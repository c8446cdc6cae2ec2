"""Prometheus metrics of a Maestro process, served on `--metrics-port` at `/metrics`.

Counters and histograms are updated as things happen; gauges (executions in flight, breaker
states, stream subscribers) are read when Prometheus scrapes, from the parts that know them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_BREAKER_VALUES = {"closed": 0, "open": 1, "half_open": 2}


class Metrics:
    """The metrics of one process (its own registry, so tests can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.executions_started = Counter(
            "maestro_executions_started",
            "Executions started.",
            ["workflow"],
            registry=self.registry,
        )
        self.executions_finished = Counter(
            "maestro_executions_finished",
            "Executions that reached a terminal state.",
            ["workflow", "state"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "maestro_step_attempt_seconds",
            "Duration of step attempts.",
            ["service", "method", "outcome"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.retries = Counter(
            "maestro_step_retries",
            "Attempts that failed and were retried.",
            ["service", "code"],
            registry=self.registry,
        )
        self.lease_rounds = Counter(
            "maestro_lease_rounds",
            "Lease renewal rounds: on PostgreSQL one transaction each, whatever the load.",
            registry=self.registry,
        )
        self.compensations = Counter(
            "maestro_compensations",
            "Compensations that ended, by outcome.",
            ["service", "outcome"],
            registry=self.registry,
        )

    def watch(
        self,
        gauges: Callable[[], Mapping[str, float]],
        breakers: Callable[[], Iterable[tuple[str, str]]],
    ) -> None:
        """Read the gauges (name → value) and breaker states (service, state) at each scrape."""
        self.registry.register(_Gauges(gauges, breakers))

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve `/metrics` over HTTP on its own thread; returns the port."""
        server, _ = start_http_server(port, host, registry=self.registry)
        return int(server.server_address[1])


class _Gauges(Collector):
    def __init__(
        self,
        gauges: Callable[[], Mapping[str, float]],
        breakers: Callable[[], Iterable[tuple[str, str]]],
    ) -> None:
        self._gauges = gauges
        self._breakers = breakers

    def collect(self) -> Iterable[Metric]:
        for name, value in self._gauges().items():
            yield GaugeMetricFamily(
                f"maestro_{name}", name.replace("_", " ").capitalize() + ".", value=value
            )
        family = GaugeMetricFamily(
            "maestro_circuit_breaker_state",
            "Breaker state per service: 0 closed, 1 open, 2 half-open.",
            labels=["service"],
        )
        for service, state in self._breakers():
            family.add_metric([service], _BREAKER_VALUES[state])
        yield family
