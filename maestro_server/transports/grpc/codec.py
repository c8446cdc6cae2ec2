"""JSON ↔ protobuf for the call path: json_format's mapping, at a fraction of its cost.

`json_format.ParseDict` and `MessageToDict` walk every field through generic Python code for
each call (about 0.1 ms a message on this machine). A `Codec` compiles, once per message type,
a plan for the common shapes: strings, bools, integers, enums, nested messages and repeated
fields of those, maps with text keys, and Timestamps and Durations out. Anything else (floats,
bytes, other well-known types such as Struct, JSON names instead of field names, nulls, a
value of an unexpected type) goes to json_format, so the mapping and every error message stay
json_format's own; tests/transports/test_codec.py compares the two over generated messages.

The output mapping is `MessageToDict(preserving_proto_field_name=True,
always_print_fields_with_no_presence=True, unquote_int64_if_possible=True)`, then whole numbers
under Structs made ints (json_numbers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from maestro_server.json_numbers import struct_numbers

_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)


# Well-known types whose JSON is their text (as json_format writes them); read by json_format.
_AS_TEXT = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})


class _Slow(Exception):
    """A value the fast path leaves to json_format."""


Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]


class _Field:
    """One field of a planned message: its JSON value to a constructor argument, and back."""

    __slots__ = (
        "decode",
        "default",
        "encode",
        "map",
        "name",
        "number",
        "oneof",
        "presence",
        "repeated",
    )

    def __init__(self, field: FieldDescriptor, encode: Encode, decode: Decode) -> None:
        self.name = field.name
        self.number = field.number
        self.map = _is_map(field)
        """A map with text keys: `encode` and `decode` are its values'."""
        self.repeated = field.is_repeated and not self.map
        self.presence = field.has_presence
        # A proto3 `optional` field sits alone in a synthetic oneof: harmless to count here.
        oneof = field.containing_oneof
        self.oneof = oneof.name if oneof is not None else None
        self.encode = encode
        self.decode = decode
        self.default: Any = (
            None if self.repeated or self.map or self.presence else field.default_value
        )


class _Plan:
    """A message type the fast path handles."""

    def __init__(self) -> None:
        self.fields: dict[str, _Field] = {}
        """By field name, in declaration order."""
        self.by_number: list[_Field] = []
        self.order: dict[_Field, int] = {}

    def encode(self, value: Any) -> dict[str, Any]:
        """Constructor arguments from a JSON object; _Slow for anything unusual."""
        if type(value) is not dict:
            raise _Slow
        arguments: dict[str, Any] = {}
        oneofs: set[str] = set()
        for key, item in value.items():
            field = self.fields.get(key)
            if field is None or item is None:
                raise _Slow  # a JSON name, an unknown field, or a null: json_format decides
            if field.oneof is not None:
                if field.oneof in oneofs:
                    raise _Slow
                oneofs.add(field.oneof)
            if field.repeated:
                if type(item) is not list:
                    raise _Slow
                arguments[key] = [field.encode(element) for element in item]
            elif field.map:
                if type(item) is not dict:
                    raise _Slow
                arguments[key] = {name: field.encode(entry) for name, entry in item.items()}
            else:
                arguments[key] = field.encode(item)
        return arguments

    def decode(self, message: Any) -> dict[str, Any]:
        """MessageToDict's object: set fields by number, then unset ones without presence."""
        out: dict[str, Any] = {}
        unset: list[_Field] = []
        for field in self.by_number:
            value = getattr(message, field.name)
            if field.repeated:
                if value:
                    out[field.name] = [field.decode(element) for element in value]
                else:
                    unset.append(field)
            elif field.map:
                if value:
                    out[field.name] = {str(name): field.decode(value[name]) for name in value}
                else:
                    unset.append(field)
            elif field.presence:
                if message.HasField(field.name):
                    out[field.name] = field.decode(value)
            elif value != field.default:
                out[field.name] = field.decode(value)
            else:
                unset.append(field)
        for field in self._declared(unset):
            if field.repeated:
                out[field.name] = []
            elif field.map:
                out[field.name] = {}
            else:
                out[field.name] = field.decode(field.default)
        return out

    def _declared(self, unset: list[_Field]) -> list[_Field]:
        return sorted(unset, key=self.order.__getitem__) if len(unset) > 1 else unset


