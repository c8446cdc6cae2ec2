"""What a protobuf field takes and gives as JSON, by protobuf's JSON mapping as Maestro uses it.

Requests are built with `json_format.ParseDict` and responses read with `MessageToDict`
(proto field names, every field, int64 as numbers): these rules say what each accepts and
writes, so a workflow's values can be checked before a call is made.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from maestro_server.definition.reader import did_you_mean

_T = FieldDescriptor
_INTEGERS = frozenset(
    {_T.TYPE_INT32, _T.TYPE_INT64, _T.TYPE_UINT32, _T.TYPE_UINT64, _T.TYPE_SINT32}
    | {_T.TYPE_SINT64, _T.TYPE_FIXED32, _T.TYPE_FIXED64, _T.TYPE_SFIXED32, _T.TYPE_SFIXED64}
)
_RANGES = {
    **dict.fromkeys((_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((_T.TYPE_UINT32, _T.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((_T.TYPE_UINT64, _T.TYPE_FIXED64), (0, 2**64 - 1)),
}
_TEXT_TYPES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
_WRAPPERS = {
    "google.protobuf.DoubleValue": "number",
    "google.protobuf.FloatValue": "number",
    "google.protobuf.Int64Value": "integer",
    "google.protobuf.UInt64Value": "integer",
    "google.protobuf.Int32Value": "integer",
    "google.protobuf.UInt32Value": "integer",
    "google.protobuf.BoolValue": "boolean",
    "google.protobuf.StringValue": "string",
    "google.protobuf.BytesValue": "bytes",
}
_ANYTHING = frozenset({"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.Any"})
KIND_WORDS = {
    "string": "text",
    "bytes": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
    "enum": "an enum value's name or number",
}


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a value goes: a message's fields, a list, a map, anything, or a single value.

    `shape` is message, list, map, any or scalar; `field` is the field the slot belongs to
    (None for a request or response message itself); `message` the type for a message slot.
    """

    shape: str
    field: FieldDescriptor | None = None
    message: Descriptor | None = None


def message_slot(message: Descriptor) -> Slot:
    """The slot of a whole message (a request, a response)."""
    return _element(message, None)


def field_slot(field: FieldDescriptor) -> Slot:
    """What a field holds: a list for repeated fields, a map, or one value."""
    if _is_map(field):
        return Slot("map", field)
    if _is_repeated(field):
        return Slot("list", field)
    return item_slot(field)


def item_slot(field: FieldDescriptor) -> Slot:
    """One value of a field: an item of a repeated field, a map's value, or the field's own."""
    if _is_map(field):
        return item_slot(_message(field).fields_by_name["value"])
    if field.type == _T.TYPE_MESSAGE:
        return _element(_message(field), field)
    return Slot("scalar", field)


def _element(message: Descriptor, field: FieldDescriptor | None) -> Slot:
    name = message.full_name
    if name in _ANYTHING:
        return Slot("any", field, message)
    if name == "google.protobuf.ListValue":
        return Slot("list", field, message)
    if name in _TEXT_TYPES or name in _WRAPPERS:
        return Slot("scalar", field, message)
    return Slot("message", field, message)


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        _is_repeated(field)
        and field.type == _T.TYPE_MESSAGE
        and bool(_message(field).GetOptions().map_entry)
    )


