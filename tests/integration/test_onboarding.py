"""The seed's onboarding saga against its real services: Node.js auth, Python billing and
email over gRPC, and the CRM over HTTP, all on loopback."""

import pytest

from maestro_server.model.execution import EventType, ExecutionState
from tests.conftest import Onboarding, node_auth_process


async def test_onboarding_saga_completes(onboarding: Onboarding) -> None:
    """Every service is called once, in order, with the outputs of the steps before."""
    result, events = await onboarding.run("ok-1")
    assert result.state is ExecutionState.COMPLETED
    subscription = next(iter(onboarding.billing.subscriptions.values()))
    assert result.output == {"user_id": subscription.user_id, "subscription_id": subscription.id}
    assert subscription.status == "ACTIVE"
    (contact,) = onboarding.crm.contacts.values()
    assert contact["user_id"] == subscription.user_id and contact["subscription_tier"] == "gold"
    (mail,) = onboarding.mailer.sent
    assert (mail.to, mail.template, dict(mail.vars)) == (
        "ada@example.com",
        "welcome",
        {"name": "Ada Lovelace", "plan": "Pro"},
    )
    assert [e.type for e in events][-1] is EventType.WORKFLOW_COMPLETED
    user = next(e.output for e in events if e.type is EventType.STEP_SUCCEEDED)
    assert user["email"] == "ada@example.com" and user["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("failing", "subscription", "contact"),
    [
        pytest.param("CreateSubscription", None, None, id="billing fails: nothing to undo"),
        pytest.param("POST /contacts", "CANCELLED", None, id="crm fails: subscription cancelled"),
        pytest.param("SendTemplate", "CANCELLED", "DELETED", id="email fails: both undone"),
    ],
)
async def test_each_step_failing_for_good(
    onboarding: Onboarding, failing: str, subscription: str | None, contact: str | None
) -> None:
    """Exactly the completed steps with a compensation are undone, as the services record it."""
    service = {"CreateSubscription": onboarding.billing, "SendTemplate": onboarding.mailer}
    faults = service[failing].faults if failing in service else onboarding.crm.faults
    faults.fail(failing, "INVALID_ARGUMENT" if failing != "POST /contacts" else "HTTP_422")
    result, events = await onboarding.run(f"fail-{failing}")
    expected = ExecutionState.FAILED if subscription is None else ExecutionState.COMPENSATED
    assert result.state is expected
    states = [s.status for s in onboarding.billing.subscriptions.values()]
    assert states == ([] if subscription is None else [subscription])
    contacts = [c["status"] for c in onboarding.crm.contacts.values()]
    assert contacts == ([] if contact is None else [contact])
    undo_order = [e.step_id for e in events if e.type is EventType.COMPENSATION_SUCCEEDED]
    assert undo_order == [
        s for s, done in (("add_to_crm", contact), ("setup_subscription", subscription)) if done
    ]
    calls = [
        c
        for c in onboarding.crm.ledger.calls
        + onboarding.billing.ledger.calls
        + onboarding.mailer.ledger.calls
        if c["method"] == failing
    ]
    assert len(calls) == 1, "a non-retryable error is not retried"


async def test_auth_failing_for_good_compensates_nothing(onboarding: Onboarding) -> None:
    """The Node.js service failing the first step: the saga fails with nothing to undo."""
    with node_auth_process("--fail", "CreateUser=PERMISSION_DENIED") as port:
        workflow = onboarding.workflow.with_endpoints({"auth_service": f"127.0.0.1:{port}"})
        result, events = await onboarding.run("auth-fails", workflow)
    assert result.state is ExecutionState.FAILED
    assert result.error is not None and result.error.code == "PERMISSION_DENIED"
    assert onboarding.billing.ledger.calls == []
    assert not any(e.type is EventType.COMPENSATION_STARTED for e in events)


async def test_transient_failures_are_retried_with_the_same_key(onboarding: Onboarding) -> None:
    """UNAVAILABLE twice, then success; the idempotency key arrives unchanged each time."""
    onboarding.billing.faults.fail("CreateSubscription", "UNAVAILABLE", times=2)
    onboarding.crm.faults.fail("POST /contacts", "HTTP_503", times=1)
    result, events = await onboarding.run("flaky-1")
    assert result.state is ExecutionState.COMPLETED
    billing_calls = [
        c for c in onboarding.billing.ledger.calls if c["method"] == "CreateSubscription"
    ]
    assert [(c["key"], c["attempt"]) for c in billing_calls] == [
        ("flaky-1:setup_subscription", "1"),
        ("flaky-1:setup_subscription", "2"),
        ("flaky-1:setup_subscription", "3"),
    ]
    assert len({str(c["payload"]) for c in billing_calls}) == 1, "the same request each time"
    crm_calls = [c for c in onboarding.crm.ledger.calls if c["method"] == "POST /contacts"]
    assert [c["key"] for c in crm_calls] == ["flaky-1:add_to_crm"] * 2
    assert len(onboarding.billing.subscriptions) == 1
    retries = [e.step_id for e in events if e.type is EventType.STEP_RETRYING]
    assert retries == ["setup_subscription", "setup_subscription", "add_to_crm"]


async def test_a_repeated_key_does_not_act_twice(onboarding: Onboarding) -> None:
    """Running the same execution id twice: idempotent services return their first results."""
    first, _ = await onboarding.run("same-id")
    second, _ = await onboarding.run("same-id")
    assert first.output == second.output
    assert len(onboarding.billing.subscriptions) == 1
    assert len(onboarding.crm.contacts) == 1
    assert len(onboarding.mailer.sent) == 1


async def test_per_attempt_timeout_fires_and_compensates_the_in_doubt_step(
    onboarding: Onboarding,
) -> None:
    """A reply slower than the step timeout is DEADLINE_EXCEEDED; the step may have acted, so
    after its retries it is asked again (its compensation's patience) and, still unanswered,
    compensated too."""
    yaml = onboarding.workflow.source.replace(
        "    method: SendTemplate\n",
        "    method: SendTemplate\n    timeout: 100ms\n    retry: {max_attempts: 2, initial_backoff: 10ms}\n"
        '    compensate: {method: SendTemplate, input: {to: "{{ .input.email }}", template: sorry},'
        " retry: {max_attempts: 2, initial_backoff: 10ms}}\n",
    )
    from maestro_server.definition import load_workflow

    workflow = load_workflow(yaml).with_endpoints(onboarding.endpoints)
    onboarding.mailer.faults.replace({"delays": {"SendTemplate": {"seconds": 0.5}}})
    result, events = await onboarding.run("slow-1", workflow)
    onboarding.mailer.faults.clear()
    assert result.state is ExecutionState.COMPENSATED
    failed = next(e for e in events if e.type is EventType.STEP_FAILED)
    assert failed.error is not None and failed.error.code == "DEADLINE_EXCEEDED"
    undone = [e.step_id for e in events if e.type is EventType.COMPENSATION_SUCCEEDED]
    assert undone == ["send_welcome_email", "add_to_crm", "setup_subscription"]
    sends = [c for c in onboarding.mailer.ledger.calls if c["method"] == "SendTemplate"]
    assert [c["key"] for c in sends] == ["slow-1:send_welcome_email"] * 4 + [
        "slow-1:send_welcome_email:compensate"
    ]
    asked = [e.attempt for e in events if e.type is EventType.STEP_STARTED and e.probe]
    assert asked == [3, 4], "asked twice more, under the same key, before compensating"
