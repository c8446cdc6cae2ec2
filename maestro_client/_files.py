"""Workflow sources for requests: the YAML and the files it refers to (descriptor sets, protos).

A workflow sent over the wire has no folder of its own, so the files its services name are read
here, relative to the workflow file, and travel in the request's `files`. So do its sub-workflow
files (`workflow: {file: …}`), with their own files under their folder.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)


@dataclass(frozen=True, slots=True)
class WorkflowSource:
    """A workflow definition to send: YAML text, its file name, and the files it refers to."""

    yaml: str
    path: str = "workflow.yaml"
    files: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> WorkflowSource:
        """Read a workflow file and every schema file its services name."""
        file = Path(path)
        text = file.read_text()
        return cls(text, str(path), _referenced_files(text, file.parent, (file.resolve(),)))


@dataclass(frozen=True, slots=True)
class WorkflowRef:
    """A workflow registered on the server; the latest version when `version` is empty."""

    name: str
    version: str = ""


def _referenced_files(text: str, folder: Path, within: tuple[Path, ...] = ()) -> dict[str, bytes]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}  # the server reports the syntax error with its location
    services = document.get("services") if isinstance(document, dict) else None
    files: dict[str, bytes] = {}
    steps = document.get("steps") if isinstance(document, dict) else None
    for step in steps if isinstance(steps, list) else ():
        reference = step.get("workflow") if isinstance(step, dict) else None
        name = reference.get("file") if isinstance(reference, dict) else None
        if not isinstance(name, str) or name in files or not _read(folder, name, files):
            continue  # not a file, or read with its own files already (run by another step)
        child = (folder / name).resolve()
        if child in within:
            continue  # recursion: the server reports it
        child_folder = posixpath.dirname(name)
        nested = _referenced_files(
            files[name].decode("utf-8", "replace"), folder / child_folder, (*within, child)
        )
        for nested_name, data in nested.items():
            files.setdefault(posixpath.normpath(posixpath.join(child_folder, nested_name)), data)
    for service in services.values() if isinstance(services, dict) else ():
        if not isinstance(service, dict):
            continue
        names = [service.get("descriptor_set"), *(service.get("protos") or [])]
        import_paths = [p for p in service.get("import_paths") or [] if isinstance(p, str)]
        for name in names:
            if isinstance(name, str):
                _read(folder, name, files)
        for proto in [n for n in service.get("protos") or [] if isinstance(n, str)]:
            _imports(folder, proto, import_paths, files)
    return files


def _read(folder: Path, name: str, files: dict[str, bytes]) -> bool:
    candidate = folder / name
    if name not in files and candidate.is_file():
        files[name] = candidate.read_bytes()
    return name in files


def _imports(folder: Path, proto: str, import_paths: list[str], files: dict[str, bytes]) -> None:
    todo, seen = [proto], {proto}
    while todo:
        data: Any = files.get(todo.pop())
        for imported in _IMPORT.findall(data.decode("utf-8", "replace") if data else ""):
            for name in [*(posixpath.join(p, imported) for p in import_paths), imported]:
                if name not in seen and _read(folder, name, files):
                    seen.add(name)
                    todo.append(name)
                    break
