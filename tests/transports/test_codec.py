"""The call path's codec against json_format: same messages, same JSON, same errors."""

from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_server.json_numbers import struct_numbers
from maestro_server.transports.grpc.codec import Codec

F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "text": F.TYPE_STRING,
    "flag": F.TYPE_BOOL,
    "i32": F.TYPE_INT32,
    "s32": F.TYPE_SINT32,
    "u32": F.TYPE_UINT32,
    "f32": F.TYPE_FIXED32,
    "i64": F.TYPE_INT64,
    "u64": F.TYPE_UINT64,
    "sf64": F.TYPE_SFIXED64,
}


def _pool() -> descriptor_pool.DescriptorPool:
    """Messages with every shape the codec plans, and some it leaves to json_format."""
    file = descriptor_pb2.FileDescriptorProto(
        name="codec/v1/codec.proto",
        package="codec.v1",
        syntax="proto3",
        dependency=[
            "google/protobuf/struct.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/duration.proto",
        ],
    )
    color = file.enum_type.add(name="Color")
    for number, name in enumerate(["COLOR_UNSPECIFIED", "RED", "GREEN"]):
        color.value.add(name=name, number=number)
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="label", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    inner.field.add(name="depth", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    inner.field.add(
        name="child", number=3, type=F.TYPE_MESSAGE, type_name=".codec.v1.Inner",
        label=F.LABEL_OPTIONAL,
    )  # fmt: skip
    simple = file.message_type.add(name="Simple")
    number = 10
    for name, kind in SCALARS.items():
        simple.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
        simple.field.add(name=f"many_{name}", number=number + 1, type=kind, label=F.LABEL_REPEATED)
        number += 2
    simple.field.add(
        name="color", number=40, type=F.TYPE_ENUM, type_name=".codec.v1.Color",
        label=F.LABEL_OPTIONAL,
    )  # fmt: skip
    simple.field.add(
        name="colors", number=41, type=F.TYPE_ENUM, type_name=".codec.v1.Color",
        label=F.LABEL_REPEATED,
    )  # fmt: skip
    simple.field.add(
        name="inner", number=42, type=F.TYPE_MESSAGE, type_name=".codec.v1.Inner",
        label=F.LABEL_OPTIONAL,
    )  # fmt: skip
    simple.field.add(
        name="inners", number=43, type=F.TYPE_MESSAGE, type_name=".codec.v1.Inner",
        label=F.LABEL_REPEATED,
    )  # fmt: skip
    simple.oneof_decl.add(name="choice")
    simple.field.add(name="by_name", number=44, type=F.TYPE_STRING, oneof_index=0)
    simple.field.add(name="by_id", number=45, type=F.TYPE_INT32, oneof_index=0)
    simple.oneof_decl.add(name="_maybe")
    simple.field.add(
        name="maybe", number=46, type=F.TYPE_STRING, oneof_index=1, proto3_optional=True
    )
    for name, number, value in (("labels", 48, F.TYPE_STRING), ("counts", 49, F.TYPE_INT64)):
        entry = simple.nested_type.add(name=f"{name.title()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=value, label=F.LABEL_OPTIONAL)
        simple.field.add(
            name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
            type_name=f".codec.v1.Simple.{name.title()}Entry",
        )  # fmt: skip
    for name, number, known in (("at", 50, "Timestamp"), ("took", 51, "Duration")):
        simple.field.add(
            name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
            type_name=f".google.protobuf.{known}",
        )  # fmt: skip
    # Declared last, numbered first: JSON has set fields by number, then unset ones as declared.
    simple.field.add(name="zlast", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    other = file.message_type.add(name="Other")  # planned: no; json_format's alone
    other.field.add(name="text", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    other.field.add(name="ratio", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    other.field.add(name="blob", number=3, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    other.field.add(
        name="extra", number=4, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Struct",
        label=F.LABEL_OPTIONAL,
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    for module in (struct_pb2, timestamp_pb2, duration_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return pool


POOL = _pool()
CODEC = Codec(POOL)
SIMPLE = message_factory.GetMessageClass(POOL.FindMessageTypeByName("codec.v1.Simple"))
OTHER = message_factory.GetMessageClass(POOL.FindMessageTypeByName("codec.v1.Other"))

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([0, 1, -1, 2**31, 2**31 - 1, -(2**31) - 1, 2**32, 2**53 + 1, 2**63, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["RED", "GREEN", "BLUE", "COLOR_UNSPECIFIED", "12", "-3"]),
    st.sampled_from(["2024-01-01T00:00:00Z", "1970-01-01T00:00:01.500Z", "1.5s", "-2s", "x"]),
)
keys = st.sampled_from(
    [
        *SCALARS,
        *(f"many_{name}" for name in SCALARS),
        *("color", "colors", "inner", "inners", "by_name", "by_id", "maybe", "zlast"),
        *("labels", "counts", "at", "took"),
        *("manyI32", "byName", "unknown", "label", "depth", "child"),  # JSON names, strays
    ]
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)


def _parsed(cls: type[Message], value: Any) -> tuple[str, Any]:
    try:
        return "ok", json_format.ParseDict(value, cls(), descriptor_pool=POOL)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def _ours(cls: type[Message], value: Any) -> tuple[str, Any]:
    try:
        return "ok", CODEC.message(cls, value)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def _reference_json(message: Message) -> Any:
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        descriptor_pool=POOL,
        unquote_int64_if_possible=True,
    )
    return struct_numbers(message.DESCRIPTOR, data, proto_names=True)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(keys, json_values, max_size=6))
def test_json_to_message_and_back_as_json_format_does(value: dict[str, Any]) -> None:
    """Every object gives the message json_format gives, or its error; and the same JSON back,
    keys in the same order."""
    expected, ours = _parsed(SIMPLE, value), _ours(SIMPLE, value)
    assert ours[0] == expected[0]
    if expected[0] != "ok":
        assert ours[1] == expected[1]
        return
    assert ours[1] == expected[1]
    reference = _reference_json(expected[1])
    assert list(CODEC.json(ours[1]).items()) == list(reference.items())


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "text": st.text(max_size=3),
            "i64": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "u64": st.integers(min_value=0, max_value=2**64 - 1),
            "color": st.sampled_from(["RED", "GREEN"]),
            "colors": st.lists(st.integers(min_value=0, max_value=5), max_size=3),
            "inners": st.lists(
                st.fixed_dictionaries({}, optional={"label": st.text(max_size=2)}), max_size=2
            ),
            "by_id": st.integers(min_value=0, max_value=9),
            "maybe": st.just(""),
            "labels": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
            "counts": st.dictionaries(st.text(max_size=2), st.integers(0, 2**63 - 1), max_size=2),
            "at": st.sampled_from(["2024-01-01T00:00:00Z", "1970-01-01T00:00:01.500Z"]),
            "took": st.sampled_from(["1.500s", "-2s", "0s"]),
        },
    )
)
def test_values_json_format_takes_the_slow_way_for_come_back_the_same(
    value: dict[str, Any],
) -> None:
    """Unknown enum numbers, int64 beyond doubles, empty optional strings: the same JSON."""
    message = json_format.ParseDict(value, SIMPLE(), descriptor_pool=POOL)
    assert list(CODEC.json(message).items()) == list(_reference_json(message).items())


@pytest.mark.parametrize(
    "value",
    [
        {"text": "a", "ratio": 1.5, "blob": "AAE=", "extra": {"n": 3, "list": [1.0, 2.5]}},
        {"ratio": "NaN"},
        {"extra": None},
    ],
)
def test_types_left_to_json_format(value: dict[str, Any]) -> None:
    """Doubles, bytes and Structs are json_format's, whole numbers in Structs made ints."""
    ours = CODEC.message(OTHER, value)
    assert ours == json_format.ParseDict(value, OTHER(), descriptor_pool=POOL)
    assert CODEC.json(ours) == _reference_json(ours)


def test_the_fast_path_is_taken() -> None:
    """The planned types skip json_format (the properties above would pass without a plan)."""
    assert CODEC._plan(SIMPLE.DESCRIPTOR) is not None
    assert CODEC._plan(OTHER.DESCRIPTOR) is None


def test_a_recursive_type_is_planned() -> None:
    value = {"inner": {"label": "a", "child": {"depth": 2, "child": {"label": "c"}}}}
    message = CODEC.message(SIMPLE, value)
    assert message == json_format.ParseDict(value, SIMPLE(), descriptor_pool=POOL)
    assert CODEC.json(message) == _reference_json(message)
