"""The workflows executions run, compiled from the definitions kept with them, once per content.

A restart resumes every unfinished execution from the definition it started with; thousands of
them usually share a handful of definitions, and compiling one (YAML, templates, schemas) costs
milliseconds. A compiled Workflow is a frozen value, so executions of the same content share it.
"""

from __future__ import annotations

from collections import OrderedDict

from maestro_server.definition import load_workflow
from maestro_server.model.workflow import Workflow
from maestro_server.store.base import ExecutionSource

_KEPT = 256
"""Distinct definitions kept compiled (the least recently used goes first)."""

Pairs = tuple[tuple[str, str], ...]
Key = tuple[str, str, tuple[tuple[str, bytes], ...], Pairs, Pairs]


class Definitions:
    """Compiled workflows by the content of their source.

    Its YAML, path, files, endpoints, and the versions of registered children pinned at start.
    """

    def __init__(self) -> None:
        self._compiled: OrderedDict[Key, Workflow] = OrderedDict()

    def workflow(self, source: ExecutionSource) -> Workflow:
        """The workflow `source` compiles to, with its endpoints and pinned child versions."""
        key: Key = (
            source.yaml,
            source.path,
            tuple(sorted(source.files.items())),
            tuple(sorted(source.endpoints.items())),
            tuple(sorted(source.versions.items())),
        )
        workflow = self._compiled.get(key)
        if workflow is not None:
            self._compiled.move_to_end(key)
            return workflow
        workflow = load_workflow(source.yaml, path=source.path, files=dict(source.files))
        workflow = workflow.with_endpoints(source.endpoints).with_versions(source.versions)
        self._compiled[key] = workflow
        if len(self._compiled) > _KEPT:
            self._compiled.popitem(last=False)
        return workflow
