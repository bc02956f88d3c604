"""Ingest: raw transactions (CSV or Parquet, any column names) → canonical Parquet + quarantine.

Every row is read as text and checked in DuckDB SQL (out of core: nothing is loaded into
pandas). A row lands either in ``transactions.parquet`` (canonical schema) or in
``quarantine.parquet`` with the first failing reason; ``ingest_report.json`` shows that the
counts reconcile. All three files are written atomically and deterministically.

Source columns are matched by name exactly, else by a unique case- and blank-insensitive
match. The only SQL built here from the configuration is the reader call and the view
``raw_lines`` that renames the user's columns to the canonical names (see "reading and
staging"); everything after it is in ``sql/ingest_*.sql`` with bound parameters.

The row rules (reason code, check, message; the first failing rule wins) are declared
once, in the ``failures`` CASE of ``sql/ingest_validate.sql``. :data:`REASONS` (the
report's reason list) and :func:`describe_rules` (the docs) are read from there.

A delimited file is parsed by DuckDB in one pass. When DuckDB meets a malformed line
(too few or too many fields, broken quoting, bytes that are not in the configured
encoding), the file is read again record by record (:func:`read_records`, Python's csv
module): every record keeps its number, a malformed one keeps its line number and raw
text and is quarantined on its own, and a quoted field that runs over lines without
forming a valid record is taken as a broken quote on its first line, so one stray quote
cannot swallow the rest of the file. DuckDB's own reject tables cannot do this: they
count blank lines in their line numbers but not in the rows they return (so the clean
rows cannot be numbered) and an unterminated quote swallows the rest of the file into a
single rejected record, cut at 10,000 characters.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import math
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.config import (
    CANONICAL_COLUMNS,
    REQUIRED_COLUMNS,
    EngineParams,
    ExcludeRule,
    IngestParams,
)
from churnguard.db import connect, sql_ident
from churnguard.errors import ChurnguardError, ConfigError, DataError
from churnguard.io import AMOUNT_METADATA_KEY, atomic_path, write_json_atomic

log = logging.getLogger(__name__)

# The SQL programs, run in this order (each reads what the one before made).
INGEST_MACROS_SQL = "sql/ingest_macros.sql"  # cg_clean, cg_show, cg_number
INGEST_VALIDATE_SQL = "sql/ingest_validate.sql"  # raw_lines → checked (the rules)
INGEST_TRANSACTIONS_SQL = "sql/ingest_transactions.sql"  # checked → transactions.parquet
INGEST_QUARANTINE_SQL = "sql/ingest_quarantine.sql"  # checked → quarantine.parquet
INGEST_REPORT_SQL = "sql/ingest_report.sql"  # checked + written files → report counts

TRANSACTIONS_FILE = "transactions.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "ingest_report.json"
WHITESPACE = "whitespace"
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")

# Reading a file line by line: a two-byte delimiter (ASCII unit + record separator) that
# does not occur in text data, so each line arrives as one column.
_LINE_DELIMITER = "\x1f\x1e"
# Record by record: a quoted field may run over this many lines (or characters) before the
# record is taken as a broken quote on its first line; records go to Parquet in batches.
MAX_RECORD_LINES = 1_000
MAX_RECORD_CHARS = 1_000_000
RECORD_BATCH_ROWS = 100_000
_NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
)  # fmt: skip
# Canonical columns a Parquet source may store typed, and the type raw_lines gives them.
_NATIVE_TYPES = {"ts": "TIMESTAMP", "amount": "DOUBLE", "quantity": "DOUBLE"}
# Free text people read in the lists: invisible characters removed, length capped at ingest.
TEXT_COLUMNS = ("customer_name", "account_manager", "region")


def _sql(name: str) -> str:
    """The text of one of the ``INGEST_*_SQL`` programs (shipped with the package)."""
    return resources.files("churnguard").joinpath(name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    """One validation rule as declared in ``sql/ingest_validate.sql``."""

    reason: str  # reason code in quarantine.parquet and ingest_report.json
    doc: str  # what it checks, from the ``-- rule <reason>: ...`` comment above it
    fix: str = ""  # what to change when it quarantines too much (the comment's "Fix: ...")
    # one reason per configured item, "<reason>:<name>" (the ingest.exclude rules)
    per_item: bool = False


_RULE_DOC_RE = re.compile(r"^[ \t]*-- rule ([a-z_]+): (.+(?:\n[ \t]*--[ \t]{3,}\S.*)*)", re.M)
_RULE_REASON_RE = re.compile(r"\breason := '([a-z_]+)(:?)'")


def declared_rules(sql: str | None = None) -> tuple[Rule, ...]:
    """The rules of ``sql/ingest_validate.sql``, in priority order.

    Every ``reason := '<code>'`` of the rule CASE must follow a ``-- rule <code>: <what it
    checks>`` comment (continued on lines indented by three or more blanks after ``--``),
    optionally ending in ``Fix: <what to change>``. ``reason := '<code>:' || name`` declares
    one reason per configured item.
    """
    text = _sql(INGEST_VALIDATE_SQL) if sql is None else sql
    docs = [
        (reason, " ".join(re.sub(r"^\s*(--)?\s*", "", line) for line in doc.splitlines()))
        for reason, doc in _RULE_DOC_RE.findall(text)
    ]
    found = _RULE_REASON_RE.findall(text)
    reasons = [r for r, _ in found]
    if [r for r, _ in docs] != reasons or len(set(reasons)) != len(reasons) or not reasons:
        raise ChurnguardError(
            f"internal error: {INGEST_VALIDATE_SQL} declares reasons {reasons} but documents "
            f"{[r for r, _ in docs]}: each rule needs one '-- rule <reason>: ...' comment"
        )
    rules = []
    for (reason, doc), (_, per_item) in zip(docs, found, strict=True):
        what, _, fix = doc.partition(" Fix: ")
        rules.append(Rule(reason, what.strip(), fix.strip(), bool(per_item)))
    return tuple(rules)


def describe_rules() -> str:
    """The rules as a Markdown list (reason code: what it checks), first failing wins."""
    return "".join(
        f"- `{rule.reason}{':<name>' if rule.per_item else ''}`: {rule.doc}\n"
        for rule in declared_rules()
    )


RULES: tuple[Rule, ...] = declared_rules()
REASONS: tuple[str, ...] = tuple(rule.reason for rule in RULES)
# the reason family of the ingest.exclude rules (one reason per rule: "<family>:<name>")
EXCLUDED: str = next(rule.reason for rule in RULES if rule.per_item)


def report_reasons(params: IngestParams) -> list[str]:
    """The reason keys of ingest_report.json, in rule order: every declared reason, with the
    per-item family expanded into one key per ``ingest.exclude`` rule."""
    out: list[str] = []
    for rule in RULES:
        out += (
            [f"{rule.reason}:{r.name}" for r in params.exclude] if rule.per_item else [rule.reason]
        )
    return out


@dataclass
class _Raw:
    """The view ``raw_lines`` over the source: what was mapped and how."""

    path: Path
    fmt: str
    mapped: dict[str, str]  # canonical name → source column name
    typed: dict[str, str] = field(default_factory=dict)  # canonical → source type (Parquet)
    expected_fields: int | None = None  # fields a line must have (whitespace, record by record)
    excluded_by: list[str] = field(default_factory=list)  # source column of each exclude rule
    reader: str = "duckdb"  # or "record by record" (malformed lines were found)


# --------------------------------------------------------------------------- entry point


def run_ingest(params: IngestParams, engine: EngineParams) -> dict[str, Any]:
    """Validate ``params.source`` into ``params.output_dir``; return the ingest report.

    Raises :class:`DataError` for a missing, empty or unreadable file, unmapped columns, or a
    quarantined share above ``max_quarantine_share`` (after writing all outputs).
    """
    src = params.source
    path = Path(src.path)
    _check_file(path)
    fmt = resolve_format(src.format, path)
    out_dir = Path(params.output_dir)
    log.info(
        "ingest: reading %s (%s)", path, fmt if fmt == "parquet" else f"csv, {src.delimiter!r}"
    )

    if params.default_amount is not None and "order_id" not in src.columns:
        log.info(
            "ingest: no amount and no order id: two purchases by one customer on the same day "
            "look identical%s",
            " and ingest.drop_exact_duplicates drops the second"
            if params.drop_exact_duplicates
            else "",
        )
    con = _connect(engine)
    scratch = Path(tempfile.mkdtemp(prefix="cg-ingest-", dir=_temp_root(engine)))
    try:
        _check_date_format(con, src.date_format)
        raw = _open_source(con, params, path, fmt, scratch)
        rows_in = con.execute("SELECT count(*) FROM raw_lines").fetchone()[0]  # type: ignore[index]
        if rows_in == 0:
            raise DataError(f"no data rows in {path} (the file has no rows after the header)")
        log.info("ingest: %s rows read, columns %s", f"{rows_in:,}", raw.mapped)
        values = _parameters(params, raw, out_dir)
        _validate(con, values)
        _copy_atomic(
            con,
            INGEST_TRANSACTIONS_SQL,
            values,
            out_dir / TRANSACTIONS_FILE,
            amount_metadata(params),
        )
        _copy_atomic(con, INGEST_QUARANTINE_SQL, values, out_dir / QUARANTINE_FILE)
        report = _build_report(con, params, raw, values)
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)

    write_json_atomic(out_dir / REPORT_FILE, report)
    log.info(
        "ingest: wrote %s (%s clean, %s quarantined: %s excluded by ingest.exclude, %s rejected)",
        out_dir,
        f"{report['rows_clean']:,}",
        f"{report['rows_quarantined']:,}",
        f"{report['rows_excluded']:,}",
        f"{report['rows_rejected']:,}",
    )
    if not report["reconciles"]:
        raise ChurnguardError(f"internal error: ingest counts do not reconcile: {report}")
    _check_threshold(report, params, out_dir)
    return report


def amount_metadata(params: IngestParams) -> str:
    """What transactions.parquet records about its amounts (see :data:`AMOUNT_METADATA_KEY`)."""
    if params.default_amount is None:
        return json.dumps({"source": "column", "column": params.source.columns["amount"]})
    return json.dumps({"source": "default_amount", "default_amount": params.default_amount})


def _temp_root(engine: EngineParams) -> Path:
    root = Path(engine.temp_directory)
    root.mkdir(parents=True, exist_ok=True)
    return root


def resolve_format(fmt: str, path: Path) -> str:
    """``auto`` → ``parquet`` for .parquet/.pq/.parq files, else ``csv``."""
    if fmt != "auto":
        return fmt
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


# --------------------------------------------------------------------------- before reading


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(
            f"input file not found: {path}; set ingest.source.path to your transactions "
            "file (CSV or Parquet)"
        )
    if path.stat().st_size == 0:
        raise DataError(f"no data rows in {path} (the file is empty, 0 bytes)")


def _connect(engine: EngineParams) -> duckdb.DuckDBPyConnection:
    """The shared DuckDB connection plus the macros the ingest SQL uses."""
    con = connect(engine)
    con.execute(_sql(INGEST_MACROS_SQL))
    return con


def _check_date_format(con: duckdb.DuckDBPyConnection, fmt: str | None) -> None:
    """Reject a ``date_format`` DuckDB's strptime cannot use, before reading anything."""
    if fmt is None:
        return
    try:
        con.execute("SELECT TRY_STRPTIME('2000-01-01', $fmt)", {"fmt": fmt})
    except duckdb.Error as exc:
        raise ConfigError(
            f"ingest.source.date_format {fmt!r} is not a valid strptime format: "
            f'{_first_lines(str(exc), 1)} (example: "%Y%m%d" or "%d/%m/%Y %H:%M")'
        ) from None


