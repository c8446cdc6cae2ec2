"""The files a workflow names: descriptor sets, .proto files and what they import, CA files.

Every file is a path relative to the workflow's folder; its bytes travel with the workflow, so
a server never reads a path a client chose.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from yaml.nodes import Node

from maestro_server.definition.reader import Reader

FileReader = Callable[[str], bytes | None]
"""Returns the bytes of a file the workflow names (relative path), or None when it is missing."""

_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)


def proto_imports(source: str) -> list[str]:
    """The file names a .proto file's `import` statements name, in order."""
    return _IMPORT.findall(source)


def is_relative_inside(name: str) -> bool:
    """Whether a file name stays inside the workflow's folder (no `/abs`, no `..`)."""
    pure = posixpath.normpath(name)
    return not (
        name.startswith(("/", "\\"))
        or pure == ".."
        or pure.startswith("../")
        or ":" in name.split("/", 1)[0]
        or "\\" in name
    )


class WorkflowFiles:
    """Reads the files a workflow names through `lookup`, keeping each one's bytes in `files`."""

    def __init__(self, reader: Reader, lookup: FileReader) -> None:
        self.reader = reader
        self.lookup = lookup
        self.files: dict[str, bytes] = {}

    def read(self, node: Node, path: str, name: str | None = None) -> str | None:
        """Read the file named at `node` (or `name`); its name, or None after a diagnostic."""
        name = name if name is not None else self.reader.string(node, path, "a file path")
        if name is None:
            return None
        if not is_relative_inside(name):
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

    def inside(self, node: Node, path: str, name: str) -> bool:
        """Whether a folder name stays inside the workflow's folder; reports it when not."""
        if is_relative_inside(name):
            return True
        self.reader.error(
            node, path, "bad-path", f"'{name}' must be a relative path inside the workflow's folder"
        )
        return False

    def proto_imports(
        self, proto: str, import_paths: tuple[str, ...], node: Node, path: str
    ) -> list[str]:
        """Read every file `proto` imports, transitively, from the import paths."""
        found_files: list[str] = []
        todo = [proto]
        seen = {proto}
        while todo:
            current = todo.pop()
            for imported in proto_imports(self.files[current].decode("utf-8", "replace")):
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
                    self.read(node, path, found)
                    todo.append(found)
                    found_files.append(found)
        return found_files
