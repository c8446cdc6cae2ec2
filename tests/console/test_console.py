"""What a person sees in the web console, in headless Chromium against a real `maestro serve`."""

import base64
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import ADMIN_TOKEN, READ_TOKEN, Console, new_context

EMAIL_REFUSES = {"errors": {"SendTemplate": {"code": "INVALID_ARGUMENT"}}}
STEPS = ["create_user", "setup_subscription", "add_to_crm", "send_welcome_email"]


@pytest.fixture(scope="module")
def sagas(console: Console) -> dict[str, str]:
    """A saga that completed and one that was compensated (the email service refusing); the
    workflow registered too."""
    registered = console.call("RegisterWorkflow", {"workflowYaml": console.workflow()})
    assert registered.status_code == 200, registered.text
    console.services.set_faults("email", {})
    ok = console.start(console.workflow(), "saga-completed")
    console.watch_to_end(ok)
    console.services.set_faults("email", EMAIL_REFUSES)
    try:
        bad = console.start(console.workflow(), "saga-compensated")
        console.watch_to_end(bad)
    finally:
        console.services.set_faults("email", {})
    return {"completed": ok, "compensated": bad}


def test_the_list_shows_both_sagas_with_their_states(
    console: Console, sagas: dict[str, str], page: Page, screenshots: Path
) -> None:
    page.goto(console.url)
    ok = page.get_by_test_id(f"execution-row-{sagas['completed']}")
    bad = page.get_by_test_id(f"execution-row-{sagas['compensated']}")
    expect(ok).to_have_attribute("data-state", "COMPLETED")
    expect(ok).to_contain_text("completed")
    expect(bad).to_have_attribute("data-state", "COMPENSATED")
    expect(bad).to_contain_text("compensated")
    expect(bad).to_contain_text("send_welcome_email")  # the failing step
    expect(bad).to_contain_text("onboarding")
    page.screenshot(path=screenshots / "executions.png")

    page.get_by_label("State").select_option("COMPENSATED")
    expect(ok).to_have_count(0)
    expect(bad).to_be_visible()


def test_a_compensated_execution_shows_what_failed_and_what_was_undone(
    console: Console, sagas: dict[str, str], page: Page, screenshots: Path
) -> None:
    page.goto(f"{console.url}/#/executions/{sagas['compensated']}")
    expect(page.get_by_test_id("execution-status")).to_have_attribute("data-state", "COMPENSATED")
    node = page.get_by_test_id
    expect(node("step-node-send_welcome_email")).to_have_attribute("data-state", "FAILED")
    expect(node("step-node-send_welcome_email")).to_have_accessible_name(
        re.compile("Step send_welcome_email: failed")
    )
    expect(node("step-node-create_user")).to_have_attribute("data-state", "SUCCEEDED")
    for step, order in (("add_to_crm", "1st"), ("setup_subscription", "2nd")):
        expect(node(f"step-node-{step}")).to_have_attribute("data-state", "COMPENSATED")
        expect(node(f"comp-node-{step}")).to_have_attribute("data-state", "COMPENSATED")
        expect(node(f"comp-node-{step}")).to_have_accessible_name(
            f"Compensation of {step}: compensated, ran {order}"
        )
    undos = page.locator("[data-testid^='compensation-']")
    expect(undos).to_have_count(2)
    assert [undos.nth(i).get_attribute("data-testid") for i in range(2)] == [
        "compensation-add_to_crm-1",
        "compensation-setup_subscription-1",
    ]
    expect(undos.first).to_contain_text("undo #1")
    page.set_viewport_size({"width": 1280, "height": 1100})  # the header, graph and timeline
    page.screenshot(path=screenshots / "compensated-execution.png")
    crm = page.get_by_test_id("step-detail-add_to_crm")
    crm.locator("summary").click()
    expect(crm).to_contain_text('"email": "ada@example.com"')  # the request as rendered
    expect(crm).to_contain_text("Compensation input")
    expect(page.get_by_test_id("execution-error")).to_contain_text("INVALID_ARGUMENT")
    expect(page.get_by_test_id("event-row-1")).to_contain_text("WORKFLOW_STARTED")
    expect(page.get_by_test_id("workflow-source")).to_contain_text("send_welcome_email")


