"""Go's fmt and strconv for template values: `printf`, `print` and how Go prints a value.

Values map to the Go types they would have as `interface{}` data: str is `string`, int is `int`,
float is `float64`, bool is `bool`, None is `nil`, a list is `[]interface {}` and a dict is
`map[string]interface {}` (printed with sorted keys, as fmt does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jinja2.exceptions import SecurityError

MAX_WIDTH = 10_000
_SPEC = re.compile(r"([#0+\- ]*)(?:\[(\d+)\])?(\*|\d+)?(?:\.(?:\[(\d+)\])?(\*|\d*))?(?:\[(\d+)\])?")


def go_type(value: Any) -> str:
    """The Go type name of a value, as fmt shows it in `%!d(string=x)`."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def format_float(value: float, verb: str = "g", precision: int | None = None) -> str:
    """strconv.FormatFloat(value, verb, precision or -1, 64); verb is e, f or g."""
    if value != value:  # noqa: PLR0124 - NaN is the value not equal to itself
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if precision is not None:
        return f"{value:.{precision}{verb}}"
    sign = "-" if str(value).startswith("-") else ""
    digits, point = _shortest(abs(value))
    exponent = point - 1
    if verb == "e" or (verb == "g" and digits and (exponent < -4 or exponent >= 6)):
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa or '0'}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if not digits:
        return sign + "0"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest(value: float) -> tuple[str, int]:
    """The shortest digits that read back as `value`, and where the decimal point goes."""
    if value == 0:
        return "", 0
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    fraction = fraction.rstrip("0")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0)
    if whole == "0":
        stripped = len(fraction) - len(fraction.lstrip("0"))
        point = -stripped + int(exponent or 0)
    return digits.rstrip("0"), point


def quote(text: str, ascii_only: bool = False) -> str:
    """strconv.Quote: a double-quoted Go string literal (QuoteToASCII with ascii_only)."""
    out = ['"']
    escapes = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
    escapes |= {"\v": r"\v", "\\": r"\\", '"': r"\""}
    for char in text:
        code = ord(char)
        if char in escapes:
            out.append(escapes[char])
        elif (ascii_only and code >= 0x80) or not char.isprintable():
            if code < 0x80:
                out.append(f"\\x{code:02x}")
            else:
                out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def value_text(value: Any, verb: str = "v", flags: str = "") -> str:
    """How fmt prints one operand with a verb (`%v`, `%s`, `%d`, `%q`…), without a width."""
    return _operand(value, verb, flags, None)


def sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: operands with %v, a space between two when neither is a string."""
    out: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(value_text(arg))
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    """fmt.Sprintln: operands with %v, spaces between all, and a newline."""
    return " ".join(value_text(arg) for arg in args) + "\n"


def sprintf(format_text: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf, with Go's `%!verb(type=value)` for arguments that do not fit."""
    out: list[str] = []
    position, used, reordered = 0, 0, False
    n = len(format_text)
    while position < n:
        percent = format_text.find("%", position)
        if percent < 0:
            out.append(format_text[position:])
            break
        out.append(format_text[position:percent])
        spec = _SPEC.match(format_text, percent + 1)
        assert spec is not None  # every part of the pattern is optional
        flags, index, width, precision_index, precision, verb_index = spec.groups()
        position = spec.end()
        for explicit in (index, precision_index, verb_index):
            if explicit is not None:
                used, reordered = int(explicit) - 1, True
        width_value, used = _star(width, args, used)
        precision_value, used = _star(precision, args, used)
        if position >= n:
            out.append("%!(NOVERB)")
            break
        verb = format_text[position]
        position += 1
        if verb == "%":
            out.append("%")
            continue
        if width_value == "bad" or precision_value == "bad":
            out.append("%!(BADWIDTH)" if width_value == "bad" else "%!(BADPREC)")
            continue
        if not 0 <= used < len(args):
            out.append(f"%!{verb}(BADINDEX)" if reordered and used >= 0 else f"%!{verb}(MISSING)")
            continue
        _check_width(width_value, precision_value)
        text = _operand(args[used], verb, flags, precision_value)
        out.append(_pad(text, width_value, flags, numeric=_is_number(args[used], verb)))
        used += 1
    if not reordered and used < len(args):
        extra = ", ".join(
            "<nil>" if arg is None else f"{go_type(arg)}={value_text(arg)}" for arg in args[used:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _star(text: str | None, args: Sequence[Any], used: int) -> tuple[Any, int]:
    if text is None or text == "":
        return (None if text is None else 0), used
    if text != "*":
        return int(text), used
    if used < len(args) and isinstance(args[used], int) and not isinstance(args[used], bool):
        return args[used], used + 1
    return "bad", used + 1


def _check_width(width: int | None, precision: int | None) -> None:
    if (width is not None and abs(width) > MAX_WIDTH) or (
        precision is not None and precision > MAX_WIDTH
    ):
        raise SecurityError(f"a format width over {MAX_WIDTH:,}")


def _is_number(value: Any, verb: str) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and verb != "c"


def _pad(text: str, width: int | None, flags: str, *, numeric: bool) -> str:
    if width is None or len(text) >= abs(width):
        return text
    if "-" in flags or width < 0:
        return text.ljust(abs(width))
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in "+- " and text[:1] else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _operand(value: Any, verb: str, flags: str, precision: int | None) -> str:
    """One operand, elements of lists and maps each formatted with the same verb."""

    def each(item: Any) -> str:
        return _operand(item, verb, flags, precision)

    if isinstance(value, list | tuple):
        if verb == "v" and "#" in flags:
            return "[]interface {}{" + ", ".join(map(each, value)) + "}"
        return "[" + " ".join(map(each, value)) + "]"
    if isinstance(value, dict):
        if verb == "v" and "#" in flags:
            pairs = ", ".join(f"{quote(str(k))}:{each(value[k])}" for k in sorted(value))
            return "map[string]interface {}{" + pairs + "}"
        return "map[" + " ".join(f"{each(k)}:{each(value[k])}" for k in sorted(value)) + "]"
    text = _scalar(value, verb, flags, precision)
    if text is not None:
        return text
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(value)}={value_text(value)})"


def _scalar(value: Any, verb: str, flags: str, precision: int | None) -> str | None:
    """The text of a scalar with a verb that fits it, or None when the verb does not."""
    if value is None:
        return "<nil>" if verb == "v" else None
    if isinstance(value, bool):
        return ("true" if value else "false") if verb in "vt" else None
    if isinstance(value, int):
        return _integer(value, verb, flags, precision)
    if isinstance(value, float):
        if verb in "vgG":
            text = format_float(value, "g", precision)
        elif verb in "eEfF":
            text = format_float(value, verb.lower(), 6 if precision is None else precision)
        else:
            return None
        text = text.upper() if verb in "EG" else text
        return _sign(text, flags) if value == value else text  # noqa: PLR0124
    if isinstance(value, str):
        if verb in "vs":
            return value if precision is None else value[:precision]
        if verb == "q":
            text = value if precision is None else value[:precision]
            if "#" in flags and "`" not in text and text.isprintable():
                return f"`{text}`"
            return quote(text, ascii_only="+" in flags)
        if verb in "xX":
            data = value.encode()[: precision if precision is not None else None]
            spaced = " " in flags
            text = (" " if spaced else "").join(f"{b:02x}" for b in data)
            return text.upper() if verb == "X" else text
    return None


def _integer(value: int, verb: str, flags: str, precision: int | None) -> str | None:
    if verb == "c":
        return chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"
    if verb == "q":
        return "'" + quote(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd")[1:-1] + "'"
    if verb == "U":
        return f"U+{value:04X}"
    bases = {"v": ("d", ""), "d": ("d", ""), "x": ("x", "0x"), "X": ("X", "0X")}
    bases |= {"o": ("o", "0"), "O": ("o", "0o"), "b": ("b", "0b")}
    if verb not in bases:
        return None
    code, prefix = bases[verb]
    digits = format(abs(value), code)
    if precision is not None:
        digits = digits.rjust(precision, "0") if precision else digits.lstrip("0")
    if verb == "O" or ("#" in flags and verb not in {"d", "v"}):
        digits = prefix + digits
    return _sign(("-" if value < 0 else "") + digits, flags)


def _sign(text: str, flags: str) -> str:
    if text.startswith("-"):
        return text
    if "+" in flags:
        return "+" + text
    return " " + text if " " in flags else text
