"""Exponential backoff with jitter, as a pure function of the policy, the attempt and randomness."""

from __future__ import annotations

import random

from maestro_server.model.workflow import RetryPolicy

MAX_PUSHBACK_SECONDS = 60.0
"""The longest a server's Retry-After or grpc-retry-pushback-ms is honoured."""


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based).

    `d = min(max_backoff, initial_backoff * multiplier**(attempt-1))`, then a random share
    `jitter` of it is taken off: full jitter (1.0) gives a uniform delay in [0, d].
    """
    initial = policy.initial_backoff.total_seconds()
    cap = policy.max_backoff.total_seconds()
    exponent = min(attempt - 1, 64)  # past this the cap wins anyway; avoids float overflow
    ceiling = min(cap, initial * policy.multiplier**exponent)
    return ceiling * (1.0 - policy.jitter * rng.random())


def retry_delay(
    policy: RetryPolicy, attempt: int, rng: random.Random, pushback: float | None
) -> float:
    """The backoff delay, lengthened to a server's pushback (capped at MAX_PUSHBACK_SECONDS)."""
    delay = backoff_delay(policy, attempt, rng)
    if pushback is not None and pushback > 0:
        delay = max(delay, min(pushback, MAX_PUSHBACK_SECONDS))
    return delay
