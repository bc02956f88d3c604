"""Spreadsheet-safe CSV: every byte round-trips, no cell is a formula, no row splits; bounded,
stable, portable file names; malformed CSV always reads as MalformedCsvError."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from churnguard.csvsafe import (
    MAX_STEM_BYTES,
    MalformedCsvError,
    excel_csv_text,
    neutralise_cell,
    read_excel_csv,
    safe_file_stem,
    unneutralise_cell,
    write_excel_csv_atomic,
)
from churnguard.formulas import is_formula_like
from churnguard.io import atomic_path

CONTROLS = (
    "".join(map(chr, range(0x20)))
    + "\x7f"
    + "".join(map(chr, range(0x80, 0xA0)))
    + "\u2028\u2029\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    + "\u2066\u2067\u2068\u2069\ufeff\u00ad"
)
SCRIPTS = "علیرضا مریم رضایی پژوهش‌گر שלום עברית Ana ANA O'Brien 张伟 ٣٤ ۵۶ é e\u0301 ß"
SPECIAL = "=+-@'\",;|%\t\r\n ＝＋－＠"
# codec="utf-8": no lone surrogates, which no UTF-8 file can hold
ALPHABET = st.sampled_from(CONTROLS + SCRIPTS + SPECIAL) | st.characters(codec="utf-8")
NASTY_VALUES = [
    "NA",
    "null",
    "nan",
    "NaN",
    "None",
    "1e5",
    "007",
    "-0",
    "",
    "'",
    "''=1",
    "TRUE",
    "#N/A",
    '"',
]

short_text = st.text(ALPHABET, max_size=30)
formula_text = st.builds(
    lambda lead, trigger, body: lead + trigger + body,
    st.text(st.sampled_from(" \t\r\n\x00\xa0\u3000\u200f\u202e\ufeff"), max_size=4),
    st.sampled_from("=+-@＝"),
    short_text,
)
long_text = st.builds(
    lambda unit, tail: unit * (10_000 // len(unit) + 1) + tail,
    st.text(ALPHABET, min_size=1, max_size=20),
    short_text,
)
cells = st.one_of(short_text, formula_text, st.sampled_from(NASTY_VALUES), long_text)
ids = st.one_of(st.text(ALPHABET, max_size=20), formula_text, st.sampled_from(NASTY_VALUES))

SCHEMA = {
    "customer_id": "str",
    "customer_name": "str",
    "account_manager": "str",
    "p_churn": "float",
    "orders": "int",
    "visits": "Int64",
}
TEXT_COLUMNS = ("customer_name", "account_manager")
NUMBER = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|nan)", re.IGNORECASE
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    return pd.DataFrame(
        {
            "customer_id": draw(st.lists(ids, min_size=n, max_size=n)),
            "customer_name": draw(st.lists(cells, min_size=n, max_size=n)),
            "account_manager": draw(st.lists(cells, min_size=n, max_size=n)),
            "p_churn": draw(
                st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)
            ),
            "orders": draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)),
            "visits": pd.array(
                draw(st.lists(st.none() | st.integers(-5, 10**12), min_size=n, max_size=n)),
                dtype="Int64",
            ),
        }
    )


def csv_rows(path: Path) -> list[list[str]]:
    """The file as Python's csv module reads it (BOM stripped)."""
    csv.field_size_limit(2**31 - 1)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline=""), strict=True))


def invisible_lstrip(value: str) -> str:
    i = 0
    while i < len(value) and (value[i].isspace() or unicodedata.category(value[i])[0] == "C"):
        i += 1
    return value[i:]


def spreadsheet_view(
    path: Path, identifiers: tuple[str, ...] = ("customer_id",)
) -> list[list[str]]:
    """What a spreadsheet would do with the file: rows as a quote-aware reader sees them,
    after checking that no line break or control character sits outside quotes (a naive
    line splitter then sees the same rows) and that no non-identifier cell would be evaluated."""
    text = path.read_bytes()[3:].decode("utf-8")
    outside = re.sub(r'"[^"]*(?:""[^"]*)*"', '""', text)  # what is left is unquoted
    assert not re.search(r"\r(?!\n)|(?<!\r)\n", outside), (
        "a bare CR or LF outside quotes splits a row"
    )
    assert not re.search("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]", outside)
    rows = csv_rows(path)
    assert outside.count("\r\n") == len(rows)  # one physical line per row once quotes are respected
    header = rows[0]
    for row in rows[1:]:
        for name, cell in zip(header, row, strict=True):
            if name in identifiers or NUMBER.fullmatch(cell):
                continue  # identifiers are exact by contract; numbers are numbers
            stripped = invisible_lstrip(cell)
            assert cell.startswith("'") or not stripped.startswith(("=", "+", "-", "@", "＝")), (
                name,
                cell,
            )
            assert not cell.startswith(("\t", "\r", "\n"))
    return rows