# --------------------------------------------------------------------------- reading and staging
# The only SQL assembled in Python, because it varies with the configuration: the reader
# calls (delimiter, quote, encoding, header and path are bound parameters) and the relation
# ``raw_lines`` that renames the user's columns to canonical names (quoted identifiers, all
# in _raw_lines_columns). Its schema is fixed whatever the mapping:
#   source_row, n_fields, parse_problem, parse_detail, raw_line,
#   <every canonical column as VARCHAR, NULL when unmapped>,
#   ts_native, amount_native, quantity_native, exclude_values
# and the sql/ingest_*.sql programs read it by those names only.


def _open_source(
    con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path, fmt: str, scratch: Path
) -> _Raw:
    """Create the relation ``raw_lines`` over the source file."""
    src = params.source
    if fmt == "parquet":
        return _open_parquet(con, params, path)
    if src.delimiter == WHITESPACE:
        return _open_whitespace(con, params, path, scratch)
    return _open_csv(con, params, path, scratch)


def _open_csv(
    con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path, scratch: Path
) -> _Raw:
    src = params.source
    if len(src.delimiter) == 1:
        found = _header_names(params, path)
        detect = "auto_detect = false, columns = $columns"
        binds: dict[str, Any] = {"columns": {name: "VARCHAR" for name in found}}
    else:  # multi-byte delimiter: Python's csv cannot split it, let DuckDB find the names
        detect = "auto_detect = true, all_varchar = true"
        binds = {}
    call = (
        f"read_csv($path, {detect}, delim = $delim, header = $header, quote = $quote, "
        "escape = $quote, encoding = $encoding, skip = 0, comment = '', "
        "strict_mode = true, null_padding = false, ignore_errors = false)"
    )
    binds.update(
        path=src.path,
        delim=src.delimiter,
        header=src.header,
        quote=src.quote,
        encoding=src.encoding,
    )
    if len(src.delimiter) != 1:
        found = [r[0] for r in _read(con, f"DESCRIBE SELECT * FROM {call}", binds, params, path)]
    raw = _Raw(path=path, fmt="csv", mapped=_resolve_columns(params, path, found))
    raw.excluded_by = _resolve_rule_columns(params, path, found)
    select = _raw_lines_columns(raw, sql_ident)
    sql = f"CREATE TEMP TABLE source_csv AS SELECT {select} FROM {call}"
    try:
        con.execute(sql, binds)
    except duckdb.Error as exc:
        if len(src.delimiter) != 1:
            raise _reader_error(exc, params, path) from None
        log.warning(
            "ingest: %s has malformed lines (%s); reading it record by record to quarantine "
            "each one (slower)",
            path,
            _first_lines(str(exc), 1),
        )
        return _open_records(con, params, path, scratch, found)
    # CTAS keeps insertion order, so rowid is the 0-based data row number.
    con.execute(
        "CREATE TEMP VIEW raw_lines AS SELECT rowid + 1 AS source_row, NULL::BIGINT AS n_fields, "
        "NULL::VARCHAR AS parse_problem, NULL::VARCHAR AS parse_detail, "
        "NULL::VARCHAR AS raw_line, * FROM source_csv"
    )
    return raw


