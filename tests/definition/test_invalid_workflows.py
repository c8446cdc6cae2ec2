"""Every validation rule, one broken workflow each, with its exact location and message.

Each file in invalid/ starts with `# expect: LINE:COLUMN: MESSAGE` lines, one per diagnostic
that loading it must produce, in order.
"""

from pathlib import Path

import pytest

from maestro_server.definition import load_workflow_file
from maestro_server.errors import InvalidWorkflowError

CASES = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def _expected(path: Path) -> list[str]:
    prefix = "# expect: "
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


@pytest.mark.parametrize("path", CASES, ids=[case.stem for case in CASES])
def test_invalid_workflow_reports_each_problem_at_its_location(path: Path) -> None:
    """Loading the file fails with exactly the diagnostics its header lists."""
    expected = _expected(path)
    assert expected, f"{path.name} names no expected diagnostic"
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow_file(path)
    diagnostics = caught.value.diagnostics
    got = [f"{d.location.line}:{d.location.column}: {d.message}" for d in diagnostics]
    assert got == expected
    for diagnostic in diagnostics:
        assert str(diagnostic).startswith(f"{path}:{diagnostic.location.line}:")


def test_every_rule_has_a_case() -> None:
    """The catalogue covers the rules the workflow language promises to check."""
    codes = set()
    for path in CASES:
        try:
            load_workflow_file(path)
        except InvalidWorkflowError as exc:
            codes |= {d.code for d in exc.diagnostics}
    assert codes >= {
        "yaml-syntax",
        "empty",
        "wrong-type",
        "unknown-key",
        "duplicate-key",
        "duplicate-id",
        "unknown-service",
        "bad-method",
        "template-syntax",
        "unknown-reference",
        "dependency-cycle",
        "duplicate-output",
        "bad-duration",
        "out-of-range",
        "element-outside-for-each",
        "for-each-only",
        "missing-key",
        "bad-endpoint",
        "alias-bomb",
        "unsupported-tag",
        "too-deep",
        "reserved-name",
        "unknown-step",
        "file-not-found",
        "bad-schema",
        "bad-name",
        "unsafe-attribute",
        "misplaced-filter",
        "bad-path",
        "bad-header",
        "recursion",
        "sub-workflow-with-call",
    }


def test_invalid_utf8_points_at_the_bad_byte(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported with their line, column and offset."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow_file(path)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.location.line, diagnostic.location.column) == (2, 17)
    assert diagnostic.message == "not valid UTF-8: byte 0xe9 at offset 25"


def test_nul_character_is_rejected(tmp_path: Path) -> None:
    """A NUL byte is reported where it stands."""
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"name: a\x00b\n")
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow_file(path)
    (diagnostic,) = caught.value.diagnostics
    assert str(diagnostic) == f"{path}:1:8: error: NUL character in the workflow"


def test_oversized_workflow_is_rejected_before_parsing(tmp_path: Path) -> None:
    """A file over the size limit is refused as a whole."""
    path = tmp_path / "huge.yaml"
    path.write_text("name: a\ndescription: " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(InvalidWorkflowError, match="larger than 1048576 bytes"):
        load_workflow_file(path)
