"""The command line imports what a command needs when it runs: `--help` and `validate` start at once.

Each check runs the command in a fresh interpreter and lists the modules it imported; no timing
(bench/startup.py measures that). A new module-level import of a heavy library in the CLI, or
in what `validate` loads, shows up here as the library's name.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "onboarding" / "workflow.yaml"

HEAVY = ("grpc", "google.protobuf", "structlog", "jinja2", "httpx", "aiohttp", "jsonschema",
         "yaml", "psycopg", "aiosqlite", "betterproto2", "prometheus_client", "opentelemetry",
         "maestro_client", "maestro_server.engine", "maestro_server.api",
         "maestro_server.transports", "maestro_server.store", "maestro_server.definition")  # fmt: skip
"""What `maestro --help` must not import."""

NOT_FOR_VALIDATE = ("grpc", "grpc_tools", "httpx", "aiohttp", "jsonschema", "psycopg",
                    "structlog", "betterproto2", "prometheus_client", "opentelemetry", "asyncio",
                    "maestro_client", "maestro_server.engine", "maestro_server.api",
                    "maestro_server.transports", "maestro_server.store")  # fmt: skip
"""What `maestro validate` of a workflow without input_schema, protos or --reflect must not
import: the workflow language (yaml, jinja2, protobuf's descriptors) is all it needs."""

_RUN = """
import json, sys
from maestro_server.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _imported(*arguments: str) -> tuple[int, list[str]]:
    """The exit code of `maestro ARGUMENTS` and every module it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(done.stderr.splitlines()[-1])
    return report["code"], report["modules"]


def _among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted({p for p in packages for m in modules if m == p or m.startswith(p + ".")})


def test_help_imports_no_library_a_command_needs() -> None:
    """`maestro --help` is argparse and the commands' flags: no grpc, protobuf, templates,
    HTTP clients, stores, engine or server."""
    code, modules = _imported("--help")
    assert code == 0
    assert _among(modules, HEAVY) == []


def test_every_command_help_imports_no_library_either() -> None:
    """A command's own --help defines its flags only, however much the command itself needs."""
    for command in ("execute", "serve", "executions", "workflows", "validate", "graph"):
        code, modules = _imported(command, "--help")
        assert code == 0, command
        assert _among(modules, HEAVY) == [], command


def test_validate_imports_the_language_and_nothing_that_calls() -> None:
    """`maestro validate` of the onboarding workflow loads the workflow language only: no
    transport, store, server, engine, SDK, and no jsonschema (the workflow has no input_schema)."""
    code, modules = _imported("validate", str(WORKFLOW))
    assert code == 0
    assert "maestro_server.definition" in modules
    assert _among(modules, NOT_FOR_VALIDATE) == []


def test_validate_with_an_input_schema_still_checks_it() -> None:
    """jsonschema, imported only for a workflow that has an input_schema, still judges it."""
    workflow = "name: w\nservices: {s: {type: http, endpoint: 'http://h:1'}}\n"
    workflow += "steps: [{id: a, service: s, method: GET /x}]\n"
    done = subprocess.run(
        [sys.executable, "-m", "maestro_server", "validate", "/dev/stdin"],
        input=workflow + "input_schema: {type: 7}\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "'input_schema' is not a valid JSON Schema" in done.stderr


def test_the_flags_defaults_are_the_engines() -> None:
    """serve's and execute's --max-for-each-elements default, written out to keep the engine
    out of `--help`, is the engine's own."""
    from maestro_server.cli.serve import DEFAULT_MAX_FOR_EACH_ELEMENTS
    from maestro_server.engine import dependencies

    assert DEFAULT_MAX_FOR_EACH_ELEMENTS == dependencies.DEFAULT_MAX_FOR_EACH_ELEMENTS
    from maestro_server.cli.serve import DEFAULT_MAX_WORKFLOW_DEPTH
    from maestro_server.model import workflow

    assert DEFAULT_MAX_WORKFLOW_DEPTH == workflow.DEFAULT_MAX_WORKFLOW_DEPTH
