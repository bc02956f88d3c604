"""Record-by-record reading of malformed delimited files (churnguard.ingest_rules.read_records).

The fallback ingest uses when DuckDB meets a malformed line: every record keeps its line
number, a malformed one is reported with its raw text, and a broken quote spoils one line
only. Hand-made byte strings, read from memory.
"""

from __future__ import annotations

import io

import pytest

from churnguard.ingest_rules import MAX_RECORD_LINES, read_records


def records(data: bytes, delimiter: str = ",", quote: str = '"', encoding: str = "utf-8"):
    return [
        (r.line, r.fields, r.problem, r.raw)
        for r in read_records(io.BytesIO(data), delimiter, quote, encoding)
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b"a,b\n1,2\n\n3,4\n",
            [(1, ["a", "b"], None, ""), (2, ["1", "2"], None, ""), (4, ["3", "4"], None, "")],
            id="blank lines are no records and line numbers count them",
        ),
        pytest.param(
            b'a,b\n1,"x\ny"\n3,4\n',
            [(1, ["a", "b"], None, ""), (2, ["1", "x\ny"], None, ""), (4, ["3", "4"], None, "")],
            id="a quoted line break makes one record of two lines",
        ),
        pytest.param(
            b"a,b\n1\n1,2,3\n",
            [(1, ["a", "b"], None, ""), (2, ["1"], None, "1"), (3, ["1", "2", "3"], None, "1,2,3")],
            id="a wrong field count is reported with the raw line",
        ),
        pytest.param(
            b'a,b\n1,"open\n2,3\n4,5\n',
            [
                (1, ["a", "b"], None, ""),
                (2, None, "quote", '1,"open'),
                (3, ["2", "3"], None, ""),
                (4, ["4", "5"], None, ""),
            ],
            id="an unterminated quote spoils its own line only",
        ),
        pytest.param(
            b'a,b\n1,"x" y\n2,3\n',
            [(1, ["a", "b"], None, ""), (2, None, "quote", '1,"x" y'), (3, ["2", "3"], None, "")],
            id="text after a closing quote is a broken quote",
        ),
        pytest.param(
            b'a,b\n1,"x\n"" 2,3\n"\n',
            [(1, ["a", "b"], None, ""), (2, ["1", 'x\n" 2,3\n'], None, "")],
            id="a doubled quote inside a multi-line field is text",
        ),
        pytest.param(
            b"\xef\xbb\xbfa,b\r\n1,J\xe9r\xf4me\r\n2,3\r\n",
            [
                (1, ["a", "b"], None, ""),
                (2, None, "encoding", "1,J\\xe9r\\xf4me"),
                (3, ["2", "3"], None, ""),
            ],
            id="bytes that are not UTF-8 spoil their line only (BOM and CRLF read)",
        ),
    ],
)
def test_records_of_a_delimited_file(data: bytes, expected: list) -> None:
    assert records(data) == expected


def test_whitespace_records_split_on_runs_of_blanks() -> None:
    data = b" id  date amount\n 001 19970101  1.5\n\n 002 19970102\n"
    assert records(data, "whitespace") == [
        (1, ["id", "date", "amount"], None, ""),
        (2, ["001", "19970101", "1.5"], None, ""),
        (4, ["002", "19970102"], None, " 002 19970102"),
    ]


def test_latin1_never_fails_and_no_quote_means_quotes_are_text() -> None:
    assert records(b'a;b\n"x;J\xe9\n', ";", "", "latin-1") == [
        (1, ["a", "b"], None, ""),
        (2, ['"x', "Jé"], None, ""),
    ]


def test_a_quote_that_never_closes_stops_after_the_line_limit() -> None:
    data = b'a,b\n1,"open\n' + b"x\n" * (MAX_RECORD_LINES + 5)
    got = records(data)
    assert got[1][:3] == (2, None, "quote")
    assert len(got) == 2 + MAX_RECORD_LINES + 5  # every swallowed line read again on its own
    assert all(r[2] is None and r[1] == ["x"] for r in got[2:])
