"""The Orchestrator over HTTP (Connect): every RPC as curl-style JSON or through a Connect client,
errors with the same codes and details as gRPC, the same tokens, the probes, a clean drain."""

import base64
import json
import shutil
import signal
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import trustme
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_json_codec
from connectrpc.errors import ConnectError
from google.rpc import error_details_pb2, status_pb2

from maestro_server._proto.maestro.v1 import orchestrator_connect
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as pb_grpc
from maestro_server.api.http.connect import SHUTTING_DOWN
from tests.api.conftest import INPUT, ServerProcess, maestro_serve, onboarding_yaml
from tests.api.test_security import tls_files
from tests.conftest import ROOT

ADMIN = "http-admin-token"
READER = "http-read-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def http_port(server: ServerProcess) -> int:
    serving: dict[str, Any] = next(e for e in server.log if e["event"] == "serving")
    return int(serving["http_port"])


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("http") / "tokens"
    path.write_text(f"{ADMIN}\n{READER} read\n")
    return path


@pytest.fixture(scope="module")
def served(tokens: Path) -> Iterator[ServerProcess]:
    with maestro_serve("--http-port", "0", "--auth-token-file", str(tokens)) as server:
        yield server


@pytest.fixture
def url(served: ServerProcess) -> str:
    return f"http://127.0.0.1:{http_port(served)}"


def call(url: str, method: str, body: dict[str, Any], token: str | None = ADMIN) -> httpx.Response:
    """A unary RPC as curl sends it: a JSON POST."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/maestro.v1.Orchestrator/{method}", json=body, headers=headers)


@pytest.fixture
async def client(url: str) -> AsyncIterator[orchestrator_connect.OrchestratorClient]:
    """connectrpc's own client, speaking Connect with the JSON codec."""
    async with orchestrator_connect.OrchestratorClient(
        url, codec=google_protobuf_json_codec()
    ) as connect:
        yield connect


