"""Each step's rendered requests, as the engine kept them, on an execution's steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.api.convert import to_struct


def attach_requests(execution: pb.Execution, saved: Mapping[str, Any]) -> None:
    """Fill each step's `input` and `compensation_input` from the kept requests.

    They are kept by idempotency key: `<execution_id>:<step_id>`, or `…:compensate` (see
    transports/base.py).
    """
    for step in execution.steps:
        key = f"{execution.execution_id}:{step.step_id}"
        if key in saved:
            step.input.CopyFrom(to_struct(saved[key]["payload"]))
        if f"{key}:compensate" in saved:
            step.compensation_input.CopyFrom(to_struct(saved[f"{key}:compensate"]["payload"]))
