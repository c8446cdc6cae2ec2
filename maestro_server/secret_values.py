"""Secrets for templates.

`{{ .secrets.NAME }}` reads `MAESTRO_SECRET_NAME`, or the file NAME in `--secrets-dir` (as
Kubernetes mounts a Secret).

Secrets may be read only in service `headers`, which are rendered for each call and never
stored; and any secret value that comes back in an error message is redacted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

REDACTED = "[redacted]"


class Secrets(Mapping[str, str]):
    """Secret values by name, read when asked for."""

    def __init__(
        self, directory: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self._directory = directory
        self._environ = os.environ if environ is None else environ

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(f"MAESTRO_SECRET_{name}")
        if value is None and self._directory is not None and "/" not in name:
            path = self._directory / name
            if path.is_file():
                value = path.read_text().rstrip("\n")
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        names = {
            k.removeprefix("MAESTRO_SECRET_")
            for k in self._environ
            if k.startswith("MAESTRO_SECRET_")
        }
        if self._directory is not None and self._directory.is_dir():
            names |= {p.name for p in self._directory.iterdir() if p.is_file()}
        return iter(sorted(names))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Secrets({len(self)} names)"  # never the values


def redact(text: str, values: frozenset[str]) -> str:
    """`text` with every secret value replaced."""
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    return text