def _open_whitespace(
    con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path, scratch: Path
) -> _Raw:
    """Fields separated by runs of spaces/tabs, leading/trailing blanks ignored (CDNOW)."""
    src = params.source
    sql = (
        "CREATE TEMP TABLE source_whitespace AS "
        "SELECT cg_clean(line) AS line, regexp_split_to_array(cg_clean(line), '\\s+') AS parts "
        "FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = $delim, header = false, "
        "quote = '', escape = '', encoding = $encoding, skip = 0, comment = '', "
        "strict_mode = true, null_padding = false, ignore_errors = false) "
        "WHERE cg_clean(line) IS NOT NULL"
    )
    binds = {"path": src.path, "delim": _LINE_DELIMITER, "encoding": src.encoding}
    try:
        con.execute(sql, binds)
    except duckdb.Error as exc:
        log.warning(
            "ingest: %s has unreadable lines (%s); reading it line by line to quarantine each "
            "one (slower)",
            path,
            _first_lines(str(exc), 1),
        )
        return _open_records(con, params, path, scratch, None)
    if src.header:
        first = con.execute("SELECT parts FROM source_whitespace WHERE rowid = 0").fetchone()
        if first is None:
            raise DataError(f"no data rows in {path} (only blank lines)")
        found = _dedupe_names(first[0])
        first_data = 1
    else:
        width = con.execute("SELECT max(len(parts)) FROM source_whitespace").fetchone()[0]  # type: ignore[index]
        found = _generated_names(width or 0)
        first_data = 0
    raw = _Raw(
        path=path,
        fmt="csv",
        mapped=_resolve_columns(params, path, found),
        expected_fields=len(found),
    )
    raw.excluded_by = _resolve_rule_columns(params, path, found)
    position = {name: i + 1 for i, name in enumerate(found)}
    select = _raw_lines_columns(raw, lambda name: f"parts[{position[name]:d}]")
    # Structure, not values: the header line's row offset, the field count and positions.
    con.execute(
        f"CREATE TEMP VIEW raw_lines AS SELECT rowid + {1 - first_data:d} AS source_row, "
        "len(parts) AS n_fields, NULL::VARCHAR AS parse_problem, NULL::VARCHAR AS parse_detail, "
        f"CASE WHEN len(parts) <> {len(found):d} THEN line END AS raw_line, {select} "
        f"FROM source_whitespace WHERE rowid >= {first_data:d}"
    )
    return raw


