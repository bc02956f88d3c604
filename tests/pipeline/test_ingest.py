"""Tests for ``churnguard ingest``: every row ends clean or quarantined, with the right reason."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnguard import ingest, ingest_rules
from churnguard.cli import app
from churnguard.config import EngineParams, IngestParams, SourceParams
from churnguard.errors import ChurnguardError, ConfigError, DataError
from churnguard.ingest import QUARANTINE_FILE, REPORT_FILE, TRANSACTIONS_FILE, run_ingest

HEADER = [
    "customer_id",
    "order_id",
    "ts",
    "amount",
    "quantity",
    "account_manager",
    "customer_name",
    "region",
]
CANONICAL_OUT = [
    "customer_id",
    "order_id",
    "ts",
    "amount",
    "quantity",
    "account_manager",
    "customer_name",
    "region",
    "product_id",
    "source_row",
]
GOOD = [
    ["007", "o1", "2024-01-05", "10.50", "1", "Sara", "مریم رضایی", "north"],
    ["002", "o2", "2024-02-01 13:45:00", "20", "2", "", "علی", "south"],
    ["007", "o3", "2024-01-02", "5", "", " Omid ", "Mary", ""],
    ["010", "o4", "2024-03-01", "-3.25", "1", "Sara", "Zoë", "west"],
]
CDNOW_LINES = [
    " customer_id  date number_of_cds  dollar_value",
    " 00001 19970101  1   11.77",
    " 00002 19970112  1   12.00",
    " 00002 19970112  5   77.00",
    " 00003 19970102  2   20.76",
    " 00003 19970330  2   20.76",
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def engine(tmp_path: Path) -> EngineParams:
    return EngineParams(temp_directory=str(tmp_path / "duck"), memory_limit="1GB", threads=2)


def write_csv(
    path: Path,
    rows: list[list[str]],
    header: list[str] | None = HEADER,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    """Write rows with Python's csv module (quotes fields that need it)."""
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator=newline)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def ingest_params(
    path: Path, out: Path, source: dict[str, Any] | None = None, **kw: Any
) -> IngestParams:
    kw.setdefault("max_quarantine_share", 1.0)
    return IngestParams(
        source=SourceParams(path=str(path), **(source or {})), output_dir=str(out), **kw
    )


