"""`maestro serve`: run the Orchestrator gRPC server.

Whoever can call the API can make the server call any endpoint a workflow names, so the server
listens on loopback unless `--host` says otherwise, and will not listen elsewhere without
`--auth-token-file` (or client certificates, `--tls-client-ca`) unless `--insecure` says so.

The server, its stores and structlog are imported when the command runs, not when its flags
are registered: `maestro --help` does not pay for them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro_server.durations import parse_duration
from maestro_server.errors import EXIT_OK, InvalidInputError

if TYPE_CHECKING:
    from maestro_server.api.server import ServerSettings

DEFAULT_SERVER_STORE = "sqlite:///maestro.db"
DEFAULT_MAX_FOR_EACH_ELEMENTS = 1000
"""The engine's default (engine.dependencies), written out: importing the engine to read it
would cost `maestro --help` the engine's imports. tests/test_cli_startup.py keeps them equal."""
DEFAULT_MAX_WORKFLOW_DEPTH = 8
"""The model's default (model.workflow), written out for the same reason."""


def add_parser(commands: Any) -> None:
    """Register the `serve` command."""
    parser = commands.add_parser("serve", help="run the Orchestrator gRPC server")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 or [::] for every interface, "
        "which needs --auth-token-file or --insecure)",
    )
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument(
        "--store",
        default=os.environ.get("MAESTRO_STORE", DEFAULT_SERVER_STORE),
        help=f"where executions live: sqlite:///PATH (default {DEFAULT_SERVER_STORE}, or "
        "$MAESTRO_STORE) or memory",
    )
    parser.add_argument(
        "--workflows", type=Path, metavar="DIR", help="register every workflow YAML in DIR at start"
    )
    parser.add_argument(
        "--max-concurrent-executions",
        type=int,
        default=1000,
        help="start no more executions than this at once (RESOURCE_EXHAUSTED)",
    )
    add_max_elements_flag(parser)
    parser.add_argument(
        "--max-workflow-depth",
        type=int,
        default=DEFAULT_MAX_WORKFLOW_DEPTH,
        metavar="N",
        help="how deep sub-workflows may nest (a top-level execution is 1); a child that "
        f"would nest deeper fails its step (default {DEFAULT_MAX_WORKFLOW_DEPTH})",
    )
    parser.add_argument(
        "--shutdown-grace",
        default="30s",
        help="how long running executions may finish after SIGTERM (e.g. 30s)",
    )
    parser.add_argument(
        "--lease",
        default="15s",
        help="PostgreSQL: how long an execution stays with a replica that stops "
        "renewing (e.g. 15s)",
    )
    parser.add_argument(
        "--retention",
        metavar="AGE",
        help="remove finished executions older than AGE (e.g. 7d); kept forever when not given",
    )
    security = parser.add_argument_group("security")
    security.add_argument("--tls-cert", type=Path, help="server certificate (PEM), with --tls-key")
    security.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    security.add_argument(
        "--tls-client-ca", type=Path, help="require client certificates signed by this CA (mTLS)"
    )
    security.add_argument(
        "--auth-token-file", type=Path, help="bearer tokens, one per line: `TOKEN` or `TOKEN read`"
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="listen on a non-loopback --host without --auth-token-file: anyone who reaches "
        "the port may run workflows",
    )
    security.add_argument(
        "--allow-endpoint",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only workflows whose endpoints match one of these globs "
        "(repeatable; e.g. '*.svc.cluster.local:*')",
    )
    security.add_argument(
        "--secrets-dir",
        type=Path,
        help="files whose names templates read as {{ .secrets.NAME }} "
        "(besides MAESTRO_SECRET_NAME variables)",
    )
    parser.add_argument(
        "--validate-with-reflection",
        action="store_true",
        help="check workflows at registration against the schemas their gRPC services give "
        "by server reflection (services without descriptor_set or protos)",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="SERVICE=ADDRESS",
        help="call the service of this name at ADDRESS in every workflow that has one "
        "(repeatable); kept with each execution, so a resume calls the same address",
    )
    parser.add_argument(
        "--endpoint-file",
        type=Path,
        metavar="FILE",
        help="more SERVICE=ADDRESS pairs, one per line (# starts a comment)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on PORT at /metrics (0 picks a free one)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="serve the API over HTTP/JSON (Connect), /healthz, /readyz and the web console "
        "on PORT (0 picks a free one); off when not given",
    )
    parser.add_argument("--log-format", choices=("json", "console"), default="console")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="DEBUG, INFO (default), WARNING or ERROR; --debug: DEBUG",
    )
    parser.set_defaults(run=run_serve)


