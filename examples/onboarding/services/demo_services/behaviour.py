"""What every demo service shares: injected faults and idempotent replies."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

_FAULT = re.compile(r"(?P<method>[^=]+)=(?P<code>[A-Z_0-9]+)(?:x(?P<times>\d+))?")
_DELAY = re.compile(r"(?P<method>[^=]+)=(?P<seconds>[0-9.]+)s?")


@dataclass
class Fault:
    """Fail a method with `code`: the next `times` calls, or every call when `times` is None."""

    code: str
    times: int | None = None


@dataclass
class Faults:
    """Faults and delays by method name (`CreateSubscription`, `POST /contacts`)."""

    errors: dict[str, Fault] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
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
            faults.delays[match.group("method")] = float(match.group("seconds"))
        return faults

    def fail(self, method: str, code: str, times: int | None = None) -> None:
        """Make `method` fail with `code`."""
        with self._lock:
            self.errors[method] = Fault(code, times)

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
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.errors[method]
            return fault.code


@dataclass
class Ledger:
    """Every call a service received, and the replies it keeps per idempotency key."""

    calls: list[dict[str, Any]] = field(default_factory=list)
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