def assert_same(back: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert back.columns.tolist() == frame.columns.tolist()
    for col in ("customer_id", *TEXT_COLUMNS):
        assert back[col].tolist() == frame[col].tolist(), col
    for a, b in zip(back["p_churn"], frame["p_churn"], strict=True):
        assert (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    assert back["orders"].dtype == np.int64 and back["orders"].tolist() == frame["orders"].tolist()
    assert back["visits"].dtype == "Int64"
    assert back["visits"].isna().tolist() == frame["visits"].isna().tolist()
    assert back["visits"].dropna().tolist() == frame["visits"].dropna().tolist()


# --------------------------------------------------------------------------- round trips


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frame=frames())
def test_every_string_round_trips_and_no_cell_is_a_formula(frame):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.csv"
        write_excel_csv_atomic(path, frame)
        # (a) Python's csv module: same rows, identifiers exact, text un-neutralises exactly
        rows = csv_rows(path)
        assert rows[0] == list(SCHEMA) and len(rows) == len(frame) + 1
        body = pd.DataFrame(rows[1:], columns=rows[0])
        assert body["customer_id"].tolist() == frame["customer_id"].tolist()
        for col in TEXT_COLUMNS:
            assert [unneutralise_cell(v) for v in body[col]] == frame[col].tolist()
        # (b) our reader: exact round trip, types included
        assert_same(read_excel_csv(path, SCHEMA), frame)
        # (c) a spreadsheet: no formula, no split row
        assert len(spreadsheet_view(path)) == len(rows)


@given(st.text(ALPHABET, max_size=50) | formula_text | st.sampled_from(NASTY_VALUES))
@settings(max_examples=500, deadline=None)
def test_neutralisation_is_reversible_and_safe(value):
    encoded = neutralise_cell(value)
    assert unneutralise_cell(encoded) == value
    assert not is_formula_like(encoded)
    assert encoded == value or encoded == "'" + value


def test_bare_cr_nul_and_every_control_character_survive(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["NA", "null", "nan", "1e5", "007", "=HYPERLINK(1)", "a\r=b"],
            "customer_name": [
                "Eve\r=2*21",
                "a\x00b",
                CONTROLS,
                " \t=1+1",
                "\u202e@SUM(A1)",
                "'quoted",
                None,
            ],
            "p_churn": [0.5, -0.25, float("nan"), 1e-5, float("inf"), -0.0, 3.0],
        }
    )
    path = tmp_path / "x.csv"
    write_excel_csv_atomic(path, frame)
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == len(frame) + 1  # every record ends in CRLF, CR inside quotes only
    assert b'"Eve\r=2*21"' in raw and b'"a\x00b"' in raw
    rows = spreadsheet_view(path)
    assert [r[1] for r in rows[1:]][:5] == [
        "Eve\r=2*21",
        "a\x00b",
        CONTROLS,
        "' \t=1+1",
        "'\u202e@SUM(A1)",
    ]
    assert [r[2] for r in rows[1:]] == [
        "0.5",
        "-0.25",
        "",
        "1e-05",
        "inf",
        "-0.0",
        "3.0",
    ]  # unquoted numbers
    back = read_excel_csv(path, {"customer_id": "str", "customer_name": "str", "p_churn": "float"})
    assert back["customer_id"].tolist() == frame["customer_id"].tolist()
    # a missing text cell is written blank and comes back as "" (documented), never as "nan"
    assert back["customer_name"].tolist() == [*frame["customer_name"][:6], ""]