def _open_parquet(con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path) -> _Raw:
    binds = {"path": params.source.path}
    described = _read(con, "DESCRIBE SELECT * FROM read_parquet($path)", binds, params, path)
    types = {r[0]: str(r[1]) for r in described}
    raw = _Raw(path=path, fmt="parquet", mapped=_resolve_columns(params, path, list(types)))
    raw.excluded_by = _resolve_rule_columns(params, path, list(types))
    for c, s in raw.mapped.items():
        kind = _type_kind(types[s])
        if (c == "ts" and kind == "temporal") or (
            c in ("amount", "quantity") and kind == "numeric"
        ):
            raw.typed[c] = types[s]
    # Views cannot hold bound parameters, so the mapped columns are copied once (out of core).
    sql = (
        "CREATE TEMP TABLE raw_lines AS SELECT file_row_number + 1 AS source_row, "
        "NULL::BIGINT AS n_fields, NULL::VARCHAR AS parse_problem, "
        "NULL::VARCHAR AS parse_detail, NULL::VARCHAR AS raw_line, "
        f"{_raw_lines_columns(raw, sql_ident)} "
        "FROM read_parquet($path, file_row_number = true)"
    )
    _read(con, sql, binds, params, path)
    return raw


def _raw_lines_columns(raw: _Raw, source: Callable[[str], str]) -> str:
    """The rename: the one place where the user's column names become SQL.

    ``source`` turns a source column name into SQL (a quoted identifier, or a field of a
    whitespace-split line). Every canonical column is present, as text (``NULL`` when not
    mapped), followed by ``<c>_native``: a typed Parquet value of ts, amount or quantity,
    cast to TIMESTAMP or DOUBLE, else ``NULL``; then ``exclude_values``, the text of each
    ``ingest.exclude`` rule's column, in rule order.
    """
    cols = [
        f"CAST({source(raw.mapped[c])} AS VARCHAR) AS {sql_ident(c)}"
        if c in raw.mapped
        else f"NULL::VARCHAR AS {sql_ident(c)}"
        for c in CANONICAL_COLUMNS
    ]
    for c, type_name in _NATIVE_TYPES.items():
        value = (
            f"TRY_CAST({source(raw.mapped[c])} AS {type_name})"
            if c in raw.typed
            else f"NULL::{type_name}"
        )
        cols.append(f"{value} AS {sql_ident(c + '_native')}")
    rule_values = ", ".join(f"CAST({source(name)} AS VARCHAR)" for name in raw.excluded_by)
    cols.append(f"CAST([{rule_values}] AS VARCHAR[]) AS exclude_values")
    return ", ".join(cols)


def _type_kind(type_name: str) -> str:
    upper = type_name.upper()
    if upper.startswith(("DATE", "TIMESTAMP")):
        return "temporal"
    if upper.startswith(_NUMERIC_TYPES):
        return "numeric"
    return "text"


def _read(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    binds: dict[str, Any],
    params: IngestParams,
    path: Path,
) -> list[tuple[Any, ...]]:
    """Run a statement that reads the source; turn reader errors into :class:`DataError`."""
    try:
        return con.execute(sql, binds).fetchall()
    except duckdb.Error as exc:
        raise _reader_error(exc, params, path) from None


def _reader_error(exc: Exception | str, params: IngestParams, path: Path) -> DataError:
    """A :class:`DataError` naming the file and the ``ingest.source`` key to change."""
    msg = str(exc)
    src = params.source
    if isinstance(exc, UnicodeError) or any(
        word in msg.lower() for word in ("invalid unicode", "can't decode", "invalid encoding")
    ):
        suggestion = "utf-16" if _has_utf16_bom(path) else "latin-1"
        if suggestion == src.encoding:
            suggestion = "utf-8"
        return DataError(
            f"{path} is not valid {src.encoding} text; set ingest.source.encoding: {suggestion} "
            f"(allowed: utf-8, utf-16, latin-1). Reader said: {_first_lines(msg)}"
        )
    if resolve_format(src.format, path) == "parquet":
        return DataError(
            f"cannot read {path} as Parquet: {_first_lines(msg)}. Check ingest.source.path and "
            "ingest.source.format (auto reads .parquet/.pq/.parq as Parquet, anything else as CSV)."
        )
    return DataError(
        f"cannot read {path} as CSV: {_first_lines(msg)}. Check ingest.source.delimiter "
        f"({src.delimiter!r}), ingest.source.quote ({src.quote!r}), ingest.source.header "
        f"({src.header}) and ingest.source.encoding ({src.encoding})."
    )


