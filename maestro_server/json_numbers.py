"""Whole numbers through `google.protobuf.Struct`, which carries every number as a double.

A service's `{"id": 3}` crosses a Struct as 3.0, and Python's JSON prints that as `3.0`; a
client that builds `/invoices/{id}` from it gets `/invoices/3.0`. Maestro writes a whole number
that came through a Struct as an integer, as Go's and JavaScript's JSON do. Only values under a
Struct (or Value, ListValue) are changed: a `double` field stays a double. Numbers beyond 2**53
are not exact as doubles and stay as they are.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

EXACT_LIMIT = 2**53
"""Doubles represent every integer below this exactly."""

_STRUCT_TYPES = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)


def whole_numbers(value: Any) -> Any:
    """A JSON value with every float that holds a whole number (below 2**53) as an int."""
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_LIMIT:
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def struct_numbers(descriptor: Any, data: Any, *, proto_names: bool = False) -> Any:
    """A message's JSON mapping (`data`) with the whole numbers under its Structs as ints.

    `descriptor` is the message's Descriptor (pure Python or upb); `proto_names` says whether
    `data` is keyed by the proto field names rather than the JSON names.
    """
    if descriptor.full_name in _STRUCT_TYPES:
        return whole_numbers(data)
    if not isinstance(data, dict):
        return data  # a well-known type with its own JSON form (Timestamp, Duration, …)
    field: FieldDescriptor
    for field in descriptor.fields:
        key = field.name if proto_names else field.json_name
        if key in data and field.message_type is not None:
            data[key] = _field_value(field.message_type, field.is_repeated, data[key], proto_names)
    return data


def _field_value(message: Descriptor, repeated: bool, value: Any, proto_names: bool) -> Any:
    if message.GetOptions().map_entry:
        entry = message.fields_by_name["value"].message_type
        if entry is None or not isinstance(value, dict):
            return value
        return {
            key: struct_numbers(entry, item, proto_names=proto_names) for key, item in value.items()
        }
    if repeated and isinstance(value, list):
        return [struct_numbers(message, item, proto_names=proto_names) for item in value]
    return struct_numbers(message, value, proto_names=proto_names)