def test_numbers_stay_unquoted_and_blank_is_missing(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "risk": [12.5, None],
            "n": [1, 2],
            "ok": [True, False],
            "maybe": pd.array([True, None], dtype="boolean"),
            "when": pd.to_datetime(["2024-01-31", None]),
            "visits": pd.array([None, 3], dtype="Int64"),
        }
    )
    path = tmp_path / "n.csv"
    write_excel_csv_atomic(path, frame)
    assert path.read_bytes()[3:].decode().splitlines()[1:] == [
        "c1,12.5,1,True,True,2024-01-31,",
        "c2,,2,False,,,3",
    ]
    schema = {
        "customer_id": "str",
        "risk": "float",
        "n": "int",
        "ok": "bool",
        "maybe": "boolean",
        "when": "datetime",
        "visits": "Int64",
    }
    back = read_excel_csv(path, schema)
    pd.testing.assert_frame_equal(back, frame.astype({"customer_id": object}), check_dtype=False)
    assert back["when"].dtype.kind == "M" and back["maybe"].dtype == "boolean"


def test_identifiers_are_never_altered_but_other_columns_are(tmp_path):
    frame = pd.DataFrame({"customer_id": ["=1+1", "'x"], "note": ["=1+1", "'x"]})
    text = excel_csv_text(frame)
    assert text.splitlines()[1:] == ["=1+1,'=1+1", "'x,''x"]
    assert excel_csv_text(frame, identifiers=()).splitlines()[1] == "'=1+1,'=1+1"
    path = tmp_path / "ids.csv"
    write_excel_csv_atomic(path, frame, identifiers=("customer_id", "note"))
    assert path.read_bytes()[3:].decode().splitlines()[1] == "=1+1,=1+1"


def test_a_single_column_of_blanks_keeps_its_rows(tmp_path):
    frame = pd.DataFrame({"customer_id": ["", "x", ""]})
    path = tmp_path / "one.csv"
    write_excel_csv_atomic(path, frame)
    assert len(csv_rows(path)) == 4  # a blank line would be skipped by csv readers: written as ""
    assert read_excel_csv(path, {"customer_id": "str"})["customer_id"].tolist() == ["", "x", ""]


def test_header_only_file_reads_as_empty_typed_frame(tmp_path):
    frame = pd.DataFrame(
        {c: pd.Series([], dtype=object if k == "str" else None) for c, k in SCHEMA.items()}
    )
    path = tmp_path / "empty.csv"
    write_excel_csv_atomic(path, frame)
    back = read_excel_csv(path, SCHEMA)
    assert back.columns.tolist() == list(SCHEMA) and len(back) == 0
    assert back["orders"].dtype == np.int64 and back["visits"].dtype == "Int64"


def test_extra_columns_are_ignored_and_order_follows_the_schema(tmp_path):
    path = write_raw(tmp_path, b"\xef\xbb\xbfz,customer_id,p\r\n1,c1,0.5\r\n")
    back = read_excel_csv(path, {"p": "float", "customer_id": "str"})
    assert back.columns.tolist() == ["p", "customer_id"] and back.loc[0, "customer_id"] == "c1"


def test_huge_fields_beyond_the_csv_module_default_limit(tmp_path):
    big = "=x\r\n\x00" * 60_000  # 300,000 characters, above csv's 131,072 default
    frame = pd.DataFrame({"customer_id": [big], "note": [big]})
    path = tmp_path / "big.csv"
    write_excel_csv_atomic(path, frame)
    back = read_excel_csv(path, {"customer_id": "str", "note": "str"})
    assert back.loc[0, "customer_id"] == big and back.loc[0, "note"] == big


# --------------------------------------------------------------------------- malformed input