def outputs(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    clean = pq.read_table(out / TRANSACTIONS_FILE).to_pylist()
    quarantine = pq.read_table(out / QUARANTINE_FILE).to_pylist()
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    return clean, quarantine, report


def assert_reconciles(out: Path, n_rows: int) -> None:
    clean, quarantine, report = outputs(out)
    rows = sorted([r["source_row"] for r in clean] + [r["source_row"] for r in quarantine])
    assert rows == list(range(1, n_rows + 1))
    assert report["rows_in"] == n_rows == report["rows_clean"] + report["rows_quarantined"]
    assert report["rows_quarantined"] == sum(report["reasons"].values())
    assert report["rows_quarantined"] == report["rows_excluded"] + report["rows_rejected"]
    assert report["reconciles"] is True


# --------------------------------------------------------------------------- clean data


def test_clean_file_round_trip_keeps_values_types_and_order(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", GOOD)
    report = run_ingest(ingest_params(src, tmp_path / "out"), engine)

    table = pq.read_table(tmp_path / "out" / TRANSACTIONS_FILE)
    assert table.column_names == CANONICAL_OUT
    assert [str(t) for t in table.schema.types] == [
        "string", "string", "timestamp[us]", "double", "double",
        "string", "string", "string", "string", "int64",
    ]  # fmt: skip
    rows = table.to_pylist()
    assert [(r["customer_id"], r["source_row"]) for r in rows] == [
        ("002", 2),
        ("007", 3),
        ("007", 1),
        ("010", 4),
    ]
    first = rows[2]
    assert first == {
        "customer_id": "007",
        "order_id": "o1",
        "ts": dt.datetime(2024, 1, 5),
        "amount": 10.5,
        "quantity": 1.0,
        "account_manager": "Sara",
        "customer_name": "مریم رضایی",
        "region": "north",
        "product_id": None,
        "source_row": 1,
    }
    assert rows[0]["ts"] == dt.datetime(2024, 2, 1, 13, 45)
    assert rows[0]["account_manager"] == "Unassigned"  # blank → default
    assert rows[0]["customer_name"] == "علی"
    assert rows[1]["account_manager"] == "Omid"  # trimmed
    assert rows[1]["quantity"] is None and rows[1]["region"] is None

    quarantine = pq.read_table(tmp_path / "out" / QUARANTINE_FILE)
    assert quarantine.num_rows == 0
    assert quarantine.column_names == ["source_row", "reason", "detail", *HEADER, "raw_line"]

    assert report["rows_in"] == 4 and report["rows_clean"] == 4
    assert report["customers"] == 3
    assert report["ts_min"] == "2024-01-02T00:00:00"
    assert report["ts_max"] == "2024-03-01T00:00:00"
    assert report["amount_total_clean"] == pytest.approx(32.25)
    assert report["quarantined_share"] == 0.0
    assert_reconciles(tmp_path / "out", 4)


def test_unmapped_order_id_is_customer_at_timestamp(tmp_path: Path, engine) -> None:
    src = write_csv(
        tmp_path / "tx.csv", [["A1", "2024-01-05 08:30:00", "1"]], ["cust", "when", "eur"]
    )
    cols = {"customer_id": "cust", "ts": "when", "amount": "eur"}
    run_ingest(ingest_params(src, tmp_path / "out", {"columns": cols}), engine)
    (row,) = pq.read_table(tmp_path / "out" / TRANSACTIONS_FILE).to_pylist()
    assert row["order_id"] == "A1@2024-01-05T08:30:00"
    assert row["account_manager"] == "Unassigned"
    assert row["quantity"] is None and row["product_id"] is None


# --------------------------------------------------------------------------- bad rows


def _bad(**changes: str) -> list[str]:
    row = list(GOOD[0])
    for name, value in changes.items():
        row[HEADER.index(name)] = value
    return row


@pytest.mark.parametrize(
    ("bad_row", "extra", "reason", "named"),
    [
        (_bad(customer_id="   "), {}, "missing_customer_id", "customer_id"),
        (_bad(ts="2024-13-45"), {}, "unparseable_date", "'2024-13-45'"),
        (_bad(amount="12x"), {}, "non_numeric_amount", "'12x'"),
        (_bad(amount="nan"), {}, "non_numeric_amount", "'nan'"),
        (_bad(amount="1e400"), {}, "non_numeric_amount", "'1e400'"),
        (_bad(quantity="two"), {}, "non_numeric_quantity", "'two'"),
        (_bad(ts="2024-07-01"), {"as_of": dt.date(2024, 6, 30)}, "date_after_as_of", "2024-06-30"),
        (GOOD[0], {}, "exact_duplicate", "source_row 1"),
        (_bad(customer_id="", ts="bad", amount="x"), {}, "missing_customer_id", "customer_id"),
    ],
    ids=[
        "blank customer id is quarantined",
        "impossible date is quarantined",
        "amount with letters is quarantined",
        "nan amount is quarantined",
        "amount overflowing a double is quarantined",
        "non-empty unparseable quantity is quarantined",
        "date after as_of is quarantined",
        "exact duplicate of an earlier row is quarantined",
        "first failing rule wins",
    ],
)
def test_bad_row_is_quarantined_with_reason(
    tmp_path: Path, engine, bad_row: list[str], extra: dict[str, Any], reason: str, named: str
) -> None:
    rows = [GOOD[0], GOOD[1], bad_row, GOOD[3]]
    src = write_csv(tmp_path / "tx.csv", rows)
    report = run_ingest(ingest_params(src, tmp_path / "out", **extra), engine)

    _, quarantine, _ = outputs(tmp_path / "out")
    assert len(quarantine) == 1
    (q,) = quarantine
    assert q["source_row"] == 3
    assert q["reason"] == reason
    assert named in q["detail"]
    assert (q["customer_id"] or "") == bad_row[0]  # raw value kept as text (empty → NULL)
    assert report["reasons"][reason] == 1
    assert report["rows_clean"] == 3
    assert_reconciles(tmp_path / "out", 4)


def test_duplicates_are_kept_when_not_dropped(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", [GOOD[0], GOOD[0]])
    report = run_ingest(ingest_params(src, tmp_path / "out", drop_exact_duplicates=False), engine)
    assert report["rows_clean"] == 2


# --------------------------------------------------------------------------- the rules, declared once


def test_every_declared_rule_fires_and_is_reported(tmp_path: Path, engine) -> None:
    """Each rule of sql/ingest_validate.sql can quarantine a row, under its own reason."""
    rows = [
        GOOD[0],
        _bad(customer_id=""),
        _bad(ts="2024-13-45"),
        _bad(amount="12x"),
        _bad(quantity="two"),
        _bad(ts="2024-07-01"),
        GOOD[0],
        _bad(order_id="o9", region="test"),
        _bad(order_id="o10", customer_id="C\u202e1"),
        _bad(order_id="o11", amount="1e308"),
    ]
    src = write_csv(tmp_path / "tx.csv", rows)
    with open(src, "ab") as fh:  # malformed lines: too few fields, a broken quote, bad bytes
        fh.write(b'12,o12,2024-01-05\n13,o13,2024-01-05,1,1,Sara,"Ann" B,north\n')
        fh.write(b"14,o14,2024-01-05,1,1,Sara,J\xe9r\xf4me,north\n")
    exclude = [{"name": "test_rows", "column": "region", "equals": "test"}]
    params = ingest_params(src, tmp_path / "out", as_of=dt.date(2024, 6, 30), exclude=exclude)
    report = run_ingest(params, engine)
    seen = {q["reason"].partition(":")[0] for q in outputs(tmp_path / "out")[1]}
    assert list(report["reasons"]) == ingest_rules.report_reasons(params)
    assert [r.partition(":")[0] for r in report["reasons"]] == list(ingest_rules.REASONS)
    assert report["reader"] == "record by record"
    assert seen == set(ingest_rules.REASONS)
    assert_reconciles(tmp_path / "out", 13)


def test_rules_are_declared_once_in_the_validation_sql() -> None:
    sql = ingest_rules.sql_text(ingest_rules.INGEST_VALIDATE_SQL)
    code = "".join(Path(m.__file__).read_text(encoding="utf-8") for m in (ingest, ingest_rules))
    assert len(ingest_rules.REASONS) == 12
    assert [r.reason for r in ingest_rules.RULES if r.per_item] == [ingest_rules.EXCLUDED]
    for rule in ingest_rules.RULES:
        declared = f"reason := '{rule.reason}{':' if rule.per_item else ''}'"
        assert sql.count(declared) == 1
        assert rule.doc and "Fix:" not in rule.doc
        assert not re.search(rf"\b{rule.reason}\b", code), (
            f"{rule.reason} is listed in the Python code too"
        )
        assert f"`{rule.reason}" in ingest_rules.describe_rules()
    assert {r.reason for r in ingest_rules.RULES if r.fix} >= {
        "exact_duplicate",
        "wrong_field_count",
    }
    assert "ingest.drop_exact_duplicates" in next(
        r.fix for r in ingest_rules.RULES if r.reason == "exact_duplicate"
    )
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert all(f"`{r}" in readme for r in ingest_rules.REASONS), "README.md's reason list is stale"


def test_a_rule_without_its_doc_comment_is_refused() -> None:
    sql = ingest_rules.sql_text(ingest_rules.INGEST_VALIDATE_SQL)
    assert ingest_rules.declared_rules(sql) == ingest_rules.RULES
    broken = sql.replace("-- rule missing_customer_id:", "-- missing_customer_id:")
    with pytest.raises(ChurnguardError, match="missing_customer_id"):
        ingest_rules.declared_rules(broken)


def test_sql_programs_are_plain_sql_with_bound_parameters() -> None:
    """No Python formatting in the .sql files; every $parameter they use has a value."""
    programs = [
        v for k, v in vars(ingest_rules).items() if k.startswith("INGEST_") and k.endswith("_SQL")
    ]
    assert len(programs) == 5
    raw = ingest_rules.RawLines(
        path=Path("x.csv"), fmt="csv", mapped={"customer_id": "c", "ts": "t", "amount": "a"}
    )
    values = ingest_rules.sql_values(IngestParams(), raw, Path("out"), dt.date(2024, 6, 30))
    used: set[str] = set()
    for program in programs:
        sql = ingest_rules.sql_text(program)
        code = re.sub(r"\\x\{[0-9A-F]+\}", "", sql)  # RE2's \x{202E} escapes are no format fields
        assert "{" not in code and "}" not in code, program
        assert not re.search(r"%\(\w+\)s", sql), program
        used |= ingest_rules.sql_parameters(sql)
    assert used == set(values)
    validate = ingest_rules.sql_text(ingest_rules.INGEST_VALIDATE_SQL)
    assert "from raw_lines" in validate  # the staged view, canonical names only


# --------------------------------------------------------------------------- file formats


def test_utf8_bom_and_crlf(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", GOOD, encoding="utf-8-sig", newline="\r\n")
    assert src.read_bytes().startswith(b"\xef\xbb\xbfcustomer_id")
    report = run_ingest(ingest_params(src, tmp_path / "out"), engine)
    clean, _, _ = outputs(tmp_path / "out")
    assert report["rows_clean"] == 4
    assert {r["customer_id"] for r in clean} == {"007", "002", "010"}
    assert all("\r" not in (r["region"] or "") for r in clean)
    assert {r["region"] for r in clean} == {"north", "south", None, "west"}


def test_quoted_fields_with_delimiter_quotes_and_newline(tmp_path: Path, engine) -> None:
    rows = [_bad(customer_name='Doe, Jane "JD"\nsecond line', region="a,b")]
    src = write_csv(tmp_path / "tx.csv", rows)
    run_ingest(ingest_params(src, tmp_path / "out"), engine)
    (row,) = outputs(tmp_path / "out")[0]
    assert row["customer_name"] == 'Doe, Jane "JD" second line'  # a line break is a space
    assert row["region"] == "a,b"


def test_thousands_separator_comma(tmp_path: Path, engine) -> None:
    rows = [_bad(amount="1,234.50"), _bad(order_id="o2", amount=" 12 "), _bad(amount="12,5")]
    src = write_csv(tmp_path / "tx.csv", rows)
    run_ingest(ingest_params(src, tmp_path / "out", {"thousands_separator": ","}), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert sorted(r["amount"] for r in clean) == [12.0, 1234.5]
    # "12,5" is not grouped by three: a decimal comma, not a thousands separator
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [(3, "non_numeric_amount")]


def test_decimal_comma_with_dot_thousands(tmp_path: Path, engine) -> None:
    rows = [_bad(amount="12,5"), _bad(order_id="o2", amount="1.234,5"), _bad(amount="1,2,3")]
    src = write_csv(tmp_path / "tx.csv", rows, delimiter=";")
    source = {"delimiter": ";", "decimal_separator": ",", "thousands_separator": "."}
    run_ingest(ingest_params(src, tmp_path / "out", source), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert sorted(r["amount"] for r in clean) == [12.5, 1234.5]
    assert [q["reason"] for q in quarantine] == ["non_numeric_amount"]


def test_latin1_file_reads_when_configured(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", [_bad(customer_name="José Müller")], encoding="latin-1")
    run_ingest(ingest_params(src, tmp_path / "out", {"encoding": "latin-1"}), engine)
    (row,) = outputs(tmp_path / "out")[0]
    assert row["customer_name"] == "José Müller"


def test_latin1_file_without_encoding_gives_clear_error(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", [_bad(customer_name="José Müller")], encoding="latin-1")
    with pytest.raises(DataError) as err:
        run_ingest(ingest_params(src, tmp_path / "out"), engine)
    assert str(src) in str(err.value)
    assert "ingest.source.encoding: latin-1" in str(err.value)
    assert not (tmp_path / "out" / TRANSACTIONS_FILE).exists()


def test_whitespace_separated_cdnow_file(tmp_path: Path, engine) -> None:
    src = tmp_path / "CDNOW_sample.txt"
    src.write_bytes(("\r\n".join(CDNOW_LINES) + "\r\n").encode())
    source = {
        "delimiter": "whitespace",
        "date_format": "%Y%m%d",
        "columns": {
            "customer_id": "customer_id",
            "ts": "date",
            "amount": "dollar_value",
            "quantity": "number_of_cds",
        },
    }
    report = run_ingest(ingest_params(src, tmp_path / "out", source), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert report["rows_in"] == 5 and quarantine == []
    assert [(r["customer_id"], r["ts"].date(), r["quantity"], r["amount"]) for r in clean] == [
        ("00001", dt.date(1997, 1, 1), 1.0, 11.77),
        ("00002", dt.date(1997, 1, 12), 1.0, 12.0),
        ("00002", dt.date(1997, 1, 12), 5.0, 77.0),
        ("00003", dt.date(1997, 1, 2), 2.0, 20.76),
        ("00003", dt.date(1997, 3, 30), 2.0, 20.76),
    ]
    assert clean[1]["order_id"] == clean[2]["order_id"] == "00002@1997-01-12T00:00:00"
    assert_reconciles(tmp_path / "out", 5)


def test_whitespace_line_with_wrong_field_count_is_quarantined(tmp_path: Path, engine) -> None:
    src = tmp_path / "cd.txt"
    src.write_text("\n".join([*CDNOW_LINES[:3], " 00009 19970101  1", "", CDNOW_LINES[4]]) + "\n")
    source = {
        "delimiter": "whitespace",
        "date_format": "%Y%m%d",
        "columns": {"customer_id": "customer_id", "ts": "date", "amount": "dollar_value"},
    }
    run_ingest(ingest_params(src, tmp_path / "out", source), engine)
    _, quarantine, _ = outputs(tmp_path / "out")
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [(3, "wrong_field_count")]
    assert_reconciles(tmp_path / "out", 4)  # the blank line is not a data row


def test_parquet_input_with_typed_columns(tmp_path: Path, engine) -> None:
    table = pa.table(
        {
            "customer_id": ["001", "002", None],
            "ts": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]),
            "amount": [1.23456, float("nan"), 3.0],
            "quantity": pa.array([1, 2, 3], pa.int64()),
        }
    )
    src = tmp_path / "tx.parquet"
    pq.write_table(table, src)
    cols = {"customer_id": "customer_id", "ts": "ts", "amount": "amount", "quantity": "quantity"}
    report = run_ingest(ingest_params(src, tmp_path / "out", {"columns": cols}), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert report["format"] == "parquet"
    assert [(r["customer_id"], r["ts"], r["amount"], r["quantity"]) for r in clean] == [
        ("001", dt.datetime(2024, 1, 1), 1.2346, 1.0)
    ]
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [
        (2, "non_numeric_amount"),
        (3, "missing_customer_id"),
    ]


# --------------------------------------------------------------------------- file-level errors


def test_missing_file_names_path_and_key(tmp_path: Path, engine) -> None:
    with pytest.raises(DataError, match=r"ingest\.source\.path") as err:
        run_ingest(ingest_params(tmp_path / "nope.csv", tmp_path / "out"), engine)
    assert "nope.csv" in str(err.value)


def test_empty_file(tmp_path: Path, engine) -> None:
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    with pytest.raises(DataError, match="no data rows in .*empty.csv"):
        run_ingest(ingest_params(src, tmp_path / "out"), engine)


def test_header_only_file(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "header.csv", [])
    with pytest.raises(DataError, match="no data rows in .*header.csv"):
        run_ingest(ingest_params(src, tmp_path / "out"), engine)


def test_missing_required_column_names_key_and_found_columns(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", [["1", "2024-01-01", "3"]], ["cust", "day", "value"])
    cols = {"customer_id": "cust", "ts": "date", "amount": "value"}
    with pytest.raises(DataError) as err:
        run_ingest(ingest_params(src, tmp_path / "out", {"columns": cols}), engine)
    msg = str(err.value)
    assert "ingest.source.columns.ts" in msg
    assert "'cust', 'day', 'value'" in msg
    assert str(src) in msg


def test_missing_optional_column_is_named_too(tmp_path: Path, engine) -> None:
    src = write_csv(
        tmp_path / "tx.csv", [["1", "2024-01-01", "3"]], ["customer_id", "ts", "amount"]
    )
    with pytest.raises(DataError) as err:  # default mapping also maps order_id, region, …
        run_ingest(ingest_params(src, tmp_path / "out"), engine)
    assert "ingest.source.columns.region" in str(err.value)
    assert "ingest.source.columns.customer_id" not in str(err.value)


def test_invalid_date_format_is_a_config_error(tmp_path: Path, engine) -> None:
    src = write_csv(tmp_path / "tx.csv", GOOD)
    with pytest.raises(ConfigError, match=r"ingest\.source\.date_format"):
        run_ingest(ingest_params(src, tmp_path / "out", {"date_format": "%Q"}), engine)


def test_threshold_exceeded_raises_after_writing_everything(tmp_path: Path, engine) -> None:
    rows = [GOOD[0], _bad(ts="soon"), _bad(ts="later"), _bad(amount="?"), GOOD[1]]
    src = write_csv(tmp_path / "tx.csv", rows)
    params = ingest_params(src, tmp_path / "out", max_quarantine_share=0.05)
    with pytest.raises(DataError) as err:
        run_ingest(params, engine)
    msg = str(err.value)
    assert "ingest.max_quarantine_share" in msg and "60.0%" in msg
    assert "unparseable_date 2" in msg and "non_numeric_amount 1" in msg
    for name in (TRANSACTIONS_FILE, QUARANTINE_FILE, REPORT_FILE):
        assert (tmp_path / "out" / name).exists()
    assert_reconciles(tmp_path / "out", 5)


# --------------------------------------------------------------------------- determinism


def test_rerun_gives_byte_identical_outputs(tmp_path: Path, engine) -> None:
    rows = [
        [f"{i % 97:05d}", "", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", f"{(i * 7.31) % 500:.3f}",
         str(i % 5), "" if i % 3 else "Sara", f"name {i % 97}", "r"]
        for i in range(20_000)
    ] + [_bad(amount="oops")]  # fmt: skip
    src = write_csv(tmp_path / "tx.csv", rows)
    digests = []
    for run in ("a", "b"):
        run_ingest(ingest_params(src, tmp_path / run), engine)
        digests.append(
            [(tmp_path / run / n).read_bytes() for n in (TRANSACTIONS_FILE, QUARANTINE_FILE)]
        )
        digests[-1].append((tmp_path / run / REPORT_FILE).read_bytes())
    assert digests[0] == digests[1]


# --------------------------------------------------------------------------- property


_ALPHABET = st.sampled_from(list("aZé م0123456789-.,;:\"'\n\t/"))
_FIELD = st.one_of(
    st.text(_ALPHABET, max_size=12),
    st.sampled_from(["", " ", "007", "2024-01-05", "2024-13-01", "12.5", "1,234.5", "nan", "x"]),
)
_ROW = st.lists(_FIELD, min_size=len(HEADER), max_size=len(HEADER))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROW, min_size=1, max_size=15), dup=st.lists(st.integers(0, 14), max_size=4))
def test_every_row_is_clean_or_quarantined(rows: list[list[str]], dup: list[int]) -> None:
    rows = rows + [rows[i % len(rows)] for i in dup]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = write_csv(tmp_path / "messy.csv", rows)
        engine = EngineParams(temp_directory=str(tmp_path / "duck"))
        report = run_ingest(ingest_params(src, tmp_path / "out"), engine)
        assert report["rows_in"] == len(rows)
        assert_reconciles(tmp_path / "out", len(rows))


# --------------------------------------------------------------------------- CLI


def _cli_output(result: Any) -> str:
    return result.output + (getattr(result, "stderr", "") or "")


def test_cli_unknown_key_exits_2(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("ingest:\n  max_quarantine_shar: 0.1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", "--params", str(params)])
    assert result.exit_code == 2
    assert "ingest.max_quarantine_shar" in _cli_output(result)


def test_cli_bad_data_file_exits_3(tmp_path: Path) -> None:
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    params = tmp_path / "params.yaml"
    params.write_text(
        f"engine:\n  temp_directory: {tmp_path / 'duck'}\n"
        f"ingest:\n  source:\n    path: {src}\n  output_dir: {tmp_path / 'out'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["ingest", "--params", str(params)])
    assert result.exit_code == 3
    assert "no data rows" in _cli_output(result)


def test_without_an_as_of_date_lines_dated_after_the_run_date_are_quarantined(
    tmp_path: Path, engine
) -> None:
    """ingest.as_of defaults to the run date: a line from the future (a typo such as 2099)
    is quarantined, counted and named, not let through to move every default as-of date."""
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    src = write_csv(tmp_path / "tx.csv", [GOOD[0], _bad(ts="2099-01-01"), _bad(ts=tomorrow)])
    report = run_ingest(ingest_params(src, tmp_path / "out"), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert report["as_of"] == "run date" and report["reasons"]["date_after_as_of"] == 2
    assert len(clean) == 1 and {q["reason"] for q in quarantine} == {"date_after_as_of"}
    assert any("2099-01-01" in q["detail"] for q in quarantine)


# --------------------------------------------------------------------------- ingest.exclude


STATUS_HEADER = ["order_id", "customer_id", "ts", "amount", "status"]
STATUS_COLUMNS = {
    "order_id": "order_id",
    "customer_id": "customer_id",
    "ts": "ts",
    "amount": "amount",
}
STATUS_ROWS = [
    ["o1", "A", "2024-01-05", "10", "Completed"],
    ["o2", "A", "2024-02-05", "20", "Cancelled"],
    ["o3", "B", "2024-03-05", "30", "cancelled "],
    ["o4", "B", "2024-04-05", "40", "Returned"],
    ["o5", "C", "2024-05-05", "50", ""],
    ["o6", "C", "2024-06-05", "60", "Completed"],
]


def status_run(tmp_path: Path, engine, exclude: list[dict[str, Any]], **kw: Any):
    src = write_csv(tmp_path / "sales.csv", kw.pop("rows", STATUS_ROWS), STATUS_HEADER)
    params = ingest_params(
        src, tmp_path / "out", {"columns": STATUS_COLUMNS}, exclude=exclude, **kw
    )
    report = run_ingest(params, engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    return report, sorted(r["order_id"] for r in clean), quarantine


@pytest.mark.parametrize(
    ("rule", "kept"),
    [
        ({"in": ["Cancelled", "Returned"]}, ["o1", "o3", "o5", "o6"]),
        ({"in": ["Cancelled", "Returned"], "ignore_case": True}, ["o1", "o5", "o6"]),
        ({"equals": "Completed"}, ["o2", "o3", "o4", "o5"]),
        ({"not_in": ["Completed"]}, ["o1", "o6"]),
        ({"equals": ""}, ["o1", "o2", "o3", "o4", "o6"]),
    ],
    ids=[
        "status in a list is excluded, exactly as written (blanks trimmed)",
        "ignore_case also excludes 'cancelled'",
        "equals excludes one value",
        "not_in keeps only the listed values (a blank status is not among them)",
        "equals '' excludes rows with a blank value",
    ],
)
def test_exclude_rule_keeps_excluded_rows_in_quarantine_with_their_rule(
    tmp_path: Path, engine, rule: dict[str, Any], kept: list[str]
) -> None:
    report, clean, quarantine = status_run(
        tmp_path, engine, [{"name": "not_sales", "column": "status", **rule}]
    )
    excluded = sorted(q["order_id"] for q in quarantine)
    assert clean == kept and sorted(clean + excluded) == [f"o{i}" for i in range(1, 7)]
    assert {q["reason"] for q in quarantine} <= {"excluded_by_rule:not_sales"}
    assert all("ingest.exclude rule 'not_sales'" in q["detail"] for q in quarantine)
    assert report["reasons"]["excluded_by_rule:not_sales"] == len(excluded)
    assert report["rows_excluded"] == len(excluded) and report["rows_rejected"] == 0
    assert_reconciles(tmp_path / "out", 6)


def test_exclude_ranges_on_numbers_and_dates_and_first_rule_wins(tmp_path: Path, engine) -> None:
    rules = [
        {"name": "before_go_live", "column": "ts", "below": "2024-02-01"},
        {"name": "odd_amounts", "column": "amount", "below": 15, "above": 45},
        {"name": "cancelled", "column": "status", "in": ["Cancelled"]},
    ]
    report, clean, quarantine = status_run(tmp_path, engine, rules)
    assert clean == ["o3", "o4"]
    assert {q["order_id"]: q["reason"] for q in quarantine} == {
        "o1": "excluded_by_rule:before_go_live",  # also below 15: the first rule wins
        "o2": "excluded_by_rule:cancelled",
        "o5": "excluded_by_rule:odd_amounts",
        "o6": "excluded_by_rule:odd_amounts",
    }
    assert list(report["reasons"])[3:6] == [f"excluded_by_rule:{r['name']}" for r in rules]
    assert report["reasons"]["excluded_by_rule:before_go_live"] == 1


def test_excluded_rows_do_not_count_against_the_quarantine_limit(tmp_path: Path, engine) -> None:
    """A third of the lines cancelled must not stop the run (max_quarantine_share 5%)."""
    rows = [[f"o{i}", f"C{i % 7}", "2024-03-01", "5", "Cancelled" if i % 3 else "Done"]
            for i in range(60)]  # fmt: skip
    rows.append(["o99", "C1", "soon", "5", "Done"])  # one rejected row: 1 of 21 kept is 4.8%
    report, clean, _ = status_run(
        tmp_path, engine, [{"name": "cancelled", "column": "status", "equals": "Cancelled"}],
        rows=rows, max_quarantine_share=0.05,
    )  # fmt: skip
    assert report["rows_excluded"] == 40 and report["rows_rejected"] == 1
    assert report["rejected_share"] == pytest.approx(1 / 21, abs=1e-6)
    assert len(clean) == 20


def test_a_kept_row_is_not_a_duplicate_of_an_excluded_one(tmp_path: Path, engine) -> None:
    rows = [["o1", "A", "2024-01-05", "10", "Cancelled"], ["o1", "A", "2024-01-05", "10", "Done"]]
    _, clean, quarantine = status_run(
        tmp_path, engine, [{"name": "cancelled", "column": "status", "equals": "Cancelled"}],
        rows=rows,
    )  # fmt: skip
    assert clean == ["o1"] and [q["reason"] for q in quarantine] == ["excluded_by_rule:cancelled"]


def test_exclude_rule_on_a_missing_column_names_the_key(tmp_path: Path, engine) -> None:
    with pytest.raises(DataError) as err:
        status_run(tmp_path, engine, [{"name": "x", "column": "state", "equals": "Cancelled"}])
    assert "ingest.exclude[0].column" in str(err.value) and "'status'" in str(err.value)


def test_excluding_every_row_is_refused_naming_the_rules(tmp_path: Path, engine) -> None:
    with pytest.raises(DataError, match=r"all 6 rows .* excluded by ingest\.exclude"):
        status_run(tmp_path, engine, [{"name": "everything", "column": "amount", "above": 1}])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "column": "s"}, "exactly one condition"),
        ({"name": "x", "column": "s", "equals": "a", "in": ["b"]}, "exactly one condition"),
        ({"name": "Bad Name", "column": "s", "equals": "a"}, "lower-case"),
        (
            {"name": "x", "column": "s", "below": 5, "above": "2024-01-01"},
            "both be numbers or dates",
        ),
        ({"name": "x", "column": "s", "below": "soon"}, "neither a number nor an ISO date"),
    ],
    ids=[
        "a rule without a condition",
        "a rule with two conditions",
        "a rule name that cannot be a reason code",
        "a range mixing a number and a date",
        "a bound that is neither number nor date",
    ],
)
def test_bad_exclude_rules_are_config_errors(rule: dict[str, Any], message: str) -> None:
    from churnguard.config import parse_params

    with pytest.raises(ConfigError, match=message):
        parse_params({"ingest": {"exclude": [rule]}})


# --------------------------------------------------------------------------- malformed lines


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


HEADER_LINE = ",".join(HEADER).encode()
OK_LINE = b"007,o%d,2024-01-05,10.50,1,Sara,Ann,north"


@pytest.mark.parametrize(
    ("bad", "reason", "said"),
    [
        (b"007,o9,2024-01-05", "wrong_field_count", "line 3 has 3 fields, expected 8"),
        (b"007,o9,2024-01-05,1,1,Sara,Ann,north,extra", "wrong_field_count", "has 9 fields"),
        (b'007,o9,2024-01-05,1,1,Sara,"Ann" B,north', "broken_quoting", "line 3:"),
        (b'007,o9,2024-01-05,1,1,Sara,"Ann,north', "broken_quoting", "runs over 4 more line"),
        (b"007,o9,2024-01-05,1,1,Sara,J\xe9r\xf4me,north", "undecodable_bytes", "line 3:"),
    ],
    ids=[
        "a ragged line (too few fields)",
        "a too-long line (too many fields)",
        "text after a closing quote",
        "an unterminated quote does not swallow the lines after it",
        "bytes that are not UTF-8",
    ],
)
def test_a_malformed_line_is_quarantined_alone_and_the_rest_kept(
    tmp_path: Path, engine, bad: bytes, reason: str, said: str
) -> None:
    lines = [HEADER_LINE, OK_LINE % 1, bad, OK_LINE % 3, b"", OK_LINE % 4, OK_LINE % 5]
    src = write_lines(tmp_path / "tx.csv", lines)
    report = run_ingest(ingest_params(src, tmp_path / "out", as_of=dt.date(2024, 6, 30)), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert [r["order_id"] for r in clean] == ["o1", "o3", "o4", "o5"]
    assert [r["source_row"] for r in clean] == [1, 3, 4, 5]  # the blank line is no row
    (q,) = quarantine
    assert (q["source_row"], q["reason"]) == (2, reason)
    assert said in q["detail"]
    assert q["raw_line"].encode("utf-8", "backslashreplace").startswith(b"007,o9,")
    assert q["customer_id"] is None  # fields of a malformed line are not guessed
    assert report["reader"] == "record by record" and report["reasons"][reason] == 1
    assert_reconciles(tmp_path / "out", 5)


def test_quoted_line_breaks_still_make_one_record_when_read_record_by_record(
    tmp_path: Path, engine
) -> None:
    lines = [HEADER_LINE, b'007,o1,2024-01-05,1,1,Sara,"Ann\nSecond",north', b"007,o2,2024-01-05"]
    src = write_lines(tmp_path / "tx.csv", lines)
    run_ingest(ingest_params(src, tmp_path / "out"), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert [(r["order_id"], r["customer_name"]) for r in clean] == [("o1", "Ann Second")]
    assert [(q["source_row"], q["detail"]) for q in quarantine] == [
        (2, "line 4 has 3 fields, expected 8")
    ]


def test_a_file_malformed_as_a_whole_fails_naming_the_settings(tmp_path: Path, engine) -> None:
    src = write_lines(tmp_path / "tx.csv", [b"customer_id;ts;amount", b"1;2024-01-01;3"])
    cols = {"customer_id": "customer_id", "ts": "ts", "amount": "amount"}
    with pytest.raises(DataError) as err:  # ';' file read with ',': the header is one column
        run_ingest(ingest_params(src, tmp_path / "out", {"columns": cols}), engine)
    assert "ingest.source.delimiter" in str(err.value)
    many = [HEADER_LINE] + [b'007,o%d,2024-01-05,"1,1,Sara,Ann,north' % i for i in range(5)]
    src = write_lines(tmp_path / "quotes.csv", many)
    with pytest.raises(DataError, match=r"no line parses.*ingest\.source\.quote"):
        run_ingest(ingest_params(src, tmp_path / "out2"), engine)
    assert not (tmp_path / "out2" / TRANSACTIONS_FILE).exists()


def test_too_many_malformed_lines_fail_with_a_hint_on_the_reader_settings(
    tmp_path: Path, engine
) -> None:
    lines = [HEADER_LINE] + [OK_LINE % i for i in range(8)] + [b"007,o9,2024-01-05"] * 2
    src = write_lines(tmp_path / "tx.csv", lines)
    with pytest.raises(DataError) as err:
        run_ingest(ingest_params(src, tmp_path / "out", max_quarantine_share=0.05), engine)
    assert "wrong_field_count 2" in str(err.value)
    assert "check ingest.source.delimiter and ingest.source.quote" in str(err.value)


def test_whitespace_file_with_undecodable_bytes_keeps_the_other_lines(
    tmp_path: Path, engine
) -> None:
    src = tmp_path / "cd.txt"
    src.write_bytes(
        "\n".join(CDNOW_LINES[:3]).encode() + b"\n 0000\xff 19970101 1 1.00\n"
        + "\n".join(CDNOW_LINES[3:]).encode() + b"\n"
    )  # fmt: skip
    source = {
        "delimiter": "whitespace",
        "date_format": "%Y%m%d",
        "columns": {"customer_id": "customer_id", "ts": "date", "amount": "dollar_value"},
    }
    run_ingest(ingest_params(src, tmp_path / "out", source), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert len(clean) == 5
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [(3, "undecodable_bytes")]
    assert_reconciles(tmp_path / "out", 6)


# --------------------------------------------------------------------------- amounts


def test_absurd_amounts_are_quarantined_and_the_report_stays_strict_json(
    tmp_path: Path, engine
) -> None:
    rows = [GOOD[0], _bad(order_id="o8", amount="1e308"), _bad(order_id="o9", amount="-1e308")]
    src = write_csv(tmp_path / "tx.csv", rows)
    report = run_ingest(ingest_params(src, tmp_path / "out"), engine)
    text = (tmp_path / "out" / REPORT_FILE).read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=_refuse_constant) == report
    assert report["reasons"]["amount_out_of_range"] == 2
    assert report["amount_total_clean"] == 10.5
    assert {q["detail"] for q in outputs(tmp_path / "out")[1]} == {
        f"amount (source column \"amount\"): '{x}' is outside ingest.amount_range [-1e+12, 1e+12]"
        for x in ("1e308", "-1e308")
    }


def _refuse_constant(token: str) -> None:
    raise AssertionError(f"not strict JSON: {token}")


def test_amount_range_is_configurable(tmp_path: Path, engine) -> None:
    rows = [GOOD[0], _bad(order_id="o8", amount="5000"), _bad(order_id="o9", amount="-20")]
    src = write_csv(tmp_path / "tx.csv", rows)
    report = run_ingest(
        ingest_params(src, tmp_path / "out", amount_range={"min": -10, "max": 1000}), engine
    )
    assert report["reasons"]["amount_out_of_range"] == 2 and report["rows_clean"] == 1


# --------------------------------------------------------------------------- text hygiene


def test_names_lose_invisible_characters_and_are_cut_at_the_limit(tmp_path: Path, engine) -> None:
    rows = [
        _bad(order_id="o1", customer_name="\u202eAli Brown\u202c"),
        _bad(order_id="o2", customer_name="A\x00li\u200b Brown", account_manager="Sa\u2066ra"),
        _bad(order_id="o3", customer_name="می\u200cخواهم", region="no\nth"),
        _bad(order_id="o4", customer_name="X" * 100_000),
    ]
    src = write_csv(tmp_path / "tx.csv", rows)
    report = run_ingest(ingest_params(src, tmp_path / "out"), engine)
    clean = {r["order_id"]: r for r in outputs(tmp_path / "out")[0]}
    assert clean["o1"]["customer_name"] == "Ali Brown"
    assert clean["o2"]["customer_name"] == "Ali Brown" and clean["o2"]["account_manager"] == "Sara"
    assert clean["o3"]["customer_name"] == "می\u200cخواهم"  # ZWNJ belongs to Persian spelling
    assert clean["o3"]["region"] == "no th"
    assert clean["o4"]["customer_name"] == "X" * 199 + "…"
    assert report["text_cleaned"] == {
        "customer_name": {"invisible_removed": 2, "truncated": 1},
        "account_manager": {"invisible_removed": 1, "truncated": 0},
        "region": {"invisible_removed": 1, "truncated": 0},
    }


@pytest.mark.parametrize(
    ("customer_id", "said"),
    [("C\u202e123", "bidirectional"), ("C\x00123", "control"), ("C" * 201, "201 characters")],
    ids=["an id with a right-to-left override", "an id with a NUL", "an id over the length cap"],
)
def test_an_id_that_cannot_be_shown_safely_is_quarantined_not_altered(
    tmp_path: Path, engine, customer_id: str, said: str
) -> None:
    src = write_csv(tmp_path / "tx.csv", [GOOD[0], _bad(order_id="o9", customer_id=customer_id)])
    run_ingest(ingest_params(src, tmp_path / "out"), engine)
    clean, quarantine, _ = outputs(tmp_path / "out")
    assert [r["customer_id"] for r in clean] == ["007"]
    assert [q["reason"] for q in quarantine] == ["invalid_customer_id"]
    assert said in quarantine[0]["detail"] and quarantine[0]["customer_id"] == customer_id


# --------------------------------------------------------------------------- no money


def test_a_file_without_amounts_runs_with_a_default_amount(tmp_path: Path, engine) -> None:
    src = write_csv(
        tmp_path / "visits.csv",
        [["2024-01-05", "A"], ["2024-01-05", "A"], ["2024-02-01", "B"]],
        ["date", "id"],
    )
    source = {"columns": {"customer_id": "id", "ts": "date"}}
    report = run_ingest(
        ingest_params(src, tmp_path / "out", source, default_amount=1.0,
                      drop_exact_duplicates=False),
        engine,
    )  # fmt: skip
    clean = outputs(tmp_path / "out")[0]
    assert [r["amount"] for r in clean] == [1.0, 1.0, 1.0]
    assert report["amount_source"] == "default_amount" and report["default_amount"] == 1.0
    meta = pq.read_schema(tmp_path / "out" / TRANSACTIONS_FILE).metadata
    assert json.loads(meta[ingest.AMOUNT_METADATA_KEY.encode()]) == {
        "source": "default_amount",
        "default_amount": 1.0,
    }


def test_same_day_repeats_without_an_order_id_get_a_hint_naming_drop_exact_duplicates(
    tmp_path: Path, engine
) -> None:
    rows = [["2024-01-05", "A"]] * 3 + [["2024-02-01", "B"]] * 2 + [["2024-02-02", "C"]]
    src = write_csv(tmp_path / "visits.csv", rows, ["date", "id"])
    source = {"columns": {"customer_id": "id", "ts": "date"}}
    with pytest.raises(DataError) as err:
        run_ingest(
            ingest_params(src, tmp_path / "out", source, default_amount=1.0,
                          max_quarantine_share=0.05),
            engine,
        )  # fmt: skip
    msg = str(err.value)
    assert "exact_duplicate 3" in msg and "ingest.drop_exact_duplicates: false" in msg


@pytest.mark.parametrize(
    ("ingest_section", "message"),
    [
        ({"source": {"columns": {"customer_id": "id", "ts": "date"}}}, "ingest.default_amount"),
        ({"default_amount": 1.0}, "not both"),
    ],
    ids=["no amount column and no default amount", "an amount column and a default amount"],
)
def test_amount_source_must_be_one_of_column_or_default(
    ingest_section: dict[str, Any], message: str
) -> None:
    from churnguard.config import parse_params

    with pytest.raises(ConfigError, match=message):
        parse_params({"ingest": ingest_section})
