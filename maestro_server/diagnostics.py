"""Source locations and diagnostics: how Maestro points at a problem in a workflow file."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A position in a source file; line and column are 1-based."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(enum.StrEnum):
    """How serious a diagnostic is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a workflow, printed compiler-style: `file:line:col: error: message`."""

    location: SourceLocation
    message: str
    code: str
    """A stable identifier for tools, e.g. `unknown-key`."""
    path: str = ""
    """Where in the workflow, e.g. `steps[1].retry.max_attempts`."""
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"