def write_raw(tmp_path: Path, data: bytes, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "schema", "row", "column", "words"),
    [
        (b"customer_id,n\r\nc1,1\r\n", {"customer_id": "str", "p": "float"}, 1, "p", "missing"),
        (
            b"customer_id,n\r\nc1,1\r\nc2,x\r\n",
            {"customer_id": "str", "n": "int"},
            3,
            "n",
            "whole number",
        ),
        (b"customer_id,n\r\nc1,\r\n", {"customer_id": "str", "n": "int"}, 2, "n", "blank"),
        (
            b"customer_id,n\r\nc1,99999999999999999999\r\n",
            {"customer_id": "str", "n": "Int64"},
            2,
            "n",
            "64-bit",
        ),
        (
            b"customer_id,p\r\nc1,1.5\r\nc2,1,5\r\n",
            {"customer_id": "str", "p": "float"},
            3,
            "#3",
            "fields",
        ),
        (b"customer_id,p\r\nc1\r\n", {"customer_id": "str", "p": "float"}, 2, "p", "fields"),
        (
            b"customer_id,p\r\nc1,abc\r\n",
            {"customer_id": "str", "p": "float"},
            2,
            "p",
            "not a number",
        ),
        (  # the csv module (strict) finds broken quoting; it names the record, not the field
            b'customer_id,p\r\nc1,"1.5\r\n',
            {"customer_id": "str", "p": "float"},
            2,
            None,
            "unexpected end of data",
        ),
        (
            b'customer_id,p\r\nc1,"1"5\r\n',
            {"customer_id": "str", "p": "float"},
            2,
            None,
            "expected after",
        ),
        (
            b"customer_id,p\r\nc1,1\r\nc\xff2,1\r\n",
            {"customer_id": "str", "p": "float"},
            3,
            "customer_id",
            "UTF-8",
        ),
        (
            b"customer_id,p\r\nc1,\xe2\x82\r\n",
            {"customer_id": "str", "p": "float"},
            2,
            "p",
            "UTF-8",
        ),
        (b"", {"customer_id": "str"}, 1, None, "empty"),
        (b"\xef\xbb\xbf", {"customer_id": "str"}, 1, None, "empty"),
        (b"customer_id,customer_id\r\n1,2\r\n", {"customer_id": "str"}, 1, "customer_id", "twice"),
        (
            b"customer_id,ok\r\nc1,yes\r\n",
            {"customer_id": "str", "ok": "bool"},
            2,
            "ok",
            "True or False",
        ),
        (
            b"customer_id,d\r\nc1,2024-13-45\r\n",
            {"customer_id": "str", "d": "datetime"},
            2,
            "d",
            "ISO 8601",
        ),
    ],
)
def test_malformed_csv_names_file_row_and_column(tmp_path, data, schema, row, column, words):
    path = write_raw(tmp_path, data)
    with pytest.raises(MalformedCsvError) as info:
        read_excel_csv(path, schema)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.row, err.column) == (row, column)
    message = str(err)
    assert str(path) in message and words in message
    if row is not None:
        assert f"row {row}" in message
    if column is not None:
        assert repr(column) in message


def test_unknown_schema_type_is_a_caller_error(tmp_path):
    path = write_raw(tmp_path, b"a\r\n1\r\n")
    with pytest.raises(ValueError, match="unknown schema"):
        read_excel_csv(path, {"a": "decimal"})


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), header=st.booleans())
def test_random_bytes_never_raise_anything_but_malformed(data, header):
    prefix = b"\xef\xbb\xbfcustomer_id,p,n\r\n" if header else b""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_raw(Path(tmp), prefix + data)
        try:
            out = read_excel_csv(path, {"customer_id": "str", "p": "float", "n": "Int64"})
        except MalformedCsvError as err:
            assert str(path) in str(err)
        else:
            assert out.columns.tolist() == ["customer_id", "p", "n"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    frame=frames(), at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=8), cut=st.booleans()
)
def test_damaged_files_never_raise_anything_but_malformed(frame, at, junk, cut):
    data = b"\xef\xbb\xbf" + excel_csv_text(frame).encode("utf-8")
    i = int(at * len(data))
    damaged = data[:i] + (b"" if cut else junk) + data[i + (len(junk) if cut else 0) :]
    assume(damaged != data)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_raw(Path(tmp), damaged)
        try:
            read_excel_csv(path, SCHEMA)
        except MalformedCsvError as err:
            assert str(path) in str(err)


# --------------------------------------------------------------------------- file names