def test_a_new_execution_appears_without_a_reload_and_turns_green_live(
    console: Console, sagas: dict[str, str], page: Page
) -> None:
    page.goto(console.url)
    expect(page.get_by_test_id(f"execution-row-{sagas['completed']}")).to_be_visible()
    page.evaluate("window.loadedOnce = true")
    console.services.set_faults("email", {"delays": {"SendTemplate": {"seconds": 4}}})
    try:
        new = console.start(console.workflow(), "saga-live")
        row = page.get_by_test_id(f"execution-row-{new}")
        expect(row).to_be_visible()
        row.get_by_role("link", name=new).click()
        email = page.get_by_test_id("step-node-send_welcome_email")
        expect(email).to_have_attribute("data-state", "RUNNING")
        expect(page.get_by_test_id("execution-status")).to_have_attribute("data-state", "RUNNING")
        for step in STEPS:
            expect(page.get_by_test_id(f"step-node-{step}")).to_have_attribute(
                "data-state", "SUCCEEDED"
            )
        expect(email).to_have_accessible_name(re.compile("send_welcome_email: succeeded"))
        expect(page.get_by_test_id("execution-status")).to_have_attribute("data-state", "COMPLETED")
    finally:
        console.services.set_faults("email", {})
    assert page.evaluate("window.loadedOnce") is True, "the page was reloaded"


def test_cancel_from_the_page(console: Console, page: Page) -> None:
    console.services.set_faults("email", {"delays": {"SendTemplate": {"seconds": 60}}})
    try:
        new = console.start(console.workflow(), "saga-cancelled")
        page.goto(f"{console.url}/#/executions/{new}")
        expect(page.get_by_test_id("step-node-send_welcome_email")).to_have_attribute(
            "data-state", "RUNNING"
        )
        page.get_by_test_id("action-cancel").click()
        dialog = page.get_by_test_id("confirm-dialog")
        expect(dialog).to_contain_text("add_to_crm, setup_subscription")
        dialog.get_by_label("Reason").fill("changed my mind")
        dialog.get_by_test_id("confirm").click()
        status = page.get_by_test_id("execution-status")
        expect(status).to_have_attribute("data-state", "CANCELLED")
        expect(status).to_contain_text("cancelled")
        expect(page.get_by_test_id("comp-node-add_to_crm")).to_have_attribute(
            "data-state", "COMPENSATED"
        )
        expect(page.get_by_test_id("execution-error")).to_contain_text("changed my mind")
        expect(page.get_by_test_id("action-cancel")).to_be_disabled()
    finally:
        console.services.set_faults("email", {})


def test_resume_from_the_page(console: Console, page: Page) -> None:
    console.services.set_faults("email", EMAIL_REFUSES)
    console.services.set_faults("crm", {"errors": {"DELETE /contacts": {"code": "HTTP_503"}}})
    try:
        new = console.start(console.workflow(), "saga-stuck")
        console.watch_to_end(new)
    finally:
        console.services.set_faults("email", {})
        console.services.set_faults("crm", {})
    page.goto(f"{console.url}/#/executions/{new}")
    status = page.get_by_test_id("execution-status")
    expect(status).to_have_attribute("data-state", "COMPENSATION_FAILED")
    expect(page.get_by_test_id("comp-node-add_to_crm")).to_have_attribute(
        "data-state", "COMPENSATION_FAILED"
    )
    expect(page.get_by_test_id("action-cancel")).to_be_disabled()
    page.get_by_test_id("action-resume").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("confirm").click()
    expect(status).to_have_attribute("data-state", "COMPENSATED")
    expect(page.get_by_test_id("comp-node-add_to_crm")).to_have_attribute(
        "data-state", "COMPENSATED"
    )
    expect(page.get_by_test_id("action-resume")).to_be_disabled()


def test_a_read_only_token_sees_no_action_and_the_api_refuses_it(
    console: Console, sagas: dict[str, str], browser: Browser
) -> None:
    context = new_context(browser, None)
    page = context.new_page()
    try:
        page.goto(console.url)
        page.get_by_label("Bearer token").fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("sign-in")).to_contain_text("not known")
        page.get_by_label("Bearer token").fill(READ_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("session-role")).to_have_text("read-only")
        page.goto(f"{console.url}/#/executions/{sagas['compensated']}")
        expect(page.get_by_test_id("execution-status")).to_have_attribute(
            "data-state", "COMPENSATED"
        )
        expect(page.get_by_test_id("step-node-send_welcome_email")).to_be_visible()
        expect(page.get_by_role("button", name=re.compile("Cancel|Resume"))).to_have_count(0)
        refused = page.evaluate(
            """async (id) => {
                const r = await fetch('/maestro.v1.Orchestrator/CancelExecution', {
                    method: 'POST',
                    headers: {'Content-Type': 'application/json',
                              'Authorization': 'Bearer ' + sessionStorage.getItem('maestro.token')},
                    body: JSON.stringify({executionId: id})});
                return [r.status, (await r.json()).code];
            }""",
            sagas["completed"],
        )
        assert refused == [403, "permission_denied"]
        page.goto(f"{console.url}/#/workflows/user_onboarding/1.0")
        expect(page.get_by_text("Starting executions needs a token that may act")).to_be_visible()
    finally:
        context.close()


