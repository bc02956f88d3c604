"""Ingest: raw transactions (CSV or Parquet, any column names) → canonical Parquet + quarantine.

Every row is read as text and checked in DuckDB SQL (out of core: nothing is loaded into
pandas). A row lands either in ``transactions.parquet`` (canonical schema) or in
``quarantine.parquet`` with the first failing reason; ``ingest_report.json`` shows that the
counts reconcile. All three files are written atomically and deterministically.

This module does the I/O: it checks and reads the file, opens the DuckDB connection,
stages the rows, runs the ``sql/ingest_*.sql`` programs and writes. What it decides with
— the row rules, column matching, the record-by-record parser, the bound values, the
report and its threshold — is pure logic in :mod:`churnguard.ingest_rules`.

The only SQL built here from the configuration is the reader call and the view
``raw_lines`` that renames the user's columns to the canonical names (see "reading and
staging"); everything after it is in ``sql/ingest_*.sql`` with bound parameters.

A delimited file is parsed by DuckDB in one pass. When DuckDB meets a malformed line
(too few or too many fields, broken quoting, bytes that are not in the configured
encoding), the file is read again record by record (:func:`~churnguard.ingest_rules.read_records`,
Python's csv module) and staged as Parquet, so each malformed record is quarantined on its
own. DuckDB's own reject tables cannot do this: they count blank lines in their line
numbers but not in the rows they return (so the clean rows cannot be numbered) and an
unterminated quote swallows the rest of the file into a single rejected record, cut at
10,000 characters.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.config import CANONICAL_COLUMNS, EngineParams, IngestParams
from churnguard.db import connect, sql_ident
from churnguard.errors import ChurnguardError, ConfigError, DataError
from churnguard.ingest_rules import (
    INGEST_MACROS_SQL,
    INGEST_QUARANTINE_SQL,
    INGEST_REPORT_SQL,
    INGEST_TRANSACTIONS_SQL,
    INGEST_VALIDATE_SQL,
    QUARANTINE_FILE,
    REPORT_FILE,
    RULES,
    TRANSACTIONS_FILE,
    WHITESPACE,
    RawLines,
    Record,
    amount_metadata,
    bind,
    build_report,
    check_threshold,
    dedupe_names,
    generated_names,
    read_records,
    resolve_columns,
    resolve_format,
    resolve_rule_columns,
    sql_text,
    sql_values,
)
from churnguard.io import AMOUNT_METADATA_KEY, atomic_path, write_json_atomic

log = logging.getLogger(__name__)

# Reading a file line by line: a two-byte delimiter (ASCII unit + record separator) that
# does not occur in text data, so each line arrives as one column.
_LINE_DELIMITER = "\x1f\x1e"
# Record by record (ingest_rules.read_records): records go to Parquet in batches of this many.
RECORD_BATCH_ROWS = 100_000
_NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
)  # fmt: skip
# Canonical columns a Parquet source may store typed, and the type raw_lines gives them.
_NATIVE_TYPES = {"ts": "TIMESTAMP", "amount": "DOUBLE", "quantity": "DOUBLE"}


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
        values = sql_values(params, raw, out_dir, dt.date.today())
        _validate(con, values)
        _copy_atomic(
            con,
            INGEST_TRANSACTIONS_SQL,
            values,
            out_dir / TRANSACTIONS_FILE,
            amount_metadata(params),
        )
        _copy_atomic(con, INGEST_QUARANTINE_SQL, values, out_dir / QUARANTINE_FILE)
        report = build_report(_count(con, values), params, raw)
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
    check_threshold(report, params, out_dir)
    return report


def _temp_root(engine: EngineParams) -> Path:
    root = Path(engine.temp_directory)
    root.mkdir(parents=True, exist_ok=True)
    return root


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
    con.execute(sql_text(INGEST_MACROS_SQL))
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
) -> RawLines:
    """Create the relation ``raw_lines`` over the source file."""
    src = params.source
    if fmt == "parquet":
        return _open_parquet(con, params, path)
    if src.delimiter == WHITESPACE:
        return _open_whitespace(con, params, path, scratch)
    return _open_csv(con, params, path, scratch)


def _open_csv(
    con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path, scratch: Path
) -> RawLines:
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
    raw = RawLines(path=path, fmt="csv", mapped=resolve_columns(params, path, found))
    raw.excluded_by = resolve_rule_columns(params, path, found)
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
) -> RawLines:
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
        found = dedupe_names(first[0])
        first_data = 1
    else:
        width = con.execute("SELECT max(len(parts)) FROM source_whitespace").fetchone()[0]  # type: ignore[index]
        found = generated_names(width or 0)
        first_data = 0
    raw = RawLines(
        path=path,
        fmt="csv",
        mapped=resolve_columns(params, path, found),
        expected_fields=len(found),
    )
    raw.excluded_by = resolve_rule_columns(params, path, found)
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


def _open_parquet(con: duckdb.DuckDBPyConnection, params: IngestParams, path: Path) -> RawLines:
    binds = {"path": params.source.path}
    described = _read(con, "DESCRIBE SELECT * FROM read_parquet($path)", binds, params, path)
    types = {r[0]: str(r[1]) for r in described}
    raw = RawLines(path=path, fmt="parquet", mapped=resolve_columns(params, path, list(types)))
    raw.excluded_by = resolve_rule_columns(params, path, list(types))
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


def _raw_lines_columns(raw: RawLines, source: Callable[[str], str]) -> str:
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


# --------------------------------------------------------------------------- record by record


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
        return dedupe_names(names)
    return generated_names(len(first.fields))


def _open_records(
    con: duckdb.DuckDBPyConnection,
    params: IngestParams,
    path: Path,
    scratch: Path,
    found: list[str] | None,
) -> RawLines:
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
            found = dedupe_names(
                [n if n.strip() or whitespace else f"column{i}" for i, n in enumerate(names)]
            )
            width = len(found)
            rest: Iterator[Record] = records
        else:
            width = len(first.fields) if first.fields is not None else len(found or [])
            found = found or generated_names(width)
            rest = _chain_one(first, records)
        mapped = resolve_columns(params, path, found)
        good, first_bad = _stage_records(rest, width, whitespace, staged)
    if good == 0:
        raise _header_error(params, path, first_bad)
    raw = RawLines(path=path, fmt="csv", mapped=mapped, expected_fields=width)
    raw.reader = "record by record"
    raw.excluded_by = resolve_rule_columns(params, path, found)
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


def _validate(con: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    """Create temp table ``checked`` (sql/ingest_validate.sql): every row with its reason."""
    sql = sql_text(INGEST_VALIDATE_SQL)
    con.execute(f"CREATE TEMP TABLE checked AS\n{sql}", bind(sql, values))
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
    sql = sql_text(program)
    options = "FORMAT parquet, COMPRESSION zstd"
    binds = {**bind(sql, values)}
    if amount_note is not None:
        options += f", KV_METADATA {{{_sql_literal(AMOUNT_METADATA_KEY)}: $amount_note}}"
        binds["amount_note"] = amount_note
    with atomic_path(target) as tmp:
        con.execute(f"COPY (\n{sql}\n) TO $target ({options})", {**binds, "target": str(tmp)})
    log.info("ingest: wrote %s", target)


# --------------------------------------------------------------------------- report


def _count(con: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> dict[str, Any]:
    """The counts of ``sql/ingest_report.sql``: the checked table and the files written."""
    sql = sql_text(INGEST_REPORT_SQL)
    cursor = con.execute(sql, bind(sql, values))
    row = cursor.fetchone()
    assert row is not None and cursor.description is not None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))
