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
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from churnguard.config import CANONICAL_COLUMNS, REQUIRED_COLUMNS, EngineParams, IngestParams
from churnguard.db import connect, sql_ident
from churnguard.errors import ChurnguardError, ConfigError, DataError
from churnguard.io import atomic_path, write_json_atomic

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
_NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
)  # fmt: skip
# Canonical columns a Parquet source may store typed, and the type raw_lines gives them.
_NATIVE_TYPES = {"ts": "TIMESTAMP", "amount": "DOUBLE", "quantity": "DOUBLE"}


def _sql(name: str) -> str:
    """The text of one of the ``INGEST_*_SQL`` programs (shipped with the package)."""
    return resources.files("churnguard").joinpath(name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    """One validation rule as declared in ``sql/ingest_validate.sql``."""

    reason: str  # reason code in quarantine.parquet and ingest_report.json
    doc: str  # what it checks, from the ``-- rule <reason>: ...`` comment above it


_RULE_DOC_RE = re.compile(r"^[ \t]*-- rule ([a-z_]+): (.+(?:\n[ \t]*--[ \t]{3,}\S.*)*)", re.M)
_RULE_REASON_RE = re.compile(r"\breason := '([a-z_]+)'")


def declared_rules(sql: str | None = None) -> tuple[Rule, ...]:
    """The rules of ``sql/ingest_validate.sql``, in priority order.

    Every ``reason := '<code>'`` of the rule CASE must follow a ``-- rule <code>: <what it
    checks>`` comment (continued on lines indented by three or more blanks after ``--``).
    """
    text = _sql(INGEST_VALIDATE_SQL) if sql is None else sql
    docs = [
        (reason, " ".join(re.sub(r"^\s*(--)?\s*", "", line) for line in doc.splitlines()))
        for reason, doc in _RULE_DOC_RE.findall(text)
    ]
    reasons = _RULE_REASON_RE.findall(text)
    if [r for r, _ in docs] != reasons or len(set(reasons)) != len(reasons) or not reasons:
        raise ChurnguardError(
            f"internal error: {INGEST_VALIDATE_SQL} declares reasons {reasons} but documents "
            f"{[r for r, _ in docs]}: each rule needs one '-- rule <reason>: ...' comment"
        )
    return tuple(Rule(reason, doc) for reason, doc in docs)


def describe_rules() -> str:
    """The rules as a Markdown list (reason code: what it checks), first failing wins."""
    return "".join(f"- `{rule.reason}`: {rule.doc}\n" for rule in declared_rules())


RULES: tuple[Rule, ...] = declared_rules()
REASONS: tuple[str, ...] = tuple(rule.reason for rule in RULES)


@dataclass
class _Raw:
    """The view ``raw_lines`` over the source: what was mapped and how."""

    path: Path
    fmt: str
    mapped: dict[str, str]  # canonical name → source column name
    typed: dict[str, str] = field(default_factory=dict)  # canonical → source type (Parquet)
    expected_fields: int | None = None  # whitespace mode: fields a line must have


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

    con = _connect(engine)
    try:
        _check_date_format(con, src.date_format)
        raw = _open_source(con, params, path, fmt)
        rows_in = con.execute("SELECT count(*) FROM raw_lines").fetchone()[0]  # type: ignore[index]
        if rows_in == 0:
            raise DataError(f"no data rows in {path} (the file has no rows after the header)")
        log.info("ingest: %s rows read, columns %s", f"{rows_in:,}", raw.mapped)
        values = _parameters(params, raw, out_dir)
        _validate(con, values)
        _copy_atomic(con, INGEST_TRANSACTIONS_SQL, values, out_dir / TRANSACTIONS_FILE)
        _copy_atomic(con, INGEST_QUARANTINE_SQL, values, out_dir / QUARANTINE_FILE)
        report = _build_report(con, params, raw, values)
    finally:
        con.close()

    write_json_atomic(out_dir / REPORT_FILE, report)
    log.info(
        "ingest: wrote %s (%s clean, %s quarantined)",
        out_dir,
        f"{report['rows_clean']:,}",
        f"{report['rows_quarantined']:,}",
    )
    if not report["reconciles"]:
        raise ChurnguardError(f"internal error: ingest counts do not reconcile: {report}")
    _check_threshold(report, params, out_dir)
    return report


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
#   source_row, n_fields, <every canonical column as VARCHAR, NULL when unmapped>,
#   ts_native, amount_native, quantity_native
# and the sql/ingest_*.sql programs read it by those names only.


def _open_source(
    con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path, fmt: str
) -> _Raw:
    """Create the relation ``raw_lines`` over the source file."""
    src = params.source
    if fmt == "parquet":
        return _open_parquet(con, params, path)
    if src.delimiter == WHITESPACE:
        return _open_whitespace(con, params, path)
    return _open_csv(con, params, path)


_PY_ENCODINGS = {"utf-8": "utf-8-sig", "utf-16": "utf-16", "latin-1": "latin-1"}


def _csv_header(params: IngestParams, path: Path) -> list[str]:
    """Column names from the first record (read with Python's csv module, BOM stripped).

    Reading the header ourselves lets DuckDB parse the file with ``auto_detect = false``:
    no sniffing, and a malformed row is reported by its line number.
    """
    src = params.source
    try:
        with open(path, encoding=_PY_ENCODINGS[src.encoding], newline="") as fh:
            reader = csv.reader(
                fh,
                delimiter=src.delimiter,
                quotechar=src.quote or None,
                quoting=csv.QUOTE_MINIMAL if src.quote else csv.QUOTE_NONE,
                doublequote=True,
            )
            first = next(reader, [])
    except (UnicodeError, csv.Error) as exc:
        raise _reader_error(exc, params, path) from None
    if src.header:
        names = [n if n.strip() else f"column{i}" for i, n in enumerate(first)]
        return _dedupe_names(names)
    return _generated_names(len(first))


def _open_csv(con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path) -> _Raw:
    src = params.source
    if len(src.delimiter) == 1:
        found = _csv_header(params, path)
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
    select = _raw_lines_columns(raw, sql_ident)
    _read(con, f"CREATE TEMP TABLE source_csv AS SELECT {select} FROM {call}", binds, params, path)
    # CTAS keeps insertion order, so rowid is the 0-based data row number.
    con.execute(
        "CREATE TEMP VIEW raw_lines AS "
        "SELECT rowid + 1 AS source_row, NULL::BIGINT AS n_fields, * FROM source_csv"
    )
    return raw


def _open_whitespace(con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path) -> _Raw:
    """Fields separated by runs of spaces/tabs, leading/trailing blanks ignored (CDNOW)."""
    src = params.source
    sql = (
        "CREATE TEMP TABLE source_whitespace AS "
        "SELECT regexp_split_to_array(cg_clean(line), '\\s+') AS parts "
        "FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = $delim, header = false, "
        "quote = '', escape = '', encoding = $encoding, skip = 0, comment = '', "
        "strict_mode = true, null_padding = false, ignore_errors = false) "
        "WHERE cg_clean(line) IS NOT NULL"
    )
    binds = {"path": src.path, "delim": _LINE_DELIMITER, "encoding": src.encoding}
    _read(con, sql, binds, params, path)
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
    position = {name: i + 1 for i, name in enumerate(found)}
    select = _raw_lines_columns(raw, lambda name: f"parts[{position[name]:d}]")
    # Structure, not values: the header line's row offset and the field positions.
    con.execute(
        f"CREATE TEMP VIEW raw_lines AS SELECT rowid + {1 - first_data:d} AS source_row, "
        f"len(parts) AS n_fields, {select} FROM source_whitespace WHERE rowid >= {first_data:d}"
    )
    return raw


def _open_parquet(con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path) -> _Raw:
    binds = {"path": params.source.path}
    described = _read(con, "DESCRIBE SELECT * FROM read_parquet($path)", binds, params, path)
    types = {r[0]: str(r[1]) for r in described}
    raw = _Raw(path=path, fmt="parquet", mapped=_resolve_columns(params, path, list(types)))
    for c, s in raw.mapped.items():
        kind = _type_kind(types[s])
        if (c == "ts" and kind == "temporal") or (
            c in ("amount", "quantity") and kind == "numeric"
        ):
            raw.typed[c] = types[s]
    # Views cannot hold bound parameters, so the mapped columns are copied once (out of core).
    sql = (
        "CREATE TEMP TABLE raw_lines AS SELECT file_row_number + 1 AS source_row, "
        f"NULL::BIGINT AS n_fields, {_raw_lines_columns(raw, sql_ident)} "
        "FROM read_parquet($path, file_row_number = true)"
    )
    _read(con, sql, binds, params, path)
    return raw


def _raw_lines_columns(raw: _Raw, source: Callable[[str], str]) -> str:
    """The rename: the one place where the user's column names become SQL.

    ``source`` turns a source column name into SQL (a quoted identifier, or a field of a
    whitespace-split line). Every canonical column is present, as text (``NULL`` when not
    mapped), followed by ``<c>_native``: a typed Parquet value of ts, amount or quantity,
    cast to TIMESTAMP or DOUBLE, else ``NULL``.
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


def _reader_error(exc: Exception, params: IngestParams, path: Path) -> DataError:
    """A :class:`DataError` naming the file and the ``ingest.source`` key to change."""
    msg = str(exc)
    src = params.source
    if isinstance(exc, UnicodeError) or "invalid unicode" in msg.lower():
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


def _resolve_columns(params: IngestParams, path: Path, found: list[str]) -> dict[str, str]:
    """Map canonical names to source columns (exact, else unique case/blank-insensitive).

    Raises :class:`DataError` listing the columns found and the keys to fix.
    """
    src = params.source
    by_folded: dict[str, list[str]] = {}
    for name in found:
        by_folded.setdefault(name.strip().casefold(), []).append(name)
    mapped: dict[str, str] = {}
    missing: list[str] = []
    for canonical in CANONICAL_COLUMNS:
        wanted = src.columns.get(canonical)
        if wanted is None:
            continue
        if wanted in found:
            mapped[canonical] = wanted
        elif len(by_folded.get(wanted.strip().casefold(), [])) == 1:
            mapped[canonical] = by_folded[wanted.strip().casefold()][0]
        else:
            missing.append(canonical)
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


# --------------------------------------------------------------------------- validation


def _parameters(params: IngestParams, raw: _Raw, out_dir: Path) -> dict[str, Any]:
    """Every value the ``sql/ingest_*.sql`` programs bind, by ``$name``."""
    src = params.source
    return {
        "source_customer_id": raw.mapped["customer_id"],
        "source_ts": raw.mapped["ts"],
        "source_amount": raw.mapped["amount"],
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
        "transactions_file": str(out_dir / TRANSACTIONS_FILE),
        "quarantine_file": str(out_dir / QUARANTINE_FILE),
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
    con: duckdb.DuckDBPyConnection, program: str, values: dict[str, Any], target: Path
) -> None:
    """COPY a program's rows to Parquet at a temporary name beside ``target``, then rename it."""
    sql = _sql(program)
    with atomic_path(target) as tmp:
        con.execute(
            f"COPY (\n{sql}\n) TO $target (FORMAT parquet, COMPRESSION zstd)",
            {**_bind(sql, values), "target": str(tmp)},
        )
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
    reasons = {r: int((counts["reasons"] or {}).get(r, 0)) for r in REASONS}
    rows_quarantined = rows_in - rows_clean
    reconciles = (
        counts["written_rows"]
        == counts["written_distinct"]
        == rows_in
        == rows_clean + rows_quarantined
        == rows_clean + sum(reasons.values())
        and counts["written_min"] == 1
        and counts["written_max"] == rows_in
    )

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "source": params.source.path,
        "format": raw.fmt,
        "rows_in": int(rows_in),
        "rows_clean": int(rows_clean),
        "rows_quarantined": int(rows_quarantined),
        "quarantined_share": round(rows_quarantined / rows_in, 6),
        "max_quarantine_share": params.max_quarantine_share,
        "as_of": params.as_of.isoformat() if params.as_of else "run date",
        "reasons": reasons,
        "customers": int(counts["customers"]),
        "ts_min": iso(counts["ts_min"]),
        "ts_max": iso(counts["ts_max"]),
        "amount_total_clean": round(float(counts["amount_total_clean"] or 0.0), 4),
        "reconciles": bool(reconciles),
    }


def _check_threshold(report: dict[str, Any], params: IngestParams, out_dir: Path) -> None:
    share = report["rows_quarantined"] / report["rows_in"]
    if share <= params.max_quarantine_share:
        return
    top = sorted(((n, r) for r, n in report["reasons"].items() if n), key=lambda x: (-x[0], x[1]))
    top_text = ", ".join(f"{r} {n:,}" for n, r in top[:3])
    raise DataError(
        f"{report['rows_quarantined']:,} of {report['rows_in']:,} rows of {params.source.path} "
        f"quarantined ({share:.1%}), above ingest.max_quarantine_share = "
        f"{params.max_quarantine_share}; top reasons: {top_text}. Inspect "
        f"{out_dir / QUARANTINE_FILE}, then fix the data or ingest.source.* "
        "(columns, date_format, separators), or raise ingest.max_quarantine_share."
    )