def test_start_a_registered_workflow_with_its_input_checked_at_the_field(
    console: Console, sagas: dict[str, str], page: Page
) -> None:
    page.goto(f"{console.url}/#/workflows")
    page.get_by_role("link", name="user_onboarding").first.click()
    expect(page.get_by_test_id("step-node-add_to_crm")).to_be_visible()
    expect(page.get_by_test_id("comp-node-add_to_crm")).to_be_visible()
    field = page.get_by_label("Input (JSON object)")
    field.fill('{"email": ')
    page.get_by_test_id("action-start").click()
    expect(page.get_by_test_id("start-input-error")).to_contain_text("not JSON")
    expect(field).to_have_attribute("aria-invalid", "true")
    field.fill("[1, 2]")
    page.get_by_test_id("action-start").click()
    expect(page.get_by_test_id("start-input-error")).to_contain_text("must be a JSON object")
    field.fill('{"email": "grace@example.com", "password": "pw", "name": "Grace", "plan": "pro"}')
    page.get_by_label("Execution id (optional)").fill("saga-from-the-page")
    page.get_by_test_id("action-start").click()
    expect(page).to_have_url(re.compile("#/executions/saga-from-the-page$"))
    expect(page.get_by_test_id("execution-status")).to_have_attribute("data-state", "COMPLETED")


def test_validate_shows_each_diagnostic_at_its_line(console: Console, page: Page) -> None:
    page.goto(f"{console.url}/#/validate")
    page.get_by_label("Workflow YAML").fill("name: broken\nversion: '1'\nsteps: []\nbogus: 1\n")
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_test_id("validation-verdict")).to_contain_text("invalid")
    diagnostics = page.get_by_test_id("validation-diagnostic")
    expect(diagnostics.first).to_be_visible()
    expect(page.locator("ol.source li.marked").first).to_be_visible()


def test_phone_sized_screen_has_no_sideways_scrolling(
    console: Console, sagas: dict[str, str], browser: Browser
) -> None:
    context = new_context(browser, ADMIN_TOKEN, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for path in ("", f"#/executions/{sagas['compensated']}"):
            page.goto(f"{console.url}/{path}")
            expect(page.get_by_role("status").or_(page.get_by_role("table")).first).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def test_a_parent_links_its_child_execution_and_the_child_its_parent(
    console: Console, page: Page
) -> None:
    """A sub-workflow step says which workflow it runs and links the child; the child's page
    links back to its parent. Neither was registered: no version is shown, nor linked."""
    crm = console.services.endpoints["crm_service"]
    child = f"name: settle\nservices:\n  crm: {{type: http, endpoint: '{crm}'}}\nsteps:\n"
    child += "  - id: pause\n    sleep: 1ms\n"
    parent = f"name: parent\nservices:\n  crm: {{type: http, endpoint: '{crm}'}}\nsteps:\n"
    parent += "  - id: settle\n    workflow: {file: settle.yaml}\n"
    reply = console.call(
        "StartWorkflow",
        {
            "workflowYaml": parent,
            "files": {"settle.yaml": base64.b64encode(child.encode()).decode()},
            "executionId": "console-parent",
        },
    )
    assert reply.status_code == 200, reply.text
    console.watch_to_end("console-parent")
    page.goto(f"{console.url}/#/executions/console-parent")
    # Started inline, without a version: named, with no version and no link to a definition.
    expect(page.get_by_test_id("execution-workflow")).to_have_text("parent")
    expect(page.get_by_test_id("execution-workflow").get_by_role("link")).to_have_count(0)
    detail = page.get_by_test_id("step-detail-settle")
    detail.locator("summary").click()
    expect(detail).to_contain_text("runs workflow file settle.yaml")
    # What it waits for is its child; the steps it depends on are named apart, none here.
    expect(detail.locator("dt:text-is('Depends on') + dd")).to_have_text("no other step")
    page.get_by_test_id("children-settle").get_by_role("link").click()
    expect(page.get_by_test_id("parent-execution")).to_have_text("console-parent")
