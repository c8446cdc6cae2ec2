"""Python values ⇄ `google.protobuf.Struct`, keeping whole numbers whole.

A Struct keeps every number as a double: 42 travels as 42.0, and an integer beyond ±2**53
would come back changed. Going out, such an integer is refused (with the field that holds it)
rather than rounded; coming back, a whole number within ±2**53 is an int again. A float that
happens to be whole (3.0) comes back as 3: the Struct cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_client._errors import invalid_input
from maestro_client._proto.google.protobuf import Struct, Value

EXACT_LIMIT = 2**53
"""The largest magnitude a double holds every integer up to."""


def to_struct(values: Mapping[str, Any] | None, field: str = "input") -> Struct:
    """A Struct of JSON-like values; InvalidArgumentError for an integer a double would round."""
    values = dict(values or {})
    _check_exact(values, field)
    return Struct.from_dict(values)


def plain(struct: Struct | None) -> Any:
    """A Struct (an event's or an execution's output, say) as plain Python values, ints whole.

    None stays None.
    """
    if struct is None:
        return None
    return _whole(struct.to_dict())


def output(message: Any) -> Any:
    """The output an event, execution or step carries, as plain Python values.

    A `for_each` step's output is a list, and a workflow's output may be any JSON value; those
    travel in `output_value` (a Struct holds only objects). Whatever the output is, this
    returns it as it is: a list as a list, an object as a dict, None when there is none.
    """
    value: Value | None = message.output_value
    if value is not None:
        return _whole(value.to_dict())
    return plain(message.output)


def _check_exact(value: Any, field: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXACT_LIMIT:
        raise invalid_input(
            field,
            f"{value} is beyond ±2**53, which JSON numbers in a protobuf Struct cannot hold "
            "exactly; send it as a string",
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_exact(item, f"{field}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_exact(item, f"{field}[{index}]")


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_LIMIT:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value
