"""Steps that call nothing and wait: `wait: {signal: …}` for a signal, `sleep:` for a time."""

from __future__ import annotations

from datetime import datetime

from yaml.nodes import MappingNode, Node

from maestro_server.definition.reader import Pairs, Reader
from maestro_server.definition.validate import Scope
from maestro_server.definition.value_compiler import ValueCompiler
from maestro_server.model.signals import SIGNAL_NAME
from maestro_server.model.workflow import Pause, Sleep, WaitForSignal
from maestro_server.templating.values import Literal

PAUSE_KEYS = ("wait", "sleep")
WAIT_KEYS = ("signal", "timeout")
SLEEP_KEYS = ("until",)
CALL_KEYS = ("service", "method", "input", "compensate", "retry", "timeout")
"""Keys of a step that calls a service, which a pause step has no use for."""


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with its zone (`2026-12-24T18:00:00Z`); ValueError otherwise."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"'{text}' is not an RFC 3339 time with a zone")
    return value


def read_pause(
    r: Reader, values: ValueCompiler, pairs: Pairs, path: str, step_id: str
) -> Pause | None:
    """The pause of a step that has `wait` or `sleep` (None after an error, reported)."""
    for key in CALL_KEYS:
        if key in pairs:
            kind = "wait" if "wait" in pairs else "sleep"
            r.error(
                pairs[key][0],
                f"{path}.{key}",
                "pause-with-call",
                f"a '{kind}' step calls no service and takes no '{key}'",
            )
    if "wait" in pairs and "sleep" in pairs:
        r.error(
            pairs["sleep"][0],
            f"{path}.sleep",
            "pause-with-call",
            "a step either waits for a signal ('wait') or sleeps ('sleep'), not both",
        )
        return None
    if "wait" in pairs:
        return _wait(r, pairs["wait"][1], f"{path}.wait")
    if "output" in pairs:
        r.error(
            pairs["output"][0],
            f"{path}.output",
            "pause-with-call",
            "a 'sleep' step has no output",
        )
    return _sleep(r, values, pairs["sleep"][1], f"{path}.sleep", step_id)


def _wait(r: Reader, node: Node, path: str) -> WaitForSignal | None:
    what = "'wait'"
    wait = r.mapping(node, path, what, WAIT_KEYS)
    if wait is None or not r.require(wait, node, path, what, "signal"):
        return None
    name = r.string(wait["signal"][1], f"{path}.signal", "'signal'")
    if name is not None and not SIGNAL_NAME.fullmatch(name):
        r.error(
            wait["signal"][1],
            f"{path}.signal",
            "bad-name",
            f"signal name '{name}' must start with a letter and hold only letters, digits, "
            "'_', '-' and '.' (at most 128)",
        )
        return None
    timeout = r.get(wait, "timeout", r.duration, f"{path}.timeout")
    return None if name is None else WaitForSignal(name, timeout)


def _sleep(r: Reader, values: ValueCompiler, node: Node, path: str, step_id: str) -> Sleep | None:
    if not isinstance(node, MappingNode):
        duration = r.duration(node, path, "'sleep'")
        return None if duration is None else Sleep(duration=duration)
    what = "'sleep'"
    sleep = r.mapping(node, path, what, SLEEP_KEYS)
    if sleep is None or not r.require(sleep, node, path, what, "until"):
        return None
    until_node = sleep["until"][1]
    until = values.value(until_node, f"{path}.until", step_id, Scope.STEP, "sleep.until")
    if isinstance(until, Literal):
        text = until.value
        try:
            if not isinstance(text, str):
                raise ValueError
            parse_time(text)
        except ValueError:
            r.error(
                until_node,
                f"{path}.until",
                "bad-time",
                f"'until' must be an RFC 3339 time with a zone, such as "
                f"2026-12-24T18:00:00Z, or a template, not {text!r}",
            )
            return None
    return None if until is None else Sleep(until=until)
