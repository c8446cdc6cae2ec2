"""YAML → `Workflow`: reads every part, then cross-checks the whole (see validate.py).

Every problem becomes a diagnostic with its file:line:column; all of them are reported at once
in one InvalidWorkflowError, sorted by position.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
from yaml.nodes import MappingNode, Node, SequenceNode

from maestro_server.definition.headers import check_headers
from maestro_server.definition.http_paths import read_http_path
from maestro_server.definition.loader import STR_TAG, compose, decode
from maestro_server.definition.policies import read_breaker, read_retry, read_tls
from maestro_server.definition.reader import Pairs, Reader, did_you_mean, find_node
from maestro_server.definition.template_rules import check_template
from maestro_server.definition.validate import Scope, TemplateSite, validate
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    Compensation,
    GrpcMethod,
    HttpMethod,
    Method,
    Service,
    ServiceType,
    Step,
    Workflow,
)
from maestro_server.templating.values import (
    CompiledValue,
    Literal,
    MappingValue,
    SequenceValue,
    Template,
    TemplateSyntaxError,
    compile_template,
    is_template,
)

WORKFLOW_KEYS = (
    "name",
    "version",
    "description",
    "services",
    "steps",
    "output",
    "input_schema",
    "timeout",
)
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
STEP_KEYS = (
    "id",
    "service",
    "method",
    "input",
    "output",
    "compensate",
    "retry",
    "timeout",
    "when",
    "depends_on",
    "continue_on_error",
)
COMPENSATE_KEYS = ("service", "method", "input", "retry", "timeout")
HTTP_VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
_GRPC_METHOD = re.compile(
    r"(?:(?P<service>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)/)?"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)
_GRPC_ENDPOINT = re.compile(
    r"(?:dns:///)?(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})"
)
_HTTP_ENDPOINT = re.compile(
    r"https?://(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::[0-9]{1,5})?(?:/\S*)?"
)

FileReader = Callable[[str], bytes | None]
"""Returns the bytes of a file the workflow names (relative path), or None when it is missing."""


def load_workflow(
    source: str | bytes,
    *,
    path: str = "workflow.yaml",
    files: Mapping[str, bytes] | None = None,
    read_file: FileReader | None = None,
) -> Workflow:
    """Parse and validate a workflow; raises InvalidWorkflowError listing every problem.

    Files the workflow names (descriptor sets, .proto files) are looked up in `files` first,
    then through `read_file`.
    """
    text = decode(source, path) if isinstance(source, bytes) else source
    provided = dict(files or {})

    def lookup(name: str) -> bytes | None:
        if name in provided:
            return provided[name]
        return read_file(name) if read_file is not None else None

    parser = _Parser(path, lookup)
    workflow = parser.workflow(compose(text, path), text)
    if parser.reader.diagnostics or workflow is None:
        diagnostics = sorted(
            parser.reader.diagnostics,
            key=lambda d: (d.location.line, d.location.column, d.message),
        )
        raise InvalidWorkflowError(diagnostics)
    return workflow


def load_workflow_file(path: str | Path) -> Workflow:
    """Read a workflow file; files it names are read relative to its folder."""
    file = Path(path)
    folder = file.parent

    def read_file(name: str) -> bytes | None:
        candidate = folder / name
        return candidate.read_bytes() if candidate.is_file() else None

    return load_workflow(file.read_bytes(), path=str(path), read_file=read_file)


class _Parser:
    def __init__(self, path: str, lookup: FileReader) -> None:
        self.reader = Reader(path)
        self.lookup = lookup
        self.files: dict[str, bytes] = {}
        self.sites: list[TemplateSite] = []
        self.text = ""

    # -- workflow ----------------------------------------------------------------------------

    def workflow(self, root: Node, text: str) -> Workflow | None:
        r = self.reader
        self.text = text
        pairs = r.mapping(root, "", "the workflow", WORKFLOW_KEYS, extensions=True)
        if pairs is None:
            return None
        r.require(pairs, root, "", "the workflow", "name", "services", "steps")
        name = self.reader.get(pairs, "name", r.string, "name") or ""
        if name and not _ID.fullmatch(name):
            r.error(
                pairs["name"][1],
                "name",
                "bad-name",
                f"workflow name '{name}' must start with a letter and hold only letters, "
                "digits, '_' and '-' (at most 128)",
            )
        version = self.reader.get(pairs, "version", r.string, "version") or ""
        description = self.reader.get(pairs, "description", r.string, "description") or ""
        timeout = self.reader.get(pairs, "timeout", r.duration, "timeout")
        services = self._services(pairs["services"][1]) if "services" in pairs else {}
        steps = self._steps(pairs["steps"][1], services) if "steps" in pairs else []
        output = None
        if "output" in pairs:
            output = self._value(
                pairs["output"][1], "output", None, Scope.WORKFLOW_OUTPUT, "output"
            )
        input_schema = (
            self._input_schema(pairs["input_schema"][1]) if "input_schema" in pairs else None
        )
        validate(r, steps, services, self.sites)
        if r.diagnostics:
            return None
        return Workflow(
            name=name,
            version=version,
            description=description,
            services=services,
            steps=tuple(step for step, _ in steps),
            path=r.path,
            source=text,
            files=dict(sorted(self.files.items())),
            hash=_hash(text, self.files),
            output=output,
            input_schema=input_schema,
            timeout=timeout,
        )

    def _input_schema(self, node: Node) -> dict[str, Any] | None:
        schema = self.reader.data(node, "input_schema")
        if not isinstance(schema, dict):
            self.reader.error(
                node, "input_schema", "wrong-type", "'input_schema' must be a mapping"
            )
            return None
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = find_node(node, list(exc.path))
            self.reader.error(
                where,
                "input_schema",
                "bad-schema",
                f"'input_schema' is not a valid JSON Schema: {exc.message}",
            )
            return None
        return schema

    # -- services ----------------------------------------------------------------------------

    def _services(self, node: Node) -> dict[str, Service]:
        r = self.reader
        pairs = r.mapping(node, "services", "'services'")
        services: dict[str, Service] = {}
        for name, (key, value) in (pairs or {}).items():
            if not _ID.fullmatch(name):
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
                compiled = self._value(
                    value, f"{path}.headers.{header}", None, Scope.SERVICE, f"headers.{header}"
                )
                if compiled is not None:
                    headers[header.lower() if kind is ServiceType.GRPC else header] = compiled
        descriptor_set, protos, import_paths, used = self._schema_source(pairs, path, kind)
        tls = read_tls(self.reader, pairs, path)
        ca_file = tls.ca_file if tls is not None else None
        if ca_file is not None and self._file(pairs["tls"][1], f"{path}.tls.ca_file", ca_file):
            used.append(ca_file)
        return Service(
            name=name,
            type=kind,
            endpoint=endpoint,
            location=r.location(node),
            endpoint_location=r.location(pairs["endpoint"][1]),
            timeout=self.reader.get(pairs, "timeout", r.duration, f"{path}.timeout")
            or DEFAULT_TIMEOUT,
            retry=read_retry(self.reader, pairs, path, DEFAULT_RETRY),
            circuit_breaker=read_breaker(self.reader, pairs, path),
            headers=headers,
            tls=tls,
            descriptor_set=descriptor_set,
            protos=protos,
            import_paths=import_paths,
            files={name: self.files[name] for name in used},
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
            descriptor_set = self._file(pairs["descriptor_set"][1], f"{path}.descriptor_set")
        listed = r.get(pairs, "protos", r.string_list, f"{path}.protos") or []
        paths = tuple(
            text
            for text, item in r.get(pairs, "import_paths", r.string_list, f"{path}.import_paths")
            or []
            if self._inside(item, f"{path}.import_paths", text)
        )
        protos = []
        used = [descriptor_set] if descriptor_set else []
        for text, item in listed:
            if self._file(item, f"{path}.protos", text):
                protos.append(text)
                used += [text, *self._proto_imports(text, paths, item, f"{path}.protos")]
        return descriptor_set, tuple(protos), paths, used

    def _inside(self, node: Node, path: str, name: str) -> bool:
        if _is_relative_inside(name):
            return True
        self.reader.error(
            node, path, "bad-path", f"'{name}' must be a relative path inside the workflow's folder"
        )
        return False

    def _proto_imports(
        self, proto: str, import_paths: tuple[str, ...], node: Node, path: str
    ) -> list[str]:
        """Read every file `proto` imports, transitively, from the import paths."""
        found_files: list[str] = []
        todo = [proto]
        seen = {proto}
        while todo:
            current = todo.pop()
            for imported in _IMPORT.findall(self.files[current].decode("utf-8", "replace")):
                if imported.startswith("google/protobuf/"):
                    continue  # well-known types ship with the compiler
                candidates = [posixpath.join(folder, imported) for folder in import_paths]
                found = next(
                    (
                        c
                        for c in [*candidates, imported]
                        if c in self.files or self.lookup(c) is not None
                    ),
                    None,
                )
                if found is None:
                    self.reader.error(
                        node,
                        path,
                        "file-not-found",
                        f"'{current}' imports '{imported}', which is not found in "
                        f"import_paths ({', '.join(import_paths) or 'none'})",
                    )
                    continue
                if found not in seen:
                    seen.add(found)
                    self._file(node, path, found)
                    todo.append(found)
                    found_files.append(found)
        return found_files

    def _file(self, node: Node, path: str, name: str | None = None) -> str | None:
        name = name if name is not None else self.reader.string(node, path, "a file path")
        if name is None:
            return None
        if not _is_relative_inside(name):
            self.reader.error(
                node,
                path,
                "bad-path",
                f"file '{name}' must be a relative path inside the workflow's folder",
            )
            return None
        data = self.lookup(name)
        if data is None:
            self.reader.error(
                node,
                path,
                "file-not-found",
                f"file '{name}' not found (paths are relative to the workflow file)",
            )
            return None
        self.files[name] = data
        return name

    # -- steps -------------------------------------------------------------------------------

    def _steps(self, node: Node, services: Mapping[str, Service]) -> list[tuple[Step, Node]]:
        r = self.reader
        items = r.sequence(node, "steps", "'steps'")
        if items is None:
            return []
        if not items:
            r.error(node, "steps", "empty", "'steps' is empty: a workflow needs at least one step")
        steps: list[tuple[Step, Node]] = []
        previous: str | None = None
        for index, item in enumerate(items):
            step = self._step(item, f"steps[{index}]", services, previous)
            if step is not None:
                steps.append((step, item))
                previous = step.id
        return steps

    def _step(
        self, node: Node, path: str, services: Mapping[str, Service], previous: str | None
    ) -> Step | None:
        r = self.reader
        pairs = r.mapping(node, path, "a step", STEP_KEYS)
        if pairs is None or not r.require(pairs, node, path, "a step", "id", "service", "method"):
            return None
        step_id = r.string(pairs["id"][1], f"{path}.id", "'id'")
        if step_id is None:
            return None
        if not _ID.fullmatch(step_id):
            r.error(
                pairs["id"][1],
                f"{path}.id",
                "bad-name",
                f"step id '{step_id}' must start with a letter and hold only letters, digits, "
                "'_' and '-' (at most 128)",
            )
        service_name = r.string(pairs["service"][1], f"{path}.service", "'service'") or ""
        service = services.get(service_name)
        method = self._method(pairs["method"][1], f"{path}.method", service, step_id, Scope.STEP)
        output = None
        if "output" in pairs:
            output = r.string(pairs["output"][1], f"{path}.output", "'output'")
        depends_on: tuple[str, ...] = (previous,) if previous else ()
        if "depends_on" in pairs:
            listed = r.string_list(pairs["depends_on"][1], f"{path}.depends_on", "'depends_on'")
            depends_on = tuple(dict.fromkeys(text for text, _ in listed or []))
        when = None
        if "when" in pairs:
            when_value = self._value(pairs["when"][1], f"{path}.when", step_id, Scope.STEP, "when")
            if isinstance(when_value, Template):
                when = when_value
            elif when_value is not None:
                r.error(
                    pairs["when"][1],
                    f"{path}.when",
                    "bad-value",
                    "'when' must be a template such as \"{{ .input.send_email }}\"",
                )
        timeout = self.reader.get(pairs, "timeout", r.duration, f"{path}.timeout")
        compensate = None
        if "compensate" in pairs:
            compensate = self._compensation(
                pairs["compensate"][1], f"{path}.compensate", step_id, service_name, services
            )
        step_input = None
        if "input" in pairs:
            step_input = self._value(
                pairs["input"][1], f"{path}.input", step_id, Scope.STEP, "input"
            )
        base_retry = service.retry if service else DEFAULT_RETRY
        continue_on_error = self.reader.get(
            pairs, "continue_on_error", r.boolean, f"{path}.continue_on_error"
        )
        # A step whose method is invalid is still returned (with a placeholder), so that the
        # cross-checks do not report follow-on errors about a step that "does not exist".
        return Step(
            id=step_id,
            service=service_name,
            method=method or GrpcMethod("invalid"),
            location=r.location(node),
            input=step_input,
            output=output,
            compensate=compensate,
            retry=read_retry(self.reader, pairs, path, base_retry),
            timeout=timeout or (service.timeout if service else DEFAULT_TIMEOUT),
            when=when,
            depends_on=depends_on,
            continue_on_error=bool(continue_on_error),
        )

    def _compensation(
        self,
        node: Node,
        path: str,
        step_id: str,
        step_service: str,
        services: Mapping[str, Service],
    ) -> Compensation | None:
        r = self.reader
        what = f"the compensation of step '{step_id}'"
        pairs = r.mapping(node, path, what, COMPENSATE_KEYS)
        if pairs is None or not r.require(pairs, node, path, what, "method"):
            return None
        service_name = step_service
        if "service" in pairs:
            service_name = r.string(pairs["service"][1], f"{path}.service", "'service'") or ""
            if service_name not in services:
                r.error(
                    pairs["service"][1],
                    f"{path}.service",
                    "unknown-service",
                    f"unknown service '{service_name}'{did_you_mean(service_name, services)}",
                )
        service = services.get(service_name)
        method = self._method(
            pairs["method"][1], f"{path}.method", service, step_id, Scope.COMPENSATION
        )
        compensation_input = None
        if "input" in pairs:
            compensation_input = self._value(
                pairs["input"][1], f"{path}.input", step_id, Scope.COMPENSATION, "compensate.input"
            )
        if method is None:
            return None
        timeout = self.reader.get(pairs, "timeout", r.duration, f"{path}.timeout")
        return Compensation(
            service=service_name,
            method=method,
            location=r.location(node),
            input=compensation_input,
            retry=read_retry(self.reader, pairs, path, DEFAULT_COMPENSATION_RETRY),
            timeout=timeout or (service.timeout if service else DEFAULT_TIMEOUT),
        )

    def _method(
        self, node: Node, path: str, service: Service | None, step_id: str, scope: Scope
    ) -> Method | None:
        r = self.reader
        text = r.string(node, path, "'method'")
        if text is None or service is None:
            return None
        if service.type is ServiceType.GRPC:
            match = _GRPC_METHOD.fullmatch(text)
            if match is None:
                hint = (
                    " ('VERB /path' is for http services)"
                    if text.split(" ", 1)[0] in HTTP_VERBS
                    else ""
                )
                r.error(
                    node,
                    path,
                    "bad-method",
                    f"gRPC method must be 'Method' or 'package.Service/Method', not "
                    f"'{text}'{hint}; service '{service.name}' is grpc",
                )
                return None
            return GrpcMethod(name=match.group("name"), service=match.group("service"))
        verb, _, rest = text.partition(" ")
        rest = rest.strip()
        if verb not in HTTP_VERBS or not rest.startswith("/"):
            upper = verb.upper() in HTTP_VERBS and rest.startswith("/")
            hint = f" (write the verb in capitals: '{verb.upper()} {rest}')" if upper else ""
            r.error(
                node,
                path,
                "bad-method",
                f"HTTP method must be 'VERB /path' with VERB one of {', '.join(HTTP_VERBS)}, "
                f"not '{text}'{hint}; service '{service.name}' is http",
            )
            return None
        field = "method" if scope is Scope.STEP else "compensate.method"
        compiled = read_http_path(r, node, rest, path=path, field=field, text=self.text)
        if compiled is None:
            return None
        self.sites += [
            TemplateSite(e.template, node, path, step_id, scope) for e in compiled.expansions
        ]
        return HttpMethod(verb=verb, path=compiled)

    # -- values and templates ----------------------------------------------------------------

    def _value(
        self, node: Node, path: str, step_id: str | None, scope: Scope, field: str
    ) -> CompiledValue | None:
        """A value tree whose strings may be templates; collapses to a Literal without them."""
        r = self.reader
        if isinstance(node, MappingNode):
            pairs = r.mapping(node, path, "an object") or {}
            items = []
            for key, (_, child) in pairs.items():
                compiled = self._value(child, f"{path}.{key}", step_id, scope, f"{field}.{key}")
                if compiled is not None:
                    items.append((key, compiled))
            if all(isinstance(v, Literal) for _, v in items):
                return Literal({k: v.value for k, v in items if isinstance(v, Literal)})
            return MappingValue(tuple(items))
        if isinstance(node, SequenceNode):
            values = [
                self._value(child, f"{path}[{i}]", step_id, scope, f"{field}[{i}]")
                for i, child in enumerate(node.value)
            ]
            present = [v for v in values if v is not None]
            if all(isinstance(v, Literal) for v in present):
                return Literal([v.value for v in present if isinstance(v, Literal)])
            return SequenceValue(tuple(present))
        if node.tag == STR_TAG and is_template(node.value):
            return self._string(node, node.value, path, step_id, scope, field=field)
        value = r.data(node, path)
        return Literal(value) if value is not None or node.tag.endswith(":null") else None

    def _string(
        self, node: Node, text: str, path: str, step_id: str | None, scope: Scope, *, field: str
    ) -> CompiledValue | None:
        if not is_template(text):
            return Literal(text)
        try:
            template = compile_template(text, field)
        except TemplateSyntaxError as exc:
            where = f" (line {exc.line} of the template)" if exc.line > 1 else ""
            self.reader.error(
                node, path, "template-syntax", f"template syntax error{where}: {exc.message}"
            )
            return None
        check_template(self.reader, template, node, path, self.text)
        self.sites.append(TemplateSite(template, node, path, step_id, scope))
        return template


def _is_relative_inside(name: str) -> bool:
    """Whether a file name stays inside the workflow's folder (no `/abs`, no `..`)."""
    pure = posixpath.normpath(name)
    return not (
        name.startswith(("/", "\\"))
        or pure == ".."
        or pure.startswith("../")
        or ":" in name.split("/", 1)[0]
        or "\\" in name
    )


def _hash(text: str, files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256(text.encode())
    for name in sorted(files):
        digest.update(b"\0" + name.encode() + b"\0" + files[name])
    return digest.hexdigest()