def test_unary_rpcs_as_curl_style_json(url: str, service_processes: dict[str, str]) -> None:
    """Validate, register, get and list workflows; start, get, list, cancel and resume
    executions: all as JSON in, JSON out (lowerCamelCase, enums by name)."""
    yaml = onboarding_yaml(service_processes)
    validated = call(url, "ValidateWorkflow", {"workflowYaml": yaml})
    assert validated.status_code == 200
    assert validated.json()["valid"] is True
    assert [s["stepId"] for s in validated.json()["steps"]][-1] == "send_welcome_email"

    registered = call(url, "RegisterWorkflow", {"workflowYaml": yaml}).json()["workflow"]
    assert (registered["name"], registered["version"]) == ("user_onboarding", "1.0")
    fetched = call(url, "GetWorkflow", {"name": "user_onboarding"}).json()["workflow"]
    assert fetched["workflowYaml"] == yaml
    crm = next(s for s in fetched["steps"] if s["stepId"] == "add_to_crm")
    assert crm["dependsOn"] == ["setup_subscription"]
    assert crm["compensation"] == {
        "service": "crm_service",
        "method": "DELETE /contacts/{{ .crm_contact.id }}",
    }
    listed = call(url, "ListWorkflows", {}).json()["workflows"]
    assert [w["name"] for w in listed] == ["user_onboarding"]

    reference = {"name": "user_onboarding", "version": "1.0"}
    started = call(
        url, "StartWorkflow", {"reference": reference, "input": INPUT, "executionId": "http-1"}
    ).json()
    assert started == {"executionId": "http-1", "created": True}
    execution = call(url, "GetExecution", {"executionId": "http-1"}).json()["execution"]
    assert execution["workflowName"] == "user_onboarding"
    assert execution["workflowYaml"] == yaml
    assert [s["stepId"] for s in execution["graph"]] == [s["stepId"] for s in fetched["steps"]]
    page = call(url, "ListExecutions", {"workflowName": "user_onboarding", "pageSize": 10})
    assert "http-1" in [e["executionId"] for e in page.json()["executions"]]

    refused = call(url, "ResumeExecution", {"executionId": "http-1"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "failed_precondition"
    cancelled = call(url, "CancelExecution", {"executionId": "http-1", "reason": "test"})
    assert cancelled.status_code in (200, 400)  # it may have finished already
    if cancelled.status_code == 400:
        assert cancelled.json()["code"] == "failed_precondition"


async def test_streams_through_a_connect_client(
    client: orchestrator_connect.OrchestratorClient, service_processes: dict[str, str]
) -> None:
    """ExecuteWorkflow streams every event to the terminal one; WatchExecution replays the log
    after a sequence; both with the bearer token as a header."""
    request = pb.ExecuteWorkflowRequest(
        workflow_yaml=onboarding_yaml(service_processes), execution_id="http-stream"
    )
    request.input.update(INPUT)
    events = [r.event async for r in client.execute_workflow(request, headers=AUTH)]
    assert [e.sequence for e in events] == list(range(1, 11))
    assert events[-1].type == pb.EVENT_TYPE_WORKFLOW_COMPLETED
    watched = [
        r.event
        async for r in client.watch_execution(
            pb.WatchExecutionRequest(execution_id="http-stream", after_sequence=7), headers=AUTH
        )
    ]
    assert [e.sequence for e in watched] == [8, 9, 10]
    assert watched == events[7:]
    got = await client.get_execution(
        pb.GetExecutionRequest(execution_id="http-stream"), headers=AUTH
    )
    steps = {s.step_id: s for s in got.execution.steps}
    assert steps["create_user"].input["email"] == INPUT["email"]  # as rendered and sent
    assert not steps["add_to_crm"].HasField("compensation_input")  # nothing was undone


async def test_stream_errors_and_refusals_end_the_stream_with_their_code(
    client: orchestrator_connect.OrchestratorClient,
) -> None:
    missing = pb.WatchExecutionRequest(execution_id="nope")
    with pytest.raises(ConnectError) as caught:
        _ = [r async for r in client.watch_execution(missing, headers=AUTH)]
    assert caught.value.code is Code.NOT_FOUND
    with pytest.raises(ConnectError) as caught:
        _ = [r async for r in client.watch_execution(missing)]
    assert caught.value.code is Code.UNAUTHENTICATED
    reader = {"Authorization": f"Bearer {READER}"}
    with pytest.raises(ConnectError) as caught:
        _ = [r async for r in client.execute_workflow(pb.ExecuteWorkflowRequest(), headers=reader)]
    assert caught.value.code is Code.PERMISSION_DENIED


def _grpc_details(error: grpc.aio.AioRpcError) -> list[tuple[str, bytes]]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            rich = status_pb2.Status.FromString(value)
            return [
                (d.type_url.removeprefix("type.googleapis.com/"), d.value) for d in rich.details
            ]
    return []


def _connect_details(body: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [
        (d["type"], base64.b64decode(d["value"] + "=" * (-len(d["value"]) % 4)))
        for d in body.get("details", [])
    ]


async def test_errors_have_the_grpc_code_message_and_details(
    url: str, served: ServerProcess
) -> None:
    """The same request refused over both faces: the Connect code is the gRPC code's name, with
    the same message and the same rich details (BadRequest with one violation per problem)."""
    bad = "name: w\nversion: '1'\nservices: {}\nsteps: []\nbogus: 1\n"
    async with grpc.aio.insecure_channel(served.address) as channel:
        stub = pb_grpc.OrchestratorStub(channel)
        cases: list[tuple[str, dict[str, Any], Any]] = [
            ("StartWorkflow", {"workflowYaml": bad}, pb.StartWorkflowRequest(workflow_yaml=bad)),
            ("GetExecution", {"executionId": "nope"}, pb.GetExecutionRequest(execution_id="nope")),
            ("GetWorkflow", {"name": "nope"}, pb.GetWorkflowRequest(name="nope")),
            ("ListExecutions", {"pageSize": 5000}, pb.ListExecutionsRequest(page_size=5000)),
        ]
        for method, body, message in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await getattr(stub, method)(
                    message, metadata=(("authorization", AUTH["Authorization"]),)
                )
            reply = call(url, method, body)
            answer = reply.json()
            assert answer["code"] == caught.value.code().name.lower(), method
            assert answer["message"] == caught.value.details(), method
            assert _connect_details(answer) == _grpc_details(caught.value), method
    status = call(url, "StartWorkflow", {"workflowYaml": bad})
    assert status.status_code == 400
    (kind, value), *_ = _connect_details(status.json())
    violations = error_details_pb2.BadRequest.FromString(value).field_violations
    assert kind == "google.rpc.BadRequest" and len(violations) >= 1
    assert call(url, "GetExecution", {"executionId": "nope"}).status_code == 404


def test_bad_json_and_unknown_fields_are_invalid_argument(url: str) -> None:
    """A misspelt field is refused rather than ignored; so is a body that is not JSON."""
    misspelt = call(url, "GetExecution", {"executionID": "x"})
    assert (misspelt.status_code, misspelt.json()["code"]) == (400, "invalid_argument")
    broken = httpx.post(
        f"{url}/maestro.v1.Orchestrator/GetExecution",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_argument")


def test_tokens_and_roles_apply_and_probes_stay_open(url: str) -> None:
    none = call(url, "ListExecutions", {}, token=None)
    assert (none.status_code, none.json()["code"]) == (401, "unauthenticated")
    wrong = call(url, "ListExecutions", {}, token="wrong")
    assert wrong.status_code == 401
    assert call(url, "ListExecutions", {}, token=READER).status_code == 200
    refused = call(url, "CancelExecution", {"executionId": "x"}, token=READER)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").text == "ready\n"
    console = httpx.get(f"{url}/")
    assert console.status_code == 200 and "Maestro console" in console.text
    assert "default-src 'self'" in console.headers["content-security-policy"]
    again = httpx.get(f"{url}/", headers={"If-None-Match": console.headers["etag"]})
    assert again.status_code == 304
    assert (
        httpx.get(f"{url}/assets/js/app.js").headers["content-type"].startswith("text/javascript")
    )
    assert httpx.get(f"{url}/nothing").status_code == 404
    assert httpx.get(f"{url}/console/session").json() == {"authRequired": True, "role": None}
    session = httpx.get(f"{url}/console/session", headers={"Authorization": f"Bearer {READER}"})
    assert session.json() == {"authRequired": True, "role": "read"}


@pytest.mark.skipif(shutil.which("buf", path=str(ROOT / ".venv" / "bin")) is None, reason="no buf")
def test_buf_curl_speaks_connect(url: str) -> None:
    """`buf curl --protocol connect` with the schema from proto/, as the README shows."""
    buf = shutil.which("buf", path=str(ROOT / ".venv" / "bin"))
    assert buf is not None
    result = subprocess.run(
        [
            buf,
            "curl",
            "--schema",
            "proto",
            "--protocol",
            "connect",
            "-H",
            f"Authorization: Bearer {READER}",
            "-d",
            '{"executionId": "nope"}',
            f"{url}/maestro.v1.Orchestrator/GetExecution",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 8 * grpc.StatusCode.NOT_FOUND.value[0], result.stderr
    assert json.loads(result.stderr)["code"] == "not_found"


def test_a_drain_ends_open_streams_unavailable(
    tokens: Path, service_processes: dict[str, str]
) -> None:
    """SIGTERM: /readyz turns 503 at once, an open WatchExecution ends with `unavailable` (the
    client resumes elsewhere after its last sequence), and the process exits 0."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")  # 0.4 s > the grace
    with maestro_serve(
        "--http-port", "0", "--auth-token-file", str(tokens), "--shutdown-grace", "0.2s"
    ) as server:
        url = f"http://127.0.0.1:{http_port(server)}"
        started = call(url, "StartWorkflow", {"workflowYaml": yaml, "input": INPUT})
        execution_id = started.json()["executionId"]
        body = json.dumps({"executionId": execution_id}).encode()
        with httpx.stream(
            "POST",
            f"{url}/maestro.v1.Orchestrator/WatchExecution",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={**AUTH, "Content-Type": "application/connect+json"},
            timeout=30,
        ) as stream:
            chunks = stream.iter_bytes()
            first = next(chunks)  # the stream is open and has its first event
            assert first[0] == 0
            server.process.send_signal(signal.SIGTERM)
            rest = first + b"".join(chunks)
        frames = []
        while rest:
            flags, length = struct.unpack(">BI", rest[:5])
            frames.append((flags, json.loads(rest[5 : 5 + length])))
            rest = rest[5 + length :]
        assert frames[-1] == (2, {"error": {"code": "unavailable", "message": SHUTTING_DOWN}})
        assert server.process.wait(timeout=60) == 0


CONNECT_WEB = Path(__file__).parent / "connect-web"


def test_connect_web_reads_the_stream(
    url: str, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """@connectrpc/connect-web, the browsers' Connect client, gets an execution and streams
    WatchExecution to the terminal event (in Node.js, whose fetch it uses as a browser's)."""
    assert (CONNECT_WEB / "node_modules").is_dir(), "run `make install` (npm ci of connect-web)"
    descriptors = tmp_path / "orchestrator.binpb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            "--include_imports",
            f"--descriptor_set_out={descriptors}",
            "maestro/v1/orchestrator.proto",
        ],
        cwd=ROOT,
        check=True,
    )
    yaml = onboarding_yaml(service_processes)
    started = call(url, "StartWorkflow", {"workflowYaml": yaml, "input": INPUT})
    execution_id = started.json()["executionId"]

    def connect_web(execution: str) -> list[dict[str, Any]]:
        result = subprocess.run(
            ["node", "watch.mjs", url, str(descriptors), ADMIN, execution],
            cwd=CONNECT_WEB,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [json.loads(line) for line in result.stdout.splitlines()]

    got, *watched = connect_web(execution_id)
    assert got["execution"]["executionId"] == execution_id
    events = [w["event"] for w in watched]
    assert [int(e["sequence"]) for e in events] == list(range(1, 11))
    assert events[-1]["type"] == "EVENT_TYPE_WORKFLOW_COMPLETED"
    assert connect_web("nope") == [
        {"error": {"code": "NotFound", "message": "execution 'nope' does not exist"}}
    ]


def test_a_stored_definition_the_policy_now_refuses_still_reads(tokens: Path) -> None:
    """Registered from --workflows before --allow-endpoint would let it in: GetWorkflow still
    answers (without a graph) rather than failing."""
    with maestro_serve(
        "--http-port",
        "0",
        "--auth-token-file",
        str(tokens),
        "--workflows",
        str(ROOT / "examples" / "onboarding"),
        "--allow-endpoint",
        "*.example.internal:*",
    ) as server:
        url = f"http://127.0.0.1:{http_port(server)}"
        reply = call(url, "GetWorkflow", {"name": "user_onboarding"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["workflow"]["workflowYaml"].startswith("#")
        assert "steps" not in reply.json()["workflow"]


def test_tls_applies_to_the_http_face(tmp_path: Path) -> None:
    """--tls-cert and --tls-key secure the HTTP port as they do the gRPC one."""
    authority = trustme.CA()
    files = tls_files(authority, tmp_path)
    with maestro_serve(
        "--http-port", "0", "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])
    ) as server:
        port = http_port(server)
        trusted = ssl.create_default_context(cafile=str(files["ca"]))
        assert httpx.get(f"https://127.0.0.1:{port}/readyz", verify=trusted).text == "ready\n"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/readyz")
