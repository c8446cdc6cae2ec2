"""YAML → `Workflow`: reads every part, then cross-checks the whole (see validate.py).

Every problem becomes a diagnostic with its file:line:column; all of them are reported at once
in one InvalidWorkflowError, sorted by position. The parts are read by their own modules:
services.py, steps.py, value_compiler.py (values and templates) and files.py (schema files).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from maestro_server.definition.calls import CallCheck
from maestro_server.definition.files import FileReader, WorkflowFiles
from maestro_server.definition.input_reads import input_reads
from maestro_server.definition.loader import compose, decode
from maestro_server.definition.reader import IDENTIFIER, Reader, find_node
from maestro_server.definition.references import check_references
from maestro_server.definition.schemas import service_schemas
from maestro_server.definition.services import ServiceReader
from maestro_server.definition.steps import StepReader
from maestro_server.definition.sub_workflows import (
    MAX_EXPANDED,
    Nesting,
    file_recursion,
    recursion_problems,
)
from maestro_server.definition.validate import Scope, validate
from maestro_server.definition.value_compiler import ValueCompiler
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import Step, Workflow
from maestro_server.schemas.descriptors import FileProtos

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


def load_workflow(
    source: str | bytes,
    *,
    path: str = "workflow.yaml",
    files: Mapping[str, bytes] | None = None,
    read_file: FileReader | None = None,
    reflected: Mapping[str, FileProtos] | None = None,
    nesting: Nesting | None = None,
) -> Workflow:
    """Parse and validate a workflow; raises InvalidWorkflowError listing every problem.

    Sub-workflow files are read (as any file the workflow names) and validated with it;
    `nesting` says which workflows run this one (for recursion checks), when it is one.

    Files the workflow names (descriptor sets, .proto files) are looked up in `files` first,
    then through `read_file`. Every gRPC call is checked against its service's schema when
    there is one: its descriptor set or .proto files, or `reflected` (service name → files
    fetched by server reflection).
    """
    text = decode(source, path) if isinstance(source, bytes) else source
    provided = dict(files or {})

    def lookup(name: str) -> bytes | None:
        if name in provided:
            return provided[name]
        return read_file(name) if read_file is not None else None

    parser = _Parser(path, lookup, text, reflected or {})
    parser.nesting = nesting or Nesting(stack=(posixpath.basename(path),))
    workflow = parser.workflow(compose(text, path), text)
    if parser.reader.diagnostics or workflow is None:
        diagnostics = sorted(
            parser.reader.diagnostics,
            key=lambda d: (d.location.line, d.location.column, d.message),
        )
        raise InvalidWorkflowError(diagnostics)
    return workflow


def load_workflow_file(
    path: str | Path, reflected: Mapping[str, FileProtos] | None = None
) -> Workflow:
    """Read a workflow file; files it names are read relative to its folder."""
    file = Path(path)
    folder = file.parent

    def read_file(name: str) -> bytes | None:
        candidate = folder / name
        return candidate.read_bytes() if candidate.is_file() else None

    return load_workflow(
        file.read_bytes(), path=str(path), read_file=read_file, reflected=reflected
    )


class _Parser:
    def __init__(
        self, path: str, lookup: FileReader, text: str, reflected: Mapping[str, FileProtos]
    ) -> None:
        self.reflected = reflected
        self.reader = Reader(path, text)
        self.files = WorkflowFiles(self.reader, lookup)
        self.values = ValueCompiler(self.reader)
        self.services = ServiceReader(self.reader, self.files, self.values)
        self.steps = StepReader(self.reader, self.values)
        self.nesting = Nesting()
        self.expanded = 0
        """Child workflows its files run so far, each counted every time (see MAX_EXPANDED)."""

    def workflow(self, root: Node, text: str) -> Workflow | None:
        r = self.reader
        r.text = text
        pairs = r.mapping(root, "", "the workflow", WORKFLOW_KEYS, extensions=True)
        if pairs is None:
            return None
        r.require(pairs, root, "", "the workflow", "name", "services", "steps")
        name = r.get(pairs, "name", r.string, "name")
        if name is not None and not IDENTIFIER.fullmatch(name):  # `name: ""` too
            r.error(
                pairs["name"][1],
                "name",
                "bad-name",
                f"workflow name '{name}' must start with a letter and hold only letters, "
                "digits, '_' and '-' (at most 128)",
            )
        version = r.get(pairs, "version", r.string, "version") or ""
        description = r.get(pairs, "description", r.string, "description") or ""
        timeout = r.get(pairs, "timeout", r.duration, "timeout")
        services = self.services.services(pairs["services"][1]) if "services" in pairs else {}
        steps = self.steps.steps(pairs["steps"][1], services) if "steps" in pairs else []
        recursion_problems(r, steps, self.nesting, name)
        steps = [
            (self._child_file(step, node, index, name), node)
            for index, (step, node) in enumerate(steps)
        ]
        output = None
        if "output" in pairs:
            output = self.values.value(
                pairs["output"][1], "output", None, Scope.WORKFLOW_OUTPUT, "output"
            )
        input_schema = (
            self._input_schema(pairs["input_schema"][1]) if "input_schema" in pairs else None
        )
        validate(r, steps, services, self.values.sites)
        schemas = service_schemas(r, root, services, self.reflected)
        calls = CallCheck(r, steps, schemas, self.values.sites, input_schema)
        calls.run()
        check_references(calls)
        if r.diagnostics:
            return None
        files = self.files.files
        return Workflow(
            name=name or "",
            version=version,
            description=description,
            services=services,
            steps=tuple(step for step, _ in steps),
            path=r.path,
            source=text,
            files=dict(sorted(files.items())),
            hash=_hash(text, files),
            output=output,
            input_schema=input_schema,
            timeout=timeout,
            input_reads=input_reads(calls),
        )

    def _child_file(self, step: Step, node: Node, index: int, name: str | None) -> Step:
        """The step with its sub-workflow file read and validated (as it is after an error).

        The child's files join this workflow's under the child's folder, so a resume finds
        them in the parent's source.
        """
        ref = step.workflow
        if ref is None or not ref.file:
            return step
        where = find_node(node, ["workflow", "file"])
        path = f"steps[{index}].workflow.file"
        key = posixpath.normpath(posixpath.join(self.nesting.folder, ref.file))
        if file_recursion(self.reader, where, path, step_id=step.id, key=key, nesting=self.nesting):
            return step
        if self.files.read(where, path, ref.file) is None:
            return step
        child = self._load_child(ref.file, key, name)
        if isinstance(child, InvalidWorkflowError):
            return step
        self.expanded += 1 + self.nesting.loads.expanded(child)
        if self.expanded > MAX_EXPANDED:
            if self.expanded - 1 - self.nesting.loads.expanded(child) <= MAX_EXPANDED:
                self.reader.error(
                    where,
                    path,
                    "too-many-sub-workflows",
                    f"the sub-workflow files run more than {MAX_EXPANDED} child workflows in "
                    "all (each counted every time a step runs it)",
                )
            return step
        folder = posixpath.dirname(ref.file)
        for child_name, data in child.files.items():
            self.files.files[posixpath.normpath(posixpath.join(folder, child_name))] = data
        return replace(step, workflow=replace(ref, definition=child))

    def _load_child(self, file: str, key: str, name: str | None) -> Workflow | InvalidWorkflowError:
        """A sub-workflow file read and validated, once per chain of names (see Loads).

        Its problems are reported the first time only.
        """
        names = (*self.nesting.names, *([name] if name else []))
        loads = self.nesting.loads
        known = loads.done.get((key, names))
        if known is not None:
            return known
        folder = posixpath.dirname(file)

        def child_lookup(child_name: str) -> bytes | None:
            return self.files.lookup(posixpath.normpath(posixpath.join(folder, child_name)))

        shown = posixpath.normpath(posixpath.join(posixpath.dirname(self.reader.path), file))
        nesting = Nesting(posixpath.dirname(key), (*self.nesting.stack, key), names, loads)
        result: Workflow | InvalidWorkflowError
        try:
            result = load_workflow(
                self.files.files[file],
                path=shown,
                read_file=child_lookup,
                reflected=self.reflected,
                nesting=nesting,
            )
        except InvalidWorkflowError as exc:
            self.reader.diagnostics.extend(exc.diagnostics)
            result = exc
        loads.done[(key, names)] = result
        return result

    def _input_schema(self, node: Node) -> dict[str, Any] | None:
        schema = self.reader.data(node, "input_schema")
        if not isinstance(schema, dict):
            self.reader.error(
                node, "input_schema", "wrong-type", "'input_schema' must be a mapping"
            )
            return None
        # Imported here: jsonschema costs `maestro validate` of a workflow without an
        # input_schema more than the rest of the language does.
        import jsonschema  # noqa: PLC0415

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


def _hash(text: str, files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256(text.encode())
    for name in sorted(files):
        digest.update(b"\0" + name.encode() + b"\0" + files[name])
    return digest.hexdigest()
