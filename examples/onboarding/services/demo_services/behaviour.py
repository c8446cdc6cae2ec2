"""What every demo service shares: injected faults and idempotent replies."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_FAULT = re.compile(r"(?P<method>[^=]+)=(?P<code>[A-Z_0-9]+)(?:x(?P<times>\d+))?")
_DELAY = re.compile(r"(?P<method>[^=]+)=(?P<seconds>[0-9.]+)s?")
RESET = "RESET"
"""The HTTP fault that resets the connection (after reading the request) instead of answering."""


@dataclass
class Fault:
    """Fail a method with `code`: the next `times` calls, a `rate` of calls, or every call."""

    code: str
    times: int | None = None
    rate: float | None = None


@dataclass
class Delay:
    """Delay a method by `seconds`, on a `rate` of calls (all when None)."""

    seconds: float
    rate: float | None = None


@dataclass
class Faults:
    """Faults and delays by method name (`CreateSubscription`, `POST /contacts`)."""

    errors: dict[str, Fault] = field(default_factory=dict)
    delays: dict[str, Delay] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    injected: dict[str, int] = field(default_factory=dict)
    """How many times each fault struck, by `method=CODE` (delays as `method=DELAY`)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_flags(cls, fails: list[str], delays: list[str]) -> Faults:
        """Parse `--fail METHOD=CODE[xN]` and `--delay METHOD=SECONDS` flags."""
        faults = cls()
        for flag in fails:
            match = _FAULT.fullmatch(flag)
            if match is None:
                raise SystemExit(f"--fail wants METHOD=CODE[xN], not {flag!r}")
            times = match.group("times")
            faults.fail(match.group("method"), match.group("code"), int(times) if times else None)
        for flag in delays:
            match = _DELAY.fullmatch(flag)
            if match is None:
                raise SystemExit(f"--delay wants METHOD=SECONDS, not {flag!r}")
            faults.delays[match.group("method")] = Delay(float(match.group("seconds")))
        return faults

    def fail(self, method: str, code: str, times: int | None = None) -> None:
        """Make `method` fail with `code`."""
        with self._lock:
            self.errors[method] = Fault(code, times)

    def replace(self, spec: dict[str, Any]) -> None:
        """Set every fault from the admin API's JSON (see admin.py); the seed makes rates
        repeatable."""
        with self._lock:
            self.rng = random.Random(spec.get("seed", 0))
            self.errors = {m: Fault(**f) for m, f in spec.get("errors", {}).items()}
            self.delays = {m: Delay(**d) for m, d in spec.get("delays", {}).items()}

    def clear(self) -> None:
        """Remove every fault and delay."""
        with self._lock:
            self.errors.clear()
            self.delays.clear()

    def take(self, method: str) -> str | None:
        """The code this call of `method` must fail with, if any."""
        with self._lock:
            fault = self.errors.get(method)
            if fault is None:
                return None
            if fault.rate is not None and self.rng.random() >= fault.rate:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.errors[method]
            self._count(f"{method}={fault.code}")
            return fault.code

    def delay(self, method: str) -> float:
        """Seconds this call of `method` waits before it acts."""
        with self._lock:
            delay = self.delays.get(method)
            if delay is None or (delay.rate is not None and self.rng.random() >= delay.rate):
                return 0.0
            self._count(f"{method}=DELAY")
            return delay.seconds

    def injected_counts(self) -> dict[str, int]:
        """A copy of `injected`, for the admin API."""
        with self._lock:
            return dict(self.injected)

    def _count(self, fault: str) -> None:
        self.injected[fault] = self.injected.get(fault, 0) + 1


@dataclass
class Ledger:
    """Every call a service received, the effects it had, and the replies kept per key."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, tuple[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, key: str | None, attempt: str | None, payload: Any) -> None:
        """Note a call."""
        with self._lock:
            self.calls.append(
                {"method": method, "key": key, "attempt": attempt, "payload": payload}
            )

    def replay(self, key: str | None, payload: Any) -> Any:
        """The reply kept for `key`; KeyError when it is new. A reused key with another
        request raises ValueError."""
        if not key:
            raise KeyError(key)
        with self._lock:
            request, reply = self.replies[key]
        if request != json.dumps(payload, sort_keys=True):
            raise ValueError(f"idempotency key {key!r} was used for a different request")
        return reply

    def keep(self, key: str | None, payload: Any, reply: Any) -> None:
        """Keep the reply of a first call under its key."""
        if key:
            with self._lock:
                self.replies[key] = (json.dumps(payload, sort_keys=True), reply)

    def acted(self, method: str, key: str | None) -> None:
        """Note that a call had its effect (not a replay, not a fault), and when."""
        with self._lock:
            self.effects.append({"method": method, "key": key, "at": time.time()})

    def summary(self) -> dict[str, Any]:
        """Calls and effects, for the admin API: counts by method, and every effect."""
        with self._lock:
            calls: dict[str, int] = {}
            for call in self.calls:
                calls[call["method"]] = calls.get(call["method"], 0) + 1
            return {"calls": calls, "effects": list(self.effects)}
