"""An operator resumes a COMPENSATION_FAILED execution once the downstream service is fixed."""

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.manager import ExecutionManager
from maestro_server.errors import FailedPreconditionError
from maestro_server.model.execution import EventType, ExecutionState
from maestro_server.store.memory import MemoryStore
from tests.conftest import Onboarding


async def test_resume_retries_only_the_failed_compensations(onboarding: Onboarding) -> None:
    """The CRM refuses to delete: COMPENSATION_FAILED. Fixed and resumed, only the CRM
    compensation runs again (same key), and the execution ends COMPENSATED."""
    yaml = onboarding.workflow.source.replace(
        "      method: DELETE /contacts/{{ .crm_contact.id }}",
        "      method: DELETE /contacts/{{ .crm_contact.id }}\n"
        "      retry: {max_attempts: 2, initial_backoff: 10ms}",
    )
    originals = {
        "auth_service": "auth-service:50051",
        "billing_service": "billing-service:50052",
        "crm_service": "http://crm-api:8080",
        "email_service": "email-service:50053",
    }
    for name, original in originals.items():  # in the text: the store keeps the text to resume
        yaml = yaml.replace(f'"{original}"', f'"{onboarding.endpoints[name]}"')
    workflow = load_workflow(yaml)
    onboarding.mailer.faults.fail("SendTemplate", "INVALID_ARGUMENT")
    onboarding.crm.faults.fail("DELETE /contacts", "HTTP_503")
    store = MemoryStore()
    manager = ExecutionManager(store, onboarding.transports)

    started = await manager.start(workflow, onboarding.input, "resume-1")
    first = [e async for e in store.watch("resume-1", 0)]
    assert first[-1].state is ExecutionState.COMPENSATION_FAILED
    assert (await store.get_execution("resume-1")).state is ExecutionState.COMPENSATION_FAILED
    assert started.created

    onboarding.crm.faults.clear()
    record = await manager.resume("resume-1")
    assert record.state is ExecutionState.COMPENSATING
    rest = [e async for e in store.watch("resume-1", first[-1].sequence)]
    assert [e.sequence for e in first + rest] == list(range(1, len(first) + len(rest) + 1))
    assert [(e.type, e.step_id) for e in rest] == [
        (EventType.COMPENSATION_STARTED, "add_to_crm"),
        (EventType.COMPENSATION_SUCCEEDED, "add_to_crm"),
        (EventType.WORKFLOW_COMPENSATED, "send_welcome_email"),
    ]
    assert [c["status"] for c in onboarding.crm.contacts.values()] == ["DELETED"]
    cancels = [c for c in onboarding.billing.ledger.calls if c["method"] == "CancelSubscription"]
    assert len(cancels) == 1, "a compensation that succeeded is not run again"
    deletes = {c["key"] for c in onboarding.crm.ledger.calls if c["method"] == "DELETE /contacts"}
    assert deletes == {"resume-1:add_to_crm:compensate"}

    with pytest.raises(FailedPreconditionError, match="only a compensation_failed execution"):
        await manager.resume("resume-1")
