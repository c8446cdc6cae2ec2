"""Pure resilience decisions: backoff delays, retry verdicts and circuit breakers on a clock."""
