"""Execution input: JSON text → an object, checked against the workflow's `input_schema`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from maestro_server.errors import InvalidInputError
from maestro_server.model.workflow import Workflow

MAX_INPUT_DEPTH = 64
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The largest request a server accepts (gRPC's default receive limit): the input travels in one."""


def parse_input(text: str, source: str) -> dict[str, Any]:
    """Parse JSON input: an object, no NaN or Infinity, no duplicate keys, not too deep."""

    def no_constants(name: str) -> Any:
        raise InvalidInputError(f"{source}: {name} is not valid JSON")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise InvalidInputError(f"{source}: duplicate key {duplicates[0]!r}")
        return dict(pairs)

    try:
        value = json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        raise InvalidInputError(
            f"{source}: input nests deeper than {MAX_INPUT_DEPTH} levels"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"{source}: the input must be a JSON object, not {type(value).__name__}"
        )
    return check_input(value, source)


def check_input(value: Any, source: str, workflow: Workflow | None = None) -> dict[str, Any]:
    """Check depth, and the workflow's input_schema when given."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{source}: the input must be an object")
    if _depth(value) > MAX_INPUT_DEPTH:
        raise InvalidInputError(f"{source}: input nests deeper than {MAX_INPUT_DEPTH} levels")
    if workflow is not None and workflow.input_schema is not None:
        validator = jsonschema.validators.validator_for(workflow.input_schema)(
            workflow.input_schema
        )
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            details = "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in errors[:5]
            )
            raise InvalidInputError(f"{source}: input does not match input_schema: {details}")
    return dict(value)


def _depth(value: Any) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_INPUT_DEPTH:
            break
        children = current.values() if isinstance(current, Mapping) else current
        if isinstance(current, Mapping | list):
            stack.extend((child, depth + 1) for child in children)
    return deepest