def add_max_elements_flag(parser: argparse.ArgumentParser) -> None:
    """`--max-for-each-elements`, shared by `serve` and `execute`."""
    parser.add_argument(
        "--max-for-each-elements",
        type=int,
        default=DEFAULT_MAX_FOR_EACH_ELEMENTS,
        metavar="N",
        help="the longest list a for_each step may run over; a longer one fails the step "
        f"before any call (default {DEFAULT_MAX_FOR_EACH_ELEMENTS})",
    )


def check_max_elements(args: argparse.Namespace) -> None:
    """Refuse a `--max-for-each-elements` below 1."""
    if args.max_for_each_elements < 1:
        raise InvalidInputError("--max-for-each-elements must be at least 1")


def _seconds(text: str, flag: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except (ValueError, OverflowError):
        raise InvalidInputError(f"{flag} wants a duration such as 30s, not {text!r}") from None


def _endpoints(args: argparse.Namespace) -> dict[str, str]:
    """The --endpoint-file's pairs, then the --endpoint flags' (which win)."""
    from maestro_server.definition.endpoint_map import parse_endpoints, read_endpoint_file

    endpoints = read_endpoint_file(args.endpoint_file) if args.endpoint_file else {}
    return endpoints | parse_endpoints(args.endpoint)


def exposure_warning(args: argparse.Namespace) -> str | None:
    """Refuse an open API off loopback; the one-line warning when `--insecure` allows it."""
    from maestro_server.model.addresses import is_loopback_host

    if is_loopback_host(args.host) or args.auth_token_file or args.tls_client_ca:
        return None
    if not args.insecure:
        raise InvalidInputError(
            f"--host {args.host} is not a loopback address: give --auth-token-file (or "
            "--tls-client-ca), or --insecure to let anyone who reaches the port run workflows"
        )
    return (
        f"insecure: listening on {args.host} without authentication; anyone who reaches the "
        "port may run workflows and make this server call their endpoints"
    )


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then drain."""
    import asyncio

    import structlog

    from maestro_server.api.auth import load_tokens
    from maestro_server.api.server import ServerSettings
    from maestro_server.definition.admission import AdmissionPolicy
    from maestro_server.logs import configure_logging

    level = "DEBUG" if args.debug else args.log_level.upper()
    configure_logging(level=level, json=args.log_format == "json")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidInputError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise InvalidInputError("--tls-client-ca needs --tls-cert and --tls-key")
    if args.max_concurrent_executions < 1:
        raise InvalidInputError("--max-concurrent-executions must be at least 1")
    check_max_elements(args)
    if args.max_workflow_depth < 1:
        raise InvalidInputError("--max-workflow-depth must be at least 1")
    warning = exposure_warning(args)
    if warning is not None:
        structlog.get_logger("maestro.server").warning(warning)
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        max_concurrent_executions=args.max_concurrent_executions,
        max_for_each_elements=args.max_for_each_elements,
        max_workflow_depth=args.max_workflow_depth,
        shutdown_grace=_seconds(args.shutdown_grace, "--shutdown-grace"),
        workflows_dir=args.workflows,
        policy=AdmissionPolicy(tuple(args.allow_endpoint)),
        secrets_dir=args.secrets_dir,
        auth_tokens=load_tokens(args.auth_token_file) if args.auth_token_file else None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        metrics_port=args.metrics_port,
        http_port=args.http_port,
        validate_with_reflection=args.validate_with_reflection,
        lease_interval=_seconds(args.lease, "--lease") / 3,
        retention=_seconds(args.retention, "--retention") if args.retention else None,
        endpoints=_endpoints(args),
    )
    asyncio.run(_serve(settings, args.store, _seconds(args.lease, "--lease")))
    return EXIT_OK


async def _serve(settings: ServerSettings, store_url: str, lease: float) -> None:
    from maestro_server import heap
    from maestro_server.api.server import OrchestratorServer
    from maestro_server.store.open import close_store, open_store

    # grpc.aio objects belong to the loop they are made in: make them inside it.
    store = await open_store(store_url, lease=lease)
    try:
        server = OrchestratorServer(settings, store)
        heap.settle()  # everything is imported and built: it lives as long as the process
        await server.serve_until_signalled()
    finally:
        await close_store(store)
