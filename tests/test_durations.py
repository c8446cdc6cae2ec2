"""One duration grammar for workflows and flags: what it reads, what it refuses."""

from datetime import timedelta

import pytest

from maestro_server.durations import parse_duration
from tests.conftest import maestro


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("5s", timedelta(seconds=5)),
        ("1.5m", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1m30s", timedelta(seconds=90)),
        ("1d12h", timedelta(hours=36)),
        ("0s", timedelta()),
    ],
)
def test_parse_duration_reads_each_unit_and_combinations(text: str, expected: timedelta) -> None:
    """Every unit, decimals and parts in a row."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "5 s", "-1s", "1e3s", "5sec", "1.s", "s", "1w"])
def test_parse_duration_refuses_what_is_not_a_duration(text: str) -> None:
    """No unit, spaces, signs, exponents and unknown units are ValueErrors."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_parse_duration_refuses_what_a_timedelta_cannot_hold() -> None:
    """A duration past timedelta's range is an OverflowError, not a crash further on."""
    assert parse_duration("999999999d") == timedelta(days=999_999_999)
    with pytest.raises(OverflowError, match="too long"):
        parse_duration("1000000000d")
    with pytest.raises(OverflowError, match="too long"):
        parse_duration("1" + "0" * 400 + "h")


def test_serve_reports_a_bad_duration_flag_by_name() -> None:
    """`maestro serve` refuses a flag that is not a duration before it binds anything."""
    result = maestro("serve", "--port", "0", "--lease", "15 seconds")
    assert result.returncode != 0
    assert "--lease wants a duration such as 30s, not '15 seconds'" in result.stderr