def _first_lines(msg: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    return " | ".join(lines[:n]).rstrip(".")


def _has_utf16_bom(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) in (b"\xff\xfe", b"\xfe\xff")


def _dedupe_names(names: list[str]) -> list[str]:
    """Header names, made unique the way DuckDB does it (``name``, ``name_1``, …)."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, i = name, 1
        while candidate in seen:
            candidate = f"{name}_{i}"
            i += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _generated_names(n: int) -> list[str]:
    """DuckDB's names for header-less files: column0… (zero-padded from 10 columns)."""
    width = len(str(max(n - 1, 0)))
    return [f"column{i:0{width}d}" for i in range(n)]


def _match(found: list[str], wanted: str) -> str | None:
    """A source column by exact name, else by a unique case- and blank-insensitive match."""
    if wanted in found:
        return wanted
    folded = [name for name in found if name.strip().casefold() == wanted.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _resolve_columns(params: IngestParams, path: Path, found: list[str]) -> dict[str, str]:
    """Map canonical names to source columns (exact, else unique case/blank-insensitive).

    Raises :class:`DataError` listing the columns found and the keys to fix.
    """
    src = params.source
    mapped: dict[str, str] = {}
    missing: list[str] = []
    for canonical in CANONICAL_COLUMNS:
        wanted = src.columns.get(canonical)
        if wanted is None:
            continue
        match = _match(found, wanted)
        if match is None:
            missing.append(canonical)
        else:
            mapped[canonical] = match
    if not missing:
        return mapped
    parts = [
        f"'{src.columns[c]}' for {c} ({'required' if c in REQUIRED_COLUMNS else 'optional'})"
        for c in missing
    ]
    keys = ", ".join(f"ingest.source.columns.{c}" for c in missing)
    hints = []
    if len(found) == 1:
        hints.append(
            f"only one column was found: is ingest.source.delimiter ({src.delimiter!r}) right? "
            'Use "whitespace" for space-aligned files'
        )
    if not src.header:
        hints.append("with ingest.source.header: false the columns are named column0, column1, …")
    optional = [c for c in missing if c not in REQUIRED_COLUMNS]
    if optional:
        hints.append(
            "optional columns can also be removed from ingest.source.columns: "
            + ", ".join(optional)
        )
    return_msg = (
        f"{path}: mapped column(s) not found: {'; '.join(parts)}. "
        f"Columns in the file: {', '.join(repr(f) for f in found) or '(none)'}. "
        f"Fix {keys} in params.yaml."
    )
    if hints:
        return_msg += " Note: " + "; ".join(hints) + "."
    raise DataError(return_msg)


def _resolve_rule_columns(params: IngestParams, path: Path, found: list[str]) -> list[str]:
    """The source column of each ``ingest.exclude`` rule, matched like the mapped columns."""
    columns = []
    for i, rule in enumerate(params.exclude):
        match = _match(found, rule.column)
        if match is None:
            raise DataError(
                f"{path}: ingest.exclude[{i}] (rule '{rule.name}') reads column "
                f"'{rule.column}', which is not in the file. Columns in the file: "
                f"{', '.join(repr(f) for f in found) or '(none)'}. Fix ingest.exclude[{i}].column "
                "in params.yaml."
            )
        columns.append(match)
    return columns


# --------------------------------------------------------------------------- record by record


_BLANKS_RE = re.compile(r"[\t\n\f\r ]+")


class _RunawayRecord(Exception):
    """A quoted field ran over MAX_RECORD_LINES lines or MAX_RECORD_CHARS characters."""


class _BadBytes(Exception):
    """A line holds bytes that are not text in the configured encoding."""


@dataclass(frozen=True)
class Record:
    """One record of a delimited or whitespace file, as :func:`read_records` found it."""

    line: int  # physical line (1-based) where the record starts
    fields: list[str] | None  # None when it could not be parsed
    problem: str | None = None  # "quote" or "encoding" when it could not be parsed
    detail: str = ""  # what the parser said
    raw: str = ""  # the record's text as in the file (undecodable bytes escaped)


class _Lines:
    """Physical lines of a file for csv.reader: numbered, decoded one at a time (a bad byte
    spoils one line, not the file), and put back to be read again when the record they
    were given to turns out broken."""

    def __init__(self, fh: IO[bytes], encoding: str) -> None:
        self.fh = fh
        self.codec = "utf-8" if encoding == "utf-8" else encoding
        self.text = encoding == "utf-16"  # line ends cannot be found in undecoded UTF-16
        self.reader = io.TextIOWrapper(fh, encoding="utf-16", newline="") if self.text else None
        self.number = 0
        self.pending: deque[tuple[int, bytes | str]] = deque()
        self.taken: list[tuple[int, bytes | str]] = []
        self.chars = 0

    def start(self) -> None:
        self.taken, self.chars = [], 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.taken and (len(self.taken) >= MAX_RECORD_LINES or self.chars >= MAX_RECORD_CHARS):
            raise _RunawayRecord
        if self.pending:
            number, line = self.pending.popleft()
        else:
            line = self.reader.readline() if self.reader is not None else self.fh.readline()
            if not line:
                raise StopIteration
            self.number += 1
            number = self.number
            if number == 1 and isinstance(line, bytes) and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
        self.taken.append((number, line))
        self.chars += len(line)
        if isinstance(line, str):
            return line
        try:
            return line.decode(self.codec)
        except UnicodeDecodeError as exc:
            raise _BadBytes(f"{exc.reason} at byte {exc.start} of the line") from None

    def put_back(self, lines: list[tuple[int, bytes | str]]) -> None:
        self.pending.extendleft(reversed(lines))

    def text_of(self, lines: list[tuple[int, bytes | str]]) -> str:
        return "".join(
            line if isinstance(line, str) else line.decode(self.codec, "backslashreplace")
            for _, line in lines
        ).rstrip("\r\n")


def read_records(
    stream: IO[bytes], delimiter: str, quote: str, encoding: str, width: int | None = None
) -> Iterator[Record]:
    """The records of a delimited (or, with ``delimiter="whitespace"``, space-aligned) file.

    Blank lines are no records. A record that cannot be parsed (broken quoting, bytes not in
    ``encoding``) comes with ``fields=None`` and its ``problem``; so does one whose quoted
    field runs over several lines and that then fails or has a field count other than
    ``width`` (the first record's, when None): only its first line is the bad record, and
    the following lines are read again as records of their own.
    """
    lines = _Lines(stream, encoding)
    reader = (
        None
        if delimiter == WHITESPACE
        else csv.reader(
            lines,
            delimiter=delimiter,
            quotechar=quote or None,
            quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
            doublequote=True,
            strict=True,
        )
    )
    if csv.field_size_limit() < MAX_RECORD_CHARS:
        csv.field_size_limit(MAX_RECORD_CHARS)
    while True:
        lines.start()
        problem, detail, fields = None, "", None
        try:
            if reader is None:  # runs of blanks (as RE2's \\s); cg_clean's blanks trimmed
                text = next(lines).strip(" \t\n\r\xa0\ufeff")
                fields = _BLANKS_RE.split(text) if text else []
            else:
                fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem, detail = "quote", _csv_message(str(exc))
        except _RunawayRecord:
            problem = "quote"
            detail = f"a quoted field runs over more than {MAX_RECORD_LINES:,} lines or " + (
                f"{MAX_RECORD_CHARS:,} characters"
            )
        except _BadBytes as exc:
            problem, detail = "encoding", str(exc)
        taken = lines.taken
        if not taken:
            return
        if fields == [] and problem is None:
            continue  # a blank line
        if width is None and fields is not None:
            width = len(fields)
        if len(taken) > 1 and (problem is not None or len(fields or ()) != width):
            # an opened quote ran over lines and did not make a valid record: its first
            # line is broken; the lines it swallowed are read again
            said = f" ({detail})" if detail else ""
            problem, detail = (
                "quote",
                (
                    f"a quote opened on this line runs over {len(taken) - 1:,} more line(s) "
                    f"without closing into a valid record{said}; the lines after it were read as records of their own"
                ),
            )
            lines.put_back(taken[1:])
            taken = taken[:1]
        raw = lines.text_of(taken) if problem or len(fields or ()) != width else ""
        yield Record(taken[0][0], None if problem else fields, problem, detail, raw)


def _csv_message(said: str) -> str:
    """The csv module's complaint in the terms of the file."""
    if said.startswith("new-line character seen in unquoted field"):
        return "a line break (CR) inside an unquoted field: quote the field"
    if said.startswith("unexpected end of data"):
        return "a quote is still open at the end of the file"
    return said


def _first_record(params: IngestParams, path: Path) -> Record | None:
    src = params.source
    with open(path, "rb") as fh:
        return next(read_records(fh, src.delimiter, src.quote, src.encoding), None)


def _header_names(params: IngestParams, path: Path) -> list[str]:
    """Column names from the first record (read with Python's csv module, BOM stripped).

    Reading the header ourselves lets DuckDB parse the file with ``auto_detect = false``:
    no sniffing, and a malformed row is reported by its line number.
    """
    first = _first_record(params, path)
    if first is None:
        raise DataError(f"no data rows in {path} (the file is empty or only blank lines)")
    if first.fields is None:
        raise _reader_error(
            f"line {first.line}: {first.detail}"
            if first.problem == "quote"
            else "invalid encoding",
            params,
            path,
        )
    if params.source.header:
        names = [n if n.strip() else f"column{i}" for i, n in enumerate(first.fields)]
        return _dedupe_names(names)
    return _generated_names(len(first.fields))


def _open_records(
    con: duckdb.DuckDBPyConnection,
    params: IngestParams,
    path: Path,
    scratch: Path,
    found: list[str] | None,
) -> _Raw:
    """``raw_lines`` from a record-by-record read (:func:`read_records`) staged as Parquet in
    ``scratch``: fields ``f1…fn`` by position, each record numbered in file order."""
    src = params.source
    whitespace = src.delimiter == WHITESPACE
    staged = scratch / "records.parquet"
    with open(path, "rb") as fh:
        records = read_records(fh, src.delimiter, src.quote, src.encoding)
        first = next(records, None)
        if first is None or (src.header and first.fields is None):
            raise _header_error(params, path, first)
        if src.header:
            names = first.fields or []
            found = _dedupe_names(
                [n if n.strip() or whitespace else f"column{i}" for i, n in enumerate(names)]
            )
            width = len(found)
            rest: Iterator[Record] = records
        else:
            width = len(first.fields) if first.fields is not None else len(found or [])
            found = found or _generated_names(width)
            rest = _chain_one(first, records)
        mapped = _resolve_columns(params, path, found)
        good, first_bad = _stage_records(rest, width, whitespace, staged)
    if good == 0:
        raise _header_error(params, path, first_bad)
    raw = _Raw(path=path, fmt="csv", mapped=mapped, expected_fields=width)
    raw.reader = "record by record"
    raw.excluded_by = _resolve_rule_columns(params, path, found)
    position = {name: i + 1 for i, name in enumerate(found)}
    select = _raw_lines_columns(raw, lambda name: sql_ident(f"f{position[name]}"))
    con.execute(
        "CREATE TEMP VIEW raw_lines AS SELECT source_row, n_fields, parse_problem, parse_detail, "
        f"raw_line, {select} FROM read_parquet({_sql_literal(str(staged))})"
    )
    log.info("ingest: %s read record by record (%s clean-parsed records)", path, f"{good:,}")
    return raw


def _sql_literal(text: str) -> str:
    """A path as a SQL string literal (views cannot hold bound parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _chain_one(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


def _header_error(params: IngestParams, path: Path, bad: Record | None) -> DataError:
    """No record of the file parses: it is malformed as a whole (wrong settings)."""
    if bad is None:
        return DataError(f"no data rows in {path} (the file is empty or only blank lines)")
    if bad.problem == "encoding":
        return _reader_error(f"invalid encoding on line {bad.line}: {bad.detail}", params, path)
    what = bad.detail or f"{len(bad.fields or ())} fields, but the header has a different number"
    return _reader_error(f"no line parses; line {bad.line}: {what}", params, path)


_RECORD_SCHEMA_META = [
    ("source_row", pa.int64()),
    ("n_fields", pa.int64()),
    ("parse_problem", pa.string()),
    ("parse_detail", pa.string()),
    ("raw_line", pa.string()),
]


def _stage_records(
    records: Iterator[Record], width: int, whitespace: bool, target: Path
) -> tuple[int, Record | None]:
    """Write records to ``target`` (Parquet, fields f1…f<width> as text); return how many
    parsed with the expected number of fields, and the first that did not."""
    schema = pa.schema([*_RECORD_SCHEMA_META, *((f"f{i + 1}", pa.string()) for i in range(width))])
    good = 0
    row = 0
    first_bad: Record | None = None
    with pq.ParquetWriter(target, schema) as writer:
        batch: dict[str, list[Any]] = {name: [] for name in schema.names}
        for record in records:
            row += 1
            fields = record.fields
            n = len(fields) if fields is not None else None
            keep = fields is not None and (n == width or whitespace)
            good += int(keep and n == width)
            if first_bad is None and n != width:
                first_bad = record
            batch["source_row"].append(row)
            batch["n_fields"].append(n)
            batch["parse_problem"].append(record.problem)
            batch["parse_detail"].append(
                f"line {record.line}: {record.detail}"
                if record.problem
                else (f"line {record.line}" if n != width else None)
            )
            batch["raw_line"].append(record.raw or None)
            for i in range(width):
                batch[f"f{i + 1}"].append(fields[i] if keep and fields and i < n else None)  # type: ignore[operator]
            if row % RECORD_BATCH_ROWS == 0:
                writer.write_table(pa.table(batch, schema=schema))
                batch = {name: [] for name in schema.names}
        writer.write_table(pa.table(batch, schema=schema))
    return good, first_bad


# --------------------------------------------------------------------------- validation


def _parameters(params: IngestParams, raw: _Raw, out_dir: Path) -> dict[str, Any]:
    """Every value the ``sql/ingest_*.sql`` programs bind, by ``$name``."""
    src = params.source
    return {
        "source_customer_id": raw.mapped["customer_id"],
        "source_ts": raw.mapped["ts"],
        "source_amount": raw.mapped.get("amount"),
        "source_quantity": raw.mapped.get("quantity"),
        "mapped_columns": list(raw.mapped),
        "ts_is_native": "ts" in raw.typed,
        "amount_is_native": "amount" in raw.typed,
        "quantity_is_native": "quantity" in raw.typed,
        "date_format": src.date_format,
        "decimal_separator": src.decimal_separator,
        "thousands_separator": src.thousands_separator,
        "expected_fields": raw.expected_fields,
        # no as-of date set: the run date, so a line dated in the future is quarantined
        # (its own reason) instead of moving every later default as-of date
        "as_of": params.as_of or dt.date.today(),
        "drop_exact_duplicates": params.drop_exact_duplicates,
        "default_account_manager": params.default_account_manager,
        "default_amount": params.default_amount,
        "amount_min": params.amount_range.min,
        "amount_max": params.amount_range.max,
        "max_text_length": params.max_text_length,
        "exclude_rules": [
            _rule_values(rule, column)
            for rule, column in zip(params.exclude, raw.excluded_by, strict=True)
        ],
        "transactions_file": str(out_dir / TRANSACTIONS_FILE),
        "quarantine_file": str(out_dir / QUARANTINE_FILE),
    }


def _rule_values(rule: ExcludeRule, column: str) -> dict[str, Any]:
    """One ``ingest.exclude`` rule as the struct ``sql/ingest_validate.sql`` binds."""
    dates = isinstance(rule.below, dt.date) or isinstance(rule.above, dt.date)
    values = [rule.equals] if rule.equals is not None else (rule.in_ or rule.not_in or [])
    return {
        "name": rule.name,
        "column_name": column,
        "kind": "range"
        if rule.below is not None or rule.above is not None
        else ("not_in" if rule.not_in is not None else "in"),
        "vals": list(values),
        "ignore_case": rule.ignore_case,
        "low_number": None if dates or rule.below is None else float(rule.below),  # type: ignore[arg-type]
        "high_number": None if dates or rule.above is None else float(rule.above),  # type: ignore[arg-type]
        "low_date": rule.below if dates else None,
        "high_date": rule.above if dates else None,
        "condition": rule.condition(),
    }


_PARAMETER_RE = re.compile(r"\$([a-z_]+)")


def sql_parameters(sql: str) -> set[str]:
    """The ``$name`` parameters a program uses (comments ignored)."""
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return set(_PARAMETER_RE.findall(code))


def _bind(sql: str, values: dict[str, Any]) -> dict[str, Any]:
    """The values a program names (DuckDB refuses parameters a statement does not use)."""
    return {name: values[name] for name in sorted(sql_parameters(sql))}


def _validate(con: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    """Create temp table ``checked`` (sql/ingest_validate.sql): every row with its reason."""
    sql = _sql(INGEST_VALIDATE_SQL)
    con.execute(f"CREATE TEMP TABLE checked AS\n{sql}", _bind(sql, values))
    log.info("ingest: validated rows against %d rules", len(RULES))


# --------------------------------------------------------------------------- writing


def _copy_atomic(
    con: duckdb.DuckDBPyConnection,
    program: str,
    values: dict[str, Any],
    target: Path,
    amount_note: str | None = None,
) -> None:
    """COPY a program's rows to Parquet at a temporary name beside ``target``, then rename it
    (``amount_note`` becomes the file's :data:`AMOUNT_METADATA_KEY` key-value metadata)."""
    sql = _sql(program)
    options = "FORMAT parquet, COMPRESSION zstd"
    binds = {**_bind(sql, values)}
    if amount_note is not None:
        options += f", KV_METADATA {{{_sql_literal(AMOUNT_METADATA_KEY)}: $amount_note}}"
        binds["amount_note"] = amount_note
    with atomic_path(target) as tmp:
        con.execute(f"COPY (\n{sql}\n) TO $target ({options})", {**binds, "target": str(tmp)})
    log.info("ingest: wrote %s", target)


# --------------------------------------------------------------------------- report


def _build_report(
    con: duckdb.DuckDBPyConnection, params: IngestParams, raw: _Raw, values: dict[str, Any]
) -> dict[str, Any]:
    """Counts from the checked table, reconciled against the files actually written."""
    sql = _sql(INGEST_REPORT_SQL)
    cursor = con.execute(sql, _bind(sql, values))
    row = cursor.fetchone()
    assert row is not None and cursor.description is not None
    counts = dict(zip([d[0] for d in cursor.description], row, strict=True))
    rows_in, rows_clean = counts["rows_in"], counts["rows_clean"]
    found = counts["reasons"] or {}
    reasons = {r: int(found.get(r, 0)) for r in report_reasons(params)}
    rows_quarantined = rows_in - rows_clean
    rows_excluded = sum(n for r, n in reasons.items() if r.startswith(f"{EXCLUDED}:"))
    rows_rejected = rows_quarantined - rows_excluded
    amount_total = float(counts["amount_total_clean"] or 0.0)
    reconciles = (
        counts["written_rows"]
        == counts["written_distinct"]
        == rows_in
        == rows_clean + rows_quarantined
        == rows_clean + sum(reasons.values())
        and sum(found.values()) == rows_quarantined
        and counts["written_min"] == 1
        and counts["written_max"] == rows_in
        and math.isfinite(amount_total)
    )

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    considered = rows_in - rows_excluded
    return {
        "source": params.source.path,
        "format": raw.fmt,
        "reader": raw.reader,
        "rows_in": int(rows_in),
        "rows_clean": int(rows_clean),
        "rows_quarantined": int(rows_quarantined),
        "rows_excluded": int(rows_excluded),
        "rows_rejected": int(rows_rejected),
        "quarantined_share": round(rows_quarantined / rows_in, 6),
        # what ingest.max_quarantine_share limits: rejected among the rows not excluded
        "rejected_share": round(rows_rejected / considered, 6) if considered else 0.0,
        "max_quarantine_share": params.max_quarantine_share,
        "as_of": params.as_of.isoformat() if params.as_of else "run date",
        "reasons": reasons,
        "customers": int(counts["customers"]),
        "ts_min": iso(counts["ts_min"]),
        "ts_max": iso(counts["ts_max"]),
        "amount_source": "column" if params.default_amount is None else "default_amount",
        "default_amount": params.default_amount,
        "amount_range": {"min": params.amount_range.min, "max": params.amount_range.max},
        "amount_total_clean": round(amount_total, 4) if math.isfinite(amount_total) else None,
        "max_text_length": params.max_text_length,
        "text_cleaned": {
            column: {
                "invisible_removed": int(counts[f"{column}_invisible_removed"]),
                "truncated": int(counts[f"{column}_truncated"]),
            }
            for column in TEXT_COLUMNS
        },
        "reconciles": bool(reconciles),
    }


def _check_threshold(report: dict[str, Any], params: IngestParams, out_dir: Path) -> None:
    considered = report["rows_in"] - report["rows_excluded"]
    source = params.source.path
    if considered == 0:
        rules = ", ".join(f"{r} {n:,}" for r, n in report["reasons"].items() if n)
        raise DataError(
            f"all {report['rows_in']:,} rows of {source} are excluded by ingest.exclude "
            f"({rules}); nothing is left to learn from. Check the rules' column and values in "
            f"params.yaml (the rows are in {out_dir / QUARANTINE_FILE})."
        )
    share = report["rows_rejected"] / considered
    if share <= params.max_quarantine_share:
        return
    rejected = {
        r: n for r, n in report["reasons"].items() if n and not r.startswith(f"{EXCLUDED}:")
    }
    top = sorted(((n, r) for r, n in rejected.items()), key=lambda x: (-x[0], x[1]))
    top_text = ", ".join(f"{r} {n:,}" for n, r in top[:3])
    fixes = {rule.reason: rule.fix for rule in RULES if rule.fix}
    hints = "".join(f" {r}: {fixes[r].rstrip('.')}." for _, r in top[:3] if r in fixes)
    excluded = (
        f" ({report['rows_excluded']:,} more rows excluded by ingest.exclude do not count)"
        if report["rows_excluded"]
        else ""
    )
    raise DataError(
        f"{report['rows_rejected']:,} of {considered:,} rows of {source} quarantined "
        f"({share:.1%}), above ingest.max_quarantine_share = {params.max_quarantine_share}"
        f"{excluded}; top reasons: {top_text}.{hints} Inspect {out_dir / QUARANTINE_FILE}, then "
        "fix the data or ingest.source.* (columns, date_format, separators), or raise "
        "ingest.max_quarantine_share."
    )
