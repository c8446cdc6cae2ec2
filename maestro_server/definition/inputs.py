"""Execution input: JSON text → an object, checked before an execution starts.

Against the workflow's `input_schema` when it has one, and, schema or not, against what the
workflow reads whatever happens (`Workflow.input_reads`): a missing value, or one of a type the
downstream field refuses, is refused at the door, before anything is stored or called.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from maestro_server.definition.fields import KIND_WORDS, fits_kind, json_kind
from maestro_server.errors import InvalidInputError
from maestro_server.model.workflow import InputRead, Workflow

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


def check_input_travels(data: dict[str, Any], source: str) -> None:
    """Refuse an input that a server would refuse as a request's Struct.

    That is one larger than a request may be, or nested deeper than protobuf decodes (each
    level of objects costs a Struct several levels of messages). The Struct is measured inside
    a Value, which holds it as StartWorkflowRequest does: one level down, under a one-byte
    tag (field 5 there, 3 here), so size and depth are the request's, without importing the
    API's generated messages.
    """
    from google.protobuf import struct_pb2  # noqa: PLC0415 - only for an input to check
    from google.protobuf.message import DecodeError  # noqa: PLC0415

    request = struct_pb2.Value()
    request.struct_value.update(data)  # not struct_value=…, which decodes a copy
    size = request.ByteSize()
    if size > MAX_REQUEST_BYTES:
        raise InvalidInputError(
            f"{source}: the input is {size} bytes in a request; a server accepts requests of "
            f"at most {MAX_REQUEST_BYTES} bytes"
        )
    try:
        struct_pb2.Value.FromString(request.SerializeToString())
    except DecodeError:
        raise InvalidInputError(
            f"{source}: the input nests deeper than a server decodes (protobuf's recursion limit)"
        ) from None


def check_input(value: Any, source: str, workflow: Workflow | None = None) -> dict[str, Any]:
    """Check depth, and the workflow's input_schema when given."""
    if not isinstance(value, Mapping):
        message = f"{source}: the input must be an object"
        raise InvalidInputError(message, violations=[("input", message)])
    if _depth(value) > MAX_INPUT_DEPTH:
        message = f"{source}: input nests deeper than {MAX_INPUT_DEPTH} levels"
        raise InvalidInputError(message, violations=[("input", message)])
    if workflow is not None and workflow.input_schema is not None:
        import jsonschema  # noqa: PLC0415 - as the parser: only for an input_schema

        validator = jsonschema.validators.validator_for(workflow.input_schema)(
            workflow.input_schema
        )
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            details = "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in errors[:5]
            )
            raise InvalidInputError(
                f"{source}: input does not match input_schema: {details}",
                violations=[(_field_path(e.absolute_path), e.message) for e in errors[:5]],
            )
    if workflow is not None:
        problems = _read_problems(value, workflow.input_reads)
        if problems:
            message = f"{source}: {'; '.join(problems[:5])}"
            raise InvalidInputError(message, violations=[("input", message)])
    return dict(value)


_ABSENT = object()


def _read_problems(value: Mapping[str, Any], reads: tuple[InputRead, ...]) -> list[str]:
    """Why the input cannot serve the workflow: values it reads that are missing or unfit."""
    problems: list[str] = []
    missing: set[tuple[str | int, ...]] = set()
    for read in reads:
        found = _get(value, read.path)
        shown = ".input" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in read.path)
        if found is _ABSENT:
            if read.path not in missing:
                missing.add(read.path)
                problems.append(f"{shown} is missing, and {read.reader} reads it")
        elif read.kind is not None and not fits_kind(read.kind, found):
            what = KIND_WORDS.get(read.kind, read.kind)
            problems.append(
                f"{shown} is {KIND_WORDS[json_kind(found)]}, but {read.reader} sends it as "
                f"{read.field}, which takes {what}"
            )
    return problems


def _get(value: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        in_list = isinstance(key, int) and isinstance(value, list) and 0 <= key < len(value)
        in_map = isinstance(key, str) and isinstance(value, Mapping) and key in value
        if not (in_list or in_map):
            return _ABSENT
        value = value[key]
    return value


def _field_path(path: Iterable[Any]) -> str:
    """A place in the input as a request-field path: `input.items[2].sku`."""
    return "input" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


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