def sha8(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


names = st.one_of(
    st.text(ALPHABET, max_size=40),
    long_text,
    st.sampled_from(
        ["CON", "con.txt", "../../etc/passwd", "A/B", "A_B", "", " . ", "张" * 90, "COM¹.x"]
    ),
)


def assert_portable(stem: str) -> None:
    assert stem and len(stem.encode("utf-8")) <= MAX_STEM_BYTES
    assert len((stem + ".xlsx").encode("utf-8")) <= 120
    assert not any(unicodedata.category(ch)[0] == "C" for ch in stem)
    assert not set(stem) & set('/\\:*?"<>|')
    assert stem[0] not in " ." and stem[-1] not in " ."
    assert not re.fullmatch(
        r"(?i)(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])", stem.split(".")[0].rstrip()
    )
    assert stem == unicodedata.normalize("NFC", stem)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
@given(name=names, others=st.lists(st.text(ALPHABET, max_size=20), max_size=5))
def test_stem_depends_on_the_name_alone(name, others):
    stem = safe_file_stem(name)
    assert_portable(stem)
    assert safe_file_stem(name) == stem  # deterministic
    if stem != name:  # cleaned or cut: always carries the name's hash
        assert stem.endswith("-" + sha8(name))
    taken = {safe_file_stem(o).casefold() for o in others}
    if stem.casefold() not in taken:  # other names only matter on a case-insensitive clash
        assert safe_file_stem(name, taken) == stem


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
@given(name=names)
def test_every_stem_can_be_created_on_disk(name):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stem = safe_file_stem(name)
        target = folder / f"{stem}.csv"
        write_excel_csv_atomic(target, pd.DataFrame({"customer_id": ["c1"]}))
        assert [p.name for p in folder.iterdir()] == [target.name]  # inside, and no temp left


def test_cleaned_names_never_take_a_clean_names_file():
    assert safe_file_stem("A_B") == "A_B"
    assert safe_file_stem("A/B") == f"A_B-{sha8('A/B')}"
    for order in (["A_B", "A/B"], ["A/B", "A_B"]):
        taken: set[str] = set()
        assert {n: safe_file_stem(n, taken) for n in order} == {
            "A_B": "A_B",
            "A/B": f"A_B-{sha8('A/B')}",
        }


def test_case_clash_is_the_only_order_dependence():
    taken: set[str] = set()
    assert safe_file_stem("ANA", taken) == "ANA"
    assert safe_file_stem("Ana", taken) == f"Ana-{sha8('Ana')}"
    assert safe_file_stem("Ana", taken) == f"Ana-{sha8('Ana')}-2"  # same name twice: a counter
    assert len(taken) == 3


@pytest.mark.parametrize(
    "name",
    [
        "CON",
        "CON.txt",
        "nul",
        "com1.anything",
        "LPT9",
        "lpt0",
        "Com¹",
        "LPT³.a.b",
        "aux .csv",
        "PRN..",
    ],
)
def test_windows_device_names_get_an_underscore(name):
    stem = safe_file_stem(name)
    assert stem.startswith("_") and stem.endswith(sha8(name))
    assert_portable(stem)


@pytest.mark.parametrize("name", ["CONSOLE", "COM10", "LPT", "Connor.Smith", "nullable"])
def test_names_that_only_look_like_devices_are_kept(name):
    assert safe_file_stem(name) == name


@pytest.mark.parametrize("name", ["مریم رضایی", "علی-رضا", "شهرام.ک", "Ana María", "ناصر_۲"])
def test_safe_names_in_any_script_are_kept_readable(name):
    assert safe_file_stem(name) == name


def test_long_cjk_and_combining_names_are_cut_cleanly(tmp_path):
    cjk = "张伟" * 45
    stem = safe_file_stem(cjk)
    assert stem.startswith("张伟张伟") and stem.endswith(sha8(cjk))
    write_excel_csv_atomic(tmp_path / f"{stem}.csv", pd.DataFrame({"customer_id": ["c1"]}))
    assert (tmp_path / f"{stem}.csv").exists()
    marks = "x\u0301\u0302" * 60  # letters with two combining marks each (nothing to compose)
    stem = safe_file_stem(marks)
    base = stem.rsplit("-", 1)[0]
    assert base.startswith("x") and len(base) % 3 == 0  # never cut between a letter and its marks


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "..", "/abs/path", "a\\..\\b", "~/x", "\x00../"]
)
def test_path_traversal_stays_in_the_folder(tmp_path, name):
    stem = safe_file_stem(name)
    target = tmp_path / f"{stem}.csv"
    assert target.resolve().parent == tmp_path.resolve()
    write_excel_csv_atomic(target, pd.DataFrame({"customer_id": ["c1"]}))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_atomic_writes_to_names_near_the_limit(tmp_path):
    target = tmp_path / ("n" * 250 + ".csv")  # 254 bytes: legal, but ".{name}.XXXX.tmp" was not
    with atomic_path(target) as tmp:
        assert len(tmp.name) < 40 and tmp.parent == tmp_path
        tmp.write_bytes(b"ok")
    assert target.read_bytes() == b"ok"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("max_bytes", [32, 40, 200])
def test_smaller_and_larger_caps_are_respected(max_bytes):
    for name in ["x" * 500, "张" * 500, "", "A/B", "CON"]:
        taken: set[str] = set()
        for _ in range(12):  # the same name again and again: hash, then counters
            assert (
                len(safe_file_stem(name, taken, max_bytes=max_bytes).encode("utf-8")) <= max_bytes
            )
    with pytest.raises(ValueError):
        safe_file_stem("x", max_bytes=31)
