"""The circuit breaker's transitions, on a fake clock, at the exact call where each happens."""

from datetime import timedelta

import pytest

from maestro_server.model.workflow import CircuitBreakerPolicy
from maestro_server.resilience.breaker import (
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from tests.engine.fakes import FakeClock, state_of

POLICY = CircuitBreakerPolicy(
    failure_rate_threshold=0.5,
    window_size=10,
    minimum_calls=5,
    open_duration=timedelta(seconds=30),
    half_open_calls=2,
)


def call(breaker: CircuitBreaker, *, failure: bool) -> None:
    breaker.acquire()
    breaker.record(failure=failure)


def test_stays_closed_below_the_minimum_number_of_calls() -> None:
    """Four failures out of four do not open a breaker that needs five calls."""
    breaker = CircuitBreaker("s", POLICY, FakeClock())
    for _ in range(4):
        call(breaker, failure=True)
    assert breaker.state is BreakerState.CLOSED


def test_opens_on_the_call_that_reaches_the_threshold() -> None:
    """Two successes then three failures: the fifth call opens it (3/5 >= 50%)."""
    breaker = CircuitBreaker("s", POLICY, FakeClock())
    for failure in (False, False, True, True):
        call(breaker, failure=failure)
        assert breaker.state is BreakerState.CLOSED
    call(breaker, failure=True)
    assert breaker.state is BreakerState.OPEN


def test_open_refuses_every_call_until_its_time_is_up() -> None:
    """An open breaker lets nothing through and says how long to wait."""
    clock = FakeClock()
    breaker = CircuitBreaker("svc", POLICY, clock)
    for _ in range(5):
        call(breaker, failure=True)
    clock.now += 10
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_in == pytest.approx(20)
    assert "service 'svc' is open" in str(caught.value)
    clock.now += 20
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_admits_exactly_the_trial_calls_and_closes_on_their_success() -> None:
    """Half-open: two trials in flight, a third is refused; two successes close it."""
    clock = FakeClock()
    breaker = CircuitBreaker("s", POLICY, clock)
    for _ in range(5):
        call(breaker, failure=True)
    clock.now += 30
    breaker.acquire()
    breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    breaker.record(failure=False)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(failure=False)
    assert state_of(breaker) is BreakerState.CLOSED
    for _ in range(4):
        call(breaker, failure=True)
    assert state_of(breaker) is BreakerState.CLOSED, "the window starts afresh after closing"


def test_a_failed_trial_reopens() -> None:
    """With two trials and a rate of one half, one trial failure is the rate: the breaker goes
    back to open for a full period."""
    clock = FakeClock()
    breaker = CircuitBreaker("s", POLICY, clock)
    for _ in range(5):
        call(breaker, failure=True)
    clock.now += 30
    call(breaker, failure=True)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_in == pytest.approx(30)


def test_trials_are_judged_by_the_failure_rate() -> None:
    """Three trials at a rate of one half: one failure does not re-open, two do; two successes
    close it."""
    policy = CircuitBreakerPolicy(
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=5,
        open_duration=timedelta(seconds=30),
        half_open_calls=3,
    )
    clock = FakeClock()
    for outcomes, after in (
        ((True, False, False), BreakerState.CLOSED),
        ((False, True, True), BreakerState.OPEN),
    ):
        breaker = CircuitBreaker("s", policy, clock)
        for _ in range(5):
            call(breaker, failure=True)
        clock.now += 30
        for failure in outcomes:
            assert state_of(breaker) is BreakerState.HALF_OPEN
            call(breaker, failure=failure)
        assert state_of(breaker) is after


def test_released_trial_frees_its_slot() -> None:
    """A trial call cancelled without an outcome does not use up a trial slot."""
    clock = FakeClock()
    breaker = CircuitBreaker("s", POLICY, clock)
    for _ in range(5):
        call(breaker, failure=True)
    clock.now += 30
    breaker.acquire()
    breaker.acquire()
    breaker.release()
    breaker.acquire()  # the freed slot


def test_disabled_breaker_never_opens() -> None:
    """enabled: false lets every call through."""
    breaker = CircuitBreaker("s", CircuitBreakerPolicy(enabled=False), FakeClock())
    for _ in range(100):
        call(breaker, failure=True)
    breaker.acquire()


def test_registry_shares_one_breaker_per_service_and_endpoint() -> None:
    """Executions share a service's breaker; another endpoint has its own."""
    registry = BreakerRegistry(FakeClock())
    one = registry.get("auth", "a:1", POLICY)
    assert registry.get("auth", "a:1", POLICY) is one
    assert registry.get("auth", "b:1", POLICY) is not one


def test_registry_gives_each_policy_of_a_service_its_own_breaker() -> None:
    """Two workflows may name one service with different policies: each runs under its own."""
    registry = BreakerRegistry(FakeClock())
    patient = CircuitBreakerPolicy(window_size=10, minimum_calls=10)
    quick = registry.get("auth", "a:1", POLICY)
    slow = registry.get("auth", "a:1", patient)
    assert slow is not quick
    assert registry.get("auth", "a:1", CircuitBreakerPolicy(window_size=10, minimum_calls=10)) is (
        slow
    ), "an equal policy is the same breaker"
    for _ in range(5):
        call(quick, failure=True)
        call(slow, failure=True)
    assert quick.state is BreakerState.OPEN, "five calls are enough for POLICY"
    assert slow.state is BreakerState.CLOSED, "the patient policy needs ten"


def test_registry_reports_the_most_open_state_per_service() -> None:
    """Metrics get one state per service name: the most open of its breakers."""
    registry = BreakerRegistry(FakeClock())
    open_one = registry.get("auth", "a:1", POLICY)
    registry.get("auth", "a:1", CircuitBreakerPolicy())
    registry.get("crm", "c:1", POLICY)
    for _ in range(5):
        call(open_one, failure=True)
    assert sorted(registry.states()) == [("auth", "open"), ("crm", "closed")]