def _message(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def describe(field: FieldDescriptor) -> str:
    """A field's type as a .proto file writes it: `int64`, `repeated string`, `map<…>`."""
    if _is_map(field):
        key, value = (_message(field).fields_by_name[n] for n in ("key", "value"))
        return f"map<{_type_name(key)}, {_type_name(value)}>"
    return ("repeated " if _is_repeated(field) else "") + _type_name(field)


def _type_name(field: FieldDescriptor) -> str:
    if field.type == _T.TYPE_MESSAGE:
        return str(_message(field).full_name)
    if field.type == _T.TYPE_ENUM:
        assert field.enum_type is not None
        return str(field.enum_type.full_name)
    names = {v: k for k, v in vars(_T).items() if k.startswith("TYPE_")}
    return names[field.type].removeprefix("TYPE_").lower()


def scalar_kind(slot: Slot) -> str:
    """The JSON type of a scalar slot: string, bytes, integer, number, boolean or enum."""
    if slot.message is not None:
        return _WRAPPERS.get(slot.message.full_name, "string")
    assert slot.field is not None
    field = slot.field
    if field.type in _INTEGERS:
        return "integer"
    if field.type in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return "number"
    if field.type == _T.TYPE_BOOL:
        return "boolean"
    if field.type == _T.TYPE_ENUM:
        return "enum"
    return "bytes" if field.type == _T.TYPE_BYTES else "string"


def slot_kind(slot: Slot) -> str | None:
    """The JSON type MessageToDict writes for a slot (None: any); enums are names (string)."""
    if slot.shape == "any":
        return None
    if slot.shape in ("message", "map"):
        return "object"
    if slot.shape == "list":
        return "array"
    kind = scalar_kind(slot)
    return "string" if kind in ("enum", "bytes") else kind


def accepts(slot: Slot, kind: str) -> bool:
    """Whether a value of JSON type `kind` may fill the slot (strings may hold numbers)."""
    if kind == "null" or slot.shape == "any":
        return True
    if slot.shape in ("message", "map"):
        return kind == "object"
    if slot.shape == "list":
        return kind == "array"
    wanted = scalar_kind(slot)
    fits = {
        "string": {"string"},
        "bytes": {"string"},
        "integer": {"integer", "number", "string"},
        "number": {"integer", "number", "string"},
        "boolean": {"boolean"},
        "enum": {"string", "integer"},
    }[wanted]
    return kind in fits


def value_problem(slot: Slot, value: Any) -> str | None:
    """Why ParseDict would refuse a plain scalar value for a scalar slot (None: it fits)."""
    if value is None:
        return None
    kind = json_kind(value)
    if not accepts(slot, kind):
        return f"not {KIND_WORDS[kind]}"
    wanted = scalar_kind(slot)
    if wanted == "integer":
        number = _as_number(value)
        if number is None or (isinstance(number, float) and not number.is_integer()):
            return f"{json.dumps(value)} is not a whole number"
        assert slot.field is not None
        low, high = _RANGES.get(slot.field.type, (-(2**63), 2**64 - 1))
        if not low <= int(number) <= high:
            return f"{json.dumps(value)} is out of range"
    elif wanted == "number" and _as_number(value) is None:
        return f"{json.dumps(value)} is not a number"
    elif wanted == "enum" and isinstance(value, str):
        assert slot.field is not None and slot.field.enum_type is not None
        names = slot.field.enum_type.values_by_name
        if value not in names:
            return f'"{value}" is not one of {", ".join(names)}{did_you_mean(value, names)}'
    return None


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and value == value.strip():
        for convert in (int, float):
            try:
                number = convert(value)
            except ValueError:
                continue
            return number if math.isfinite(number) or value in ("NaN", "Infinity") else None
    return None


def json_kind(value: Any) -> str:
    """The JSON type of a plain value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


def field_named(
    message: Descriptor, key: str, *, json_names: bool = True
) -> FieldDescriptor | None:
    """The field a key names: its proto name, or (for requests) its JSON name."""
    field = message.fields_by_name.get(key)
    if field is None and json_names:
        field = next((f for f in message.fields if f.json_name == key), None)
    return field


def map_key_problem(slot: Slot, key: str) -> str | None:
    """Why a map's key does not convert to the map's key type (None: it does)."""
    assert slot.field is not None
    key_field = _message(slot.field).fields_by_name["key"]
    if key_field.type in _INTEGERS and _as_number(key) is None:
        return f"map key '{key}' is not a whole number ({describe(slot.field)})"
    if key_field.type == _T.TYPE_BOOL and key not in ("true", "false"):
        return f"map key '{key}' is not true or false ({describe(slot.field)})"
    return None


def fits_kind(kind: str, value: Any) -> bool:
    """Whether ParseDict takes a plain value for a field of `kind`.

    `kind` is a scalar_kind, object or array. The door checks this of an input value that
    goes unchanged into a field.
    """
    if value is None:
        return True
    if kind in ("object", "array"):
        return json_kind(value) == kind
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "enum":
        return json_kind(value) in ("string", "integer")
    number = _as_number(value)
    if kind == "integer":
        return number is not None and (not isinstance(number, float) or number.is_integer())
    return number is not None
