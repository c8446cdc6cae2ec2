"""What a path holds: a field of a step's response message, or a value of `.input`.

`MessageToDict` writes every field of a response with its proto name, so a path through one
either reaches a field (whose JSON type is then known) or names a field that can never be
there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor

from maestro_server.definition.fields import (
    KIND_WORDS,
    Slot,
    describe,
    field_named,
    field_slot,
    item_slot,
    message_slot,
)
from maestro_server.definition.reader import did_you_mean


def walk_response(message: Descriptor, keys: Sequence[str | int]) -> tuple[Slot | None, str]:
    """The slot a path reaches in a response message, or None and why it reaches none."""
    slot = message_slot(message)
    for key in keys:
        if slot.shape == "any":
            return slot, ""
        if slot.shape == "message" and slot.message is not None:
            if not isinstance(key, str):
                return None, f"{slot.message.full_name} is a message, not a list"
            found = field_named(slot.message, key, json_names=False)
            if found is None:
                names = [f.name for f in slot.message.fields]
                return None, (
                    f"{slot.message.full_name} has no field '{key}'{did_you_mean(key, names)}"
                )
            slot = field_slot(found)
        elif slot.shape == "list":
            if not isinstance(key, int):
                return None, f"{origin(slot)} is {describe_slot(slot)}: read an item by its index"
            slot = Slot("any") if slot.field is None or slot.message else item_slot(slot.field)
        elif slot.shape == "map":
            assert slot.field is not None
            slot = item_slot(slot.field)
        else:
            return None, f"{origin(slot)} is {describe_slot(slot)}, which has no field '{key}'"
    return slot, ""


def origin(slot: Slot) -> str:
    """The field (or message) a slot belongs to, fully qualified."""
    if slot.field is None:
        return slot.message.full_name if slot.message is not None else "it"
    return str(slot.field.full_name)


def describe_slot(slot: Slot) -> str:
    """What a slot takes, as a .proto file would write it."""
    if slot.field is not None and slot.shape in ("list", "map"):
        return describe(slot.field)
    if slot.message is not None:
        return "a message" if slot.shape == "message" else slot.message.full_name
    if slot.field is not None:
        return _type_of(slot)
    return "anything"


def _type_of(slot: Slot) -> str:
    assert slot.field is not None
    text = describe(slot.field)
    return text.removeprefix("repeated ")


def schema_kind(schema: Mapping[str, Any] | None, keys: Sequence[str | int]) -> str | None:
    """The JSON type `input_schema` gives a path under `.input` (None when it says none)."""
    node: Any = schema
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get("items") if isinstance(key, int) else node.get("properties", {}).get(key)
    if not isinstance(node, Mapping):
        return None
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return kind if kind in KIND_WORDS and kind != "null" else None
