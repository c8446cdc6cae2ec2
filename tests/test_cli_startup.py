"""The command line imports what a command needs when it runs: `--help` and `validate` start at once.

Each check runs the command in a fresh interpreter and lists the modules it imported; no timing
(bench/startup.py measures that). A new module-level import of a heavy library in the CLI, or
in what `validate` or `execute` loads, shows up here as the library's name. The process also
ends without tearing the interpreter down (cli/main.py's `_end_process`): checked last.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "onboarding" / "workflow.yaml"
EMAIL = "cli-startup@example.com"

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

NOT_FOR_EXECUTE = ("prometheus_client", "opentelemetry", "jsonschema", "psycopg", "aiosqlite",
                   "click", "pygments", "grpc_tools.protoc",
                   "maestro_client", "maestro_server.api", "maestro_server._proto",
                   "maestro_server.metrics", "maestro_server.store.open",
                   "maestro_server.store.sqlite", "maestro_server.store.postgres")  # fmt: skip
"""What `maestro execute` of the onboarding workflow (no input_schema, no tracing configured)
must not import: metrics are served by `serve` only, a run in this process keeps nothing (no
store), an input is checked on a plain Struct (not the API's messages), and httpx's command
line is left out (transports/http_libraries.py)."""

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


def test_execute_imports_what_runs_the_workflow_and_no_more(endpoints: list[str]) -> None:
    """`maestro execute` of the onboarding workflow against its services: the engine and both
    transports, but no metrics, tracing, store, API messages or SDK."""
    data = json.dumps({**json.loads((WORKFLOW.parent / "input.json").read_text()), "email": EMAIL})
    code, modules = _imported("execute", str(WORKFLOW), "--input", data, *endpoints)
    assert code == 0
    assert {"maestro_server.engine.runner", "grpc", "aiohttp", "httpx"} <= set(modules)
    assert _among(modules, NOT_FOR_EXECUTE) == []


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


_EXIT = """
import atexit, sys
atexit.register(lambda: print("exit function ran", file=sys.stderr))
sys.argv = ["maestro", *sys.argv[1:]]
from maestro_server.cli.main import main
main()
"""


def test_the_process_ends_as_shutdown_would_end_it() -> None:
    """`maestro` ends the process itself once a command has run: same output and exit code,
    and functions registered with atexit (logging's flush, a tracer's exporter) still run."""
    for arguments, code in (([str(WORKFLOW)], 0), (["/nonexistent.yaml"], 1)):
        done = subprocess.run(
            [sys.executable, "-c", _EXIT, "validate", *arguments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == code, done.stderr
        assert done.stderr.endswith("exit function ran\n")
        assert (done.stdout if code == 0 else done.stderr).startswith(arguments[0])