class Codec:
    """JSON ↔ messages of one descriptor pool, planned per message type."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool
        self._plans: dict[str, _Plan | None] = {}

    def message(self, cls: type[Message], value: Any) -> Message:
        """`json_format.ParseDict(value, cls())`, with its errors."""
        plan = self._plan(cls.DESCRIPTOR)
        if plan is not None:
            try:
                return cls(**plan.encode(value))
            except (_Slow, TypeError, ValueError):
                pass  # json_format says what is wrong, in its words
        return json_format.ParseDict(value, cls(), descriptor_pool=self._pool)

    def json(self, message: Message) -> Any:
        """The message as JSON, as the module docstring says."""
        plan = self._plan(message.DESCRIPTOR)
        if plan is not None:
            try:
                return plan.decode(message)
            except _Slow:
                pass
        data = json_format.MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            descriptor_pool=self._pool,
            unquote_int64_if_possible=True,
        )
        return struct_numbers(message.DESCRIPTOR, data, proto_names=True)

    def _plan(self, message: Any) -> _Plan | None:
        # Any: the pure-Python or the upb Descriptor
        name = message.full_name
        if name not in self._plans:
            self._plans[name] = _compile(message, {})
        return self._plans[name]


def _compile(message: Any, planning: dict[str, _Plan]) -> _Plan | None:
    """The plan of a message type, or None when json_format must handle it."""
    if message.full_name in planning:
        return planning[message.full_name]  # a recursive type, being planned
    if (
        message.full_name.startswith("google.protobuf.")
        or message.GetOptions().map_entry
        or message.extension_ranges
    ):
        return None
    plan = planning[message.full_name] = _Plan()
    for field in message.fields:
        coders = _coders(field, planning)
        if coders is None:
            return None
        plan.fields[field.name] = _Field(field, *coders)
    plan.order = {f: n for n, f in enumerate(plan.fields.values())}
    plan.by_number = sorted(plan.fields.values(), key=lambda f: f.number)
    return plan


def _coders(field: FieldDescriptor, planning: dict[str, _Plan]) -> tuple[Encode, Decode] | None:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _typed(str), _same
    if kind == FieldDescriptor.TYPE_BOOL:
        return _typed(bool), _same
    if kind in _RANGES:
        low, high = _RANGES[kind]
        return _integer(low, high), (_int64 if kind in _INT64 else _same)
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum(field)
    if kind == FieldDescriptor.TYPE_MESSAGE and _is_map(field):
        entry: Any = field.message_type
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        if key.type != FieldDescriptor.TYPE_STRING or value.type == FieldDescriptor.TYPE_MESSAGE:
            return None
        return _coders(value, planning)
    message: Any = field.message_type
    if kind == FieldDescriptor.TYPE_MESSAGE and message.full_name in _AS_TEXT:
        return _never, _as_text
    if kind == FieldDescriptor.TYPE_MESSAGE:
        plan = _compile(message, planning)
        if plan is None:
            return None
        return plan.encode, plan.decode
    return None  # float, double, bytes, groups


def _is_map(field: FieldDescriptor) -> bool:
    message: Any = field.message_type
    return message is not None and bool(message.GetOptions().map_entry)


def _same(value: Any) -> Any:
    return value


def _never(_: Any) -> Any:
    raise _Slow


def _as_text(value: Any) -> str:
    text: str = value.ToJsonString()
    return text


def _int64(value: int) -> int | str:
    return value if float(value) == value else str(value)


def _typed(kind: type) -> Encode:
    def encode(value: Any) -> Any:
        if type(value) is not kind:
            raise _Slow
        return value

    return encode


def _integer(low: int, high: int) -> Encode:
    def encode(value: Any) -> int:
        if type(value) is not int or not low <= value <= high:
            raise _Slow
        return value

    return encode


def _enum(field: FieldDescriptor) -> tuple[Encode, Decode] | None:
    enum: Any = field.enum_type
    if enum.full_name == "google.protobuf.NullValue" or any(
        value.GetOptions().ListFields() for value in enum.values
    ):
        return None  # options such as a JSON name of the value: json_format knows them
    numbers: dict[str, int] = {value.name: value.number for value in enum.values}
    names: dict[int, str] = {n: value.name for n, value in enum.values_by_number.items()}

    def encode(value: Any) -> int:
        if type(value) is not str or value not in numbers:
            raise _Slow
        return numbers[value]

    def decode(value: int) -> str:
        name = names.get(value)
        if name is None:
            raise _Slow  # an unknown number: json_format prints it, or refuses a closed enum
        return name

    return encode, decode
