"""Backoff delays: exponential, capped, with full jitter by default, and pushback honoured."""

import random
from datetime import timedelta

import pytest

from maestro_server.model.workflow import RetryPolicy
from maestro_server.resilience.backoff import MAX_PUSHBACK_SECONDS, backoff_delay, retry_delay

POLICY = RetryPolicy(
    initial_backoff=timedelta(milliseconds=100),
    max_backoff=timedelta(seconds=1),
    multiplier=2.0,
    jitter=1.0,
)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (60, 1.0), (10_000, 1.0)],
)
def test_delays_stay_within_the_exponential_ceiling(attempt: int, ceiling: float) -> None:
    """Every delay lies in [0, min(cap, initial * multiplier^(n-1))]."""
    rng = random.Random(attempt)
    delays = [backoff_delay(POLICY, attempt, rng) for _ in range(500)]
    assert all(0 <= d <= ceiling + 1e-12 for d in delays)
    assert max(delays) > ceiling * 0.9, "the range is used up to its ceiling"


def test_full_jitter_is_uniform() -> None:
    """Full jitter spreads delays uniformly (Kolmogorov–Smirnov distance against U(0, d))."""
    rng = random.Random(1)
    samples = sorted(backoff_delay(POLICY, 3, rng) / 0.4 for _ in range(1000))
    distance = max(max(abs((i + 1) / 1000 - x), abs(i / 1000 - x)) for i, x in enumerate(samples))
    assert distance < 0.052  # the 1% critical value for n = 1000 is 1.63/sqrt(n) ≈ 0.0515


def test_no_jitter_is_exact() -> None:
    """jitter: 0 gives the ceiling itself."""
    policy = RetryPolicy(initial_backoff=timedelta(milliseconds=100), jitter=0.0)
    assert backoff_delay(policy, 3, random.Random()) == pytest.approx(0.4)


def test_pushback_lengthens_the_delay_up_to_a_cap() -> None:
    """Retry-After / pushback is honoured, but never beyond MAX_PUSHBACK_SECONDS."""
    rng = random.Random(0)
    assert retry_delay(POLICY, 1, rng, 5.0) == 5.0
    assert retry_delay(POLICY, 1, rng, 10_000.0) == MAX_PUSHBACK_SECONDS
    assert retry_delay(POLICY, 1, rng, -1.0) <= 0.1, "a negative pushback is ignored"
