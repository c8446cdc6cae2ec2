"""The CLI prints the SDK's messages as it printed protobuf's before it used the SDK.

Each message is built with the server's generated code and sent as bytes; protobuf and the SDK
each read it, as the old and the new CLI did, and it is printed both ways:
`json_format.MessageToDict(..., preserving_proto_field_name=True)` on protobuf's message (the old
output), `message_text` on the SDK's. Byte for byte, but for the order of the keys of maps and
Structs with several keys: protobuf iterated those in an order that changed from process to
process; the CLI now keeps the order the server sent. And whole numbers in Structs print as
integers (`3`, where json_format printed the double a Struct carries as `3.0`).
"""

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import betterproto2
import pytest
from google.protobuf import json_format

import maestro_client
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.api.convert import event_from_proto
from maestro_server.cli.progress import ProgressPrinter
from maestro_server.cli.remote import event_from_message, message_text
from maestro_server.json_numbers import struct_numbers
from maestro_server.model.execution import Event

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
# One key per Struct (so no order that could differ), nesting, every JSON type.
ONE_KEY: dict[str, Any] = {
    "nested": {"list": [1, "two", 2**60, -3, 0.25, True, None, {"z": None}, {"empty": {}}]}
}
# Many keys, which protobuf iterated in an order of its own.
DATA: dict[str, Any] = {
    **{f"key_{n}": n for n in range(12)},
    "email": "ada@example.com",
    "ratio": 0.25,
    "big": 2**60,
    "negative": -3,
    "flags": [True, False, None],
    "nested": {"list": [1, "two", {"z": None, "a": 1.5}], "empty": {}, "none": None},
}


def _execution(data: dict[str, Any]) -> pb.Execution:
    message = pb.Execution(
        execution_id="exec-1",
        workflow_name="user_onboarding",
        workflow_version="1.0",
        workflow_hash="ab" * 32,
        state=pb.EXECUTION_STATE_COMPENSATION_FAILED,
        last_sequence=2**40,
    )
    message.input.update(data)
    message.output.update({"user_id": "u_1"})
    message.error.CopyFrom(pb.Error(code="UNAVAILABLE", message="down", service="crm"))
    message.create_time.FromDatetime(WHEN.replace(microsecond=123456))
    message.end_time.FromDatetime(WHEN)
    for n, micros in enumerate((0, 120000, 1000, 7)):
        step = message.steps.add(step_id=f"s{n}", state=pb.STEP_STATE_SUCCEEDED, attempts=n)
        step.output.CopyFrom(pb.Execution().input if n == 0 else message.input)
        step.start_time.FromDatetime(WHEN.replace(microsecond=micros))
    message.steps.add(step_id="untouched")
    return message


def _workflow(files: int) -> pb.WorkflowDefinition:
    message = pb.WorkflowDefinition(
        name="w", version="2", description="d", workflow_yaml="name: w\n", hash="h" * 64
    )
    message.files["schema.binpb"] = bytes(range(256))
    for n in range(files - 1):
        message.files[f"protos/p{n}.proto"] = b'syntax = "proto3";\n'
    message.create_time.FromDatetime(WHEN.replace(microsecond=1000))
    return message


def _event(**fields: Any) -> pb.WorkflowEvent:
    message = pb.WorkflowEvent(
        execution_id="exec-1",
        sequence=7,
        type=pb.EVENT_TYPE_STEP_RETRYING,
        state=pb.EXECUTION_STATE_RUNNING,
        step_id="charge",
        attempt=2,
        **fields,
    )
    message.time.FromDatetime(WHEN.replace(microsecond=5))
    return message


def _rich_event() -> pb.WorkflowEvent:
    message = _event(in_doubt=True)
    message.output.update(DATA)
    message.error.CopyFrom(pb.Error(code="DEADLINE_EXCEEDED", message="slow", retryable=True))
    message.duration.FromTimedelta(timedelta(seconds=1, microseconds=500))
    message.retry_delay.FromTimedelta(timedelta(milliseconds=250))
    return message


