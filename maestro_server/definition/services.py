"""The `services` block of a workflow → `Service`s: type, endpoint, headers, TLS, schema files."""

from __future__ import annotations

import re

from yaml.nodes import Node

from maestro_server.definition.files import WorkflowFiles
from maestro_server.definition.headers import check_headers
from maestro_server.definition.policies import read_breaker, read_retry, read_tls
from maestro_server.definition.reader import IDENTIFIER, Pairs, Reader
from maestro_server.definition.validate import Scope
from maestro_server.definition.value_compiler import ValueCompiler
from maestro_server.model.workflow import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    Service,
    ServiceType,
)
from maestro_server.templating.values import CompiledValue

SERVICE_KEYS = (
    "type",
    "endpoint",
    "timeout",
    "retry",
    "circuit_breaker",
    "headers",
    "tls",
    "descriptor_set",
    "protos",
    "import_paths",
)

_GRPC_ENDPOINT = re.compile(
    r"(?:dns:///)?(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})"
)
_HTTP_ENDPOINT = re.compile(
    r"https?://(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::[0-9]{1,5})?(?:/\S*)?"
)


class ServiceReader:
    """Reads the services of one workflow, its files through `files`."""

    def __init__(self, reader: Reader, files: WorkflowFiles, values: ValueCompiler) -> None:
        self.reader = reader
        self.files = files
        self.values = values

    def services(self, node: Node) -> dict[str, Service]:
        """Every well-formed service by name; the others are reported."""
        r = self.reader
        pairs = r.mapping(node, "services", "'services'")
        services: dict[str, Service] = {}
        for name, (key, value) in (pairs or {}).items():
            if not IDENTIFIER.fullmatch(name):
                r.error(
                    key,
                    f"services.{name}",
                    "bad-name",
                    f"service name '{name}' must start with a letter and hold only letters, "
                    "digits, '_' and '-'",
                )
            service = self._service(name, value, f"services.{name}")
            if service is not None:
                services[name] = service
        if pairs is not None and not pairs:
            r.error(node, "services", "empty", "'services' is empty: name at least one service")
        return services

    def _service(self, name: str, node: Node, path: str) -> Service | None:
        r = self.reader
        what = f"service '{name}'"
        pairs = r.mapping(node, path, what, SERVICE_KEYS)
        if pairs is None or not r.require(pairs, node, path, what, "type", "endpoint"):
            return None
        type_text = r.string(pairs["type"][1], f"{path}.type", "'type'")
        if type_text not in ("grpc", "http"):
            if type_text is not None:
                r.error(
                    pairs["type"][1],
                    f"{path}.type",
                    "bad-value",
                    f"'type' must be grpc or http, not '{type_text}'",
                )
            return None
        kind = ServiceType(type_text)
        endpoint = r.string(pairs["endpoint"][1], f"{path}.endpoint", "'endpoint'") or ""
        pattern = _GRPC_ENDPOINT if kind is ServiceType.GRPC else _HTTP_ENDPOINT
        match = pattern.fullmatch(endpoint)
        if endpoint and (match is None or int(match.groupdict().get("port") or 1) > 65535):
            form = "host:port" if kind is ServiceType.GRPC else "http://host[:port] or https://…"
            r.error(
                pairs["endpoint"][1],
                f"{path}.endpoint",
                "bad-endpoint",
                f"{kind} endpoint must be {form}, not '{endpoint}'",
            )
        headers: dict[str, CompiledValue] = {}
        if "headers" in pairs:
            check_headers(r, pairs["headers"][1], f"{path}.headers", kind)
            for header, (_, value) in (
                r.mapping(pairs["headers"][1], f"{path}.headers", "'headers'") or {}
            ).items():
                compiled = self.values.value(
                    value, f"{path}.headers.{header}", None, Scope.SERVICE, f"headers.{header}"
                )
                if compiled is not None:
                    headers[header.lower() if kind is ServiceType.GRPC else header] = compiled
        descriptor_set, protos, import_paths, used = self._schema_source(pairs, path, kind)
        tls = read_tls(r, pairs, path)
        ca_file = tls.ca_file if tls is not None else None
        if ca_file is not None and self.files.read(pairs["tls"][1], f"{path}.tls.ca_file", ca_file):
            used.append(ca_file)
        return Service(
            name=name,
            type=kind,
            endpoint=endpoint,
            location=r.location(node),
            endpoint_location=r.location(pairs["endpoint"][1]),
            timeout=r.get(pairs, "timeout", r.duration, f"{path}.timeout") or DEFAULT_TIMEOUT,
            retry=read_retry(r, pairs, path, DEFAULT_RETRY),
            circuit_breaker=read_breaker(r, pairs, path),
            headers=headers,
            tls=tls,
            descriptor_set=descriptor_set,
            protos=protos,
            import_paths=import_paths,
            files={name: self.files.files[name] for name in used},
        )

    def _schema_source(
        self, pairs: Pairs, path: str, kind: ServiceType
    ) -> tuple[str | None, tuple[str, ...], tuple[str, ...], list[str]]:
        """Where a grpc service's schema comes from: descriptor set, .proto files or reflection."""
        r = self.reader
        present = [key for key in ("descriptor_set", "protos", "import_paths") if key in pairs]
        if kind is ServiceType.HTTP:
            for key in present:
                message = f"'{key}' applies to grpc services only"
                r.error(pairs[key][0], f"{path}.{key}", "grpc-only", message)
            return None, (), (), []
        if "descriptor_set" in pairs and "protos" in pairs:
            message = "give either 'descriptor_set' or 'protos', not both"
            r.error(pairs["protos"][0], f"{path}.protos", "conflict", message)
        if "import_paths" in pairs and "protos" not in pairs:
            message = "'import_paths' needs 'protos'"
            r.error(pairs["import_paths"][0], f"{path}.import_paths", "conflict", message)
        descriptor_set = None
        if "descriptor_set" in pairs:
            descriptor_set = self.files.read(pairs["descriptor_set"][1], f"{path}.descriptor_set")
        listed = r.get(pairs, "protos", r.string_list, f"{path}.protos") or []
        paths = tuple(
            text
            for text, item in r.get(pairs, "import_paths", r.string_list, f"{path}.import_paths")
            or []
            if self.files.inside(item, f"{path}.import_paths", text)
        )
        protos = []
        used = [descriptor_set] if descriptor_set else []
        for text, item in listed:
            if self.files.read(item, f"{path}.protos", text):
                protos.append(text)
                used += [text, *self.files.proto_imports(text, paths, item, f"{path}.protos")]
        return descriptor_set, tuple(protos), paths, used


def endpoint_form_problem(kind: ServiceType, endpoint: str) -> str | None:
    """Why an endpoint does not fit a service of this type; None when it does."""
    pattern = _GRPC_ENDPOINT if kind is ServiceType.GRPC else _HTTP_ENDPOINT
    match = pattern.fullmatch(endpoint)
    if match is not None and int(match.groupdict().get("port") or 1) <= 65535:
        return None
    form = "host:port" if kind is ServiceType.GRPC else "http://host[:port] or https://…"
    return f"{kind} endpoint must be {form}, not '{endpoint}'"
