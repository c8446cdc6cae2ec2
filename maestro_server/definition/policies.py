"""Reading the policy blocks of a workflow: `retry`, `circuit_breaker` and `tls`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from yaml.nodes import Node, ScalarNode

from maestro_server.definition.loader import STR_TAG
from maestro_server.definition.reader import Pairs, Reader, did_you_mean
from maestro_server.model.workflow import (
    GRPC_STATUS_NAMES,
    CircuitBreakerPolicy,
    RetryPolicy,
    TlsConfig,
)

RETRY_KEYS = ("max_attempts", "initial_backoff", "max_backoff", "multiplier", "jitter", "retry_on")
BREAKER_KEYS = (
    "enabled",
    "failure_rate_threshold",
    "window_size",
    "minimum_calls",
    "open_duration",
    "half_open_calls",
)
TLS_KEYS = ("ca_file", "server_name", "client_cert_secret", "client_key_secret")


def read_retry(r: Reader, pairs: Pairs, path: str, base: RetryPolicy) -> RetryPolicy:
    """The `retry` key of `pairs` laid key by key over `base`; `base` when absent."""
    if "retry" not in pairs:
        return base
    path = f"{path}.retry"
    node = pairs["retry"][1]
    fields = r.mapping(node, path, "'retry'", RETRY_KEYS)
    if fields is None:
        return base
    changes: dict[str, Any] = {}
    readers: dict[str, Callable[[Node, str, str], Any]] = {
        "max_attempts": lambda n, p, w: r.integer(n, p, w, 1, 100),
        "initial_backoff": r.duration,
        "max_backoff": r.duration,
        "multiplier": lambda n, p, w: r.number(n, p, w, 1.0, 10.0),
        "jitter": lambda n, p, w: r.number(n, p, w, 0.0, 1.0),
    }
    for key, read in readers.items():
        value = r.get(fields, key, read, f"{path}.{key}")
        if value is not None:
            changes[key] = value
    if "retry_on" in fields:
        codes = _retry_on(r, fields["retry_on"][1], f"{path}.retry_on")
        if codes is not None:
            changes["retry_on"] = codes
    policy = replace(base, **changes)
    if policy.max_backoff < policy.initial_backoff:
        where = fields.get("max_backoff", fields.get("initial_backoff", (node, node)))[1]
        r.error(
            where,
            path,
            "out-of-range",
            f"'max_backoff' ({_fmt(policy.max_backoff)}) must not be shorter than "
            f"'initial_backoff' ({_fmt(policy.initial_backoff)})",
        )
    return policy


def _retry_on(r: Reader, node: Node, path: str) -> frozenset[str] | None:
    items = r.sequence(node, path, "'retry_on'")
    if items is None:
        return None
    codes: set[str] = set()
    known = GRPC_STATUS_NAMES | {f"HTTP_{n}" for n in range(400, 600)}
    for index, item in enumerate(items):
        text = r.string(item, f"{path}[{index}]", "each item of 'retry_on'")
        if text is None:
            continue
        code = f"HTTP_{text}" if text.isdigit() else text.upper()
        if code not in known:
            r.error(
                item,
                f"{path}[{index}]",
                "bad-value",
                f"'{text}' is not a gRPC status name (such as UNAVAILABLE) or an HTTP "
                f"status from 400 to 599{did_you_mean(code, GRPC_STATUS_NAMES)}",
            )
            continue
        codes.add(code)
    return frozenset(codes)


def read_breaker(r: Reader, pairs: Pairs, path: str) -> CircuitBreakerPolicy:
    """The `circuit_breaker` key of `pairs` over the defaults."""
    default = CircuitBreakerPolicy()
    if "circuit_breaker" not in pairs:
        return default
    path = f"{path}.circuit_breaker"
    fields = r.mapping(pairs["circuit_breaker"][1], path, "'circuit_breaker'", BREAKER_KEYS)
    if fields is None:
        return default
    readers: dict[str, Callable[[Node, str, str], Any]] = {
        "enabled": r.boolean,
        "failure_rate_threshold": lambda n, p, w: r.number(n, p, w, 0.01, 1.0),
        "window_size": lambda n, p, w: r.integer(n, p, w, 1, 10_000),
        "minimum_calls": lambda n, p, w: r.integer(n, p, w, 1, 10_000),
        "open_duration": r.duration,
        "half_open_calls": lambda n, p, w: r.integer(n, p, w, 1, 1_000),
    }
    changes = {}
    for key, read in readers.items():
        value = r.get(fields, key, read, f"{path}.{key}")
        if value is not None:
            changes[key] = value
    policy = replace(default, **changes)
    if policy.minimum_calls > policy.window_size:
        r.error(
            pairs["circuit_breaker"][1],
            path,
            "out-of-range",
            f"'minimum_calls' ({policy.minimum_calls}) must not exceed 'window_size' "
            f"({policy.window_size})",
        )
    return policy


def read_tls(r: Reader, pairs: Pairs, path: str) -> TlsConfig | None:
    """The `tls` key of `pairs`: true, false, or a mapping of files and server name."""
    if "tls" not in pairs:
        return None
    node = pairs["tls"][1]
    if isinstance(node, ScalarNode) and node.tag != STR_TAG:
        enabled = r.boolean(node, f"{path}.tls", "'tls'")
        return TlsConfig() if enabled else None
    fields = r.mapping(node, f"{path}.tls", "'tls'", TLS_KEYS) or {}
    values = {key: r.get(fields, key, r.string, f"{path}.tls.{key}") for key in TLS_KEYS}
    if (values["client_cert_secret"] is None) != (values["client_key_secret"] is None):
        r.error(
            node,
            f"{path}.tls",
            "conflict",
            "'client_cert_secret' and 'client_key_secret' go together",
        )
    return TlsConfig(**values)


def _fmt(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"
