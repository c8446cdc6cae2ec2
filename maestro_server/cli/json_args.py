"""JSON objects given on the command line: inline (`--input '{…}'`) or in a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maestro_server.errors import InvalidInputError


def read_object(
    inline: str | None, inline_flag: str, file: str | Path | None, what: str
) -> dict[str, Any]:
    """The object given inline (as `inline_flag`) or in `file`; {} when neither is given."""
    if inline is not None:
        source, text = inline_flag, inline
    elif file is not None:
        path = Path(file)
        try:
            source, text = str(path), path.read_text()
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    else:
        return {}
    return parse_object(text, source)


def parse_object(text: str, source: str) -> dict[str, Any]:
    """A JSON object, refused (exit 1) where a server would refuse it: it must travel."""
    # Imported here: a command's --help loads neither protobuf nor the definitions.
    from maestro_server.definition.inputs import check_input_travels, parse_input

    data: dict[str, Any] = parse_input(text, source)
    check_input_travels(data, source)
    return data