def _waiting_event() -> pb.WorkflowEvent:
    message = _event(signal_name="payment_confirmed", signal_id="psp-1")
    message.type = pb.EVENT_TYPE_STEP_WAITING
    message.deadline.FromDatetime(WHEN.replace(microsecond=0))
    return message


def _old_and_new(message: Any, sdk_type: type[betterproto2.Message]) -> tuple[str, str]:
    wire = message.SerializeToString()
    received = type(message).FromString(wire)
    printed = json_format.MessageToDict(received, preserving_proto_field_name=True)
    old = json.dumps(struct_numbers(received.DESCRIPTOR, printed, proto_names=True), indent=2)
    return old, message_text(sdk_type.parse(wire))


@pytest.mark.parametrize(
    ("message", "sdk_type"),
    [
        pytest.param(_execution(ONE_KEY), maestro_client.Execution, id="execution"),
        pytest.param(pb.Execution(), maestro_client.Execution, id="empty-execution"),
        pytest.param(_workflow(files=1), maestro_client.WorkflowDefinition, id="workflow"),
    ],
)
def test_messages_print_as_json_format_printed_them(
    message: Any, sdk_type: type[betterproto2.Message]
) -> None:
    """Same fields in the same order, numbers, enums, timestamps, bytes, Structs and defaults."""
    old, new = _old_and_new(message, sdk_type)
    assert new == old


@pytest.mark.parametrize(
    ("message", "sdk_type"),
    [
        pytest.param(_execution(DATA), maestro_client.Execution, id="execution"),
        pytest.param(_workflow(files=20), maestro_client.WorkflowDefinition, id="workflow"),
    ],
)
def test_maps_with_many_keys_print_the_same_keys_and_values(
    message: Any, sdk_type: type[betterproto2.Message]
) -> None:
    """Byte for byte once the keys are sorted; the fields keep their order."""
    old, new = _old_and_new(message, sdk_type)
    assert list(json.loads(new)) == list(json.loads(old))
    assert _sorted(new) == _sorted(old)


def _sorted(text: str) -> str:
    return json.dumps(json.loads(text), indent=2, sort_keys=True)


def test_map_keys_come_in_the_order_the_server_sent_them() -> None:
    """The order is the server's, the same in every run of the CLI."""
    sent = {f"key_{n}": n for n in range(16)}
    wire = bytes(maestro_client.Execution.from_dict({"input": sent}))
    execution = maestro_client.Execution.parse(wire)
    assert list(json.loads(message_text(execution))["input"]) == list(sent)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(_rich_event(), id="rich"),
        pytest.param(_event(), id="bare"),
        pytest.param(_waiting_event(), id="waiting"),
    ],
)
def test_events_convert_as_the_api_converted_them(message: pb.WorkflowEvent) -> None:
    """The domain event the progress printer shows is the one it showed before, and so are its
    lines."""
    wire = message.SerializeToString()
    old = event_from_proto(pb.WorkflowEvent.FromString(wire))
    new = event_from_message(maestro_client.WorkflowEvent.parse(wire))
    assert new == old
    assert _shown(new) == _shown(old)
    # The same values; the SDK keeps the keys in the order they came on the wire, where the
    # server's own conversion of a Struct follows protobuf's map order.
    assert json.dumps(new.output, sort_keys=True) == json.dumps(old.output, sort_keys=True)


def _shown(event: Event) -> tuple[Any, str]:
    """An event as the printer shows it: a JSON line (as parsed: an object's keys follow
    protobuf's map order, which is its own), and a line on stderr."""
    line, text = io.StringIO(), io.StringIO()
    ProgressPrinter(jsonl=True, out=line).show(event)
    ProgressPrinter(jsonl=False, err=text).show(event)
    return json.loads(line.getvalue()), text.getvalue()
