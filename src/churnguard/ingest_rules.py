"""Ingest rules: what ingest decides about a source, computed from values only.

No disk, database or MLflow here (``tests/unit/test_layout.py``); :mod:`churnguard.ingest`
opens the file and the DuckDB connection, stages the rows, runs the SQL and writes. What
this module holds:

- the row rules (reason code, check, message; the first failing rule wins), declared once,
  in the ``failures`` CASE of ``sql/ingest_validate.sql`` (shipped with the package, read
  like the code it is): :data:`REASONS` (the report's reason list) and
  :func:`describe_rules` (the docs) are read from there;
- source columns matched by name exactly, else by a unique case- and blank-insensitive
  match (:func:`resolve_columns`);
- the record-by-record parser (:func:`read_records`, Python's csv module over an open
  byte stream) ingest falls back on when DuckDB meets a malformed line: every record keeps
  its number, a malformed one keeps its line number and raw text, and a quoted field that
  runs over lines without forming a valid record is taken as a broken quote on its first
  line, so one stray quote cannot swallow the rest of the file;
- the values the ``sql/ingest_*.sql`` programs bind (:func:`sql_values`, :func:`bind`);
- the report from the counts (:func:`build_report`) and the quarantine threshold
  (:func:`check_threshold`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

from churnguard.config import CANONICAL_COLUMNS, REQUIRED_COLUMNS, ExcludeRule, IngestParams
from churnguard.errors import ChurnguardError, DataError

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

# Record by record: a quoted field may run over this many lines (or characters) before the
# record is taken as a broken quote on its first line.
MAX_RECORD_LINES = 1_000
MAX_RECORD_CHARS = 1_000_000
# Free text people read in the lists: invisible characters removed, length capped at ingest.
TEXT_COLUMNS = ("customer_name", "account_manager", "region")


def sql_text(name: str) -> str:
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
    text = sql_text(INGEST_VALIDATE_SQL) if sql is None else sql
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


# --------------------------------------------------------------------------- the source


@dataclass
class RawLines:
    """The view ``raw_lines`` over the source: what was mapped and how."""

    path: Path
    fmt: str
    mapped: dict[str, str]  # canonical name → source column name
    typed: dict[str, str] = field(default_factory=dict)  # canonical → source type (Parquet)
    expected_fields: int | None = None  # fields a line must have (whitespace, record by record)
    excluded_by: list[str] = field(default_factory=list)  # source column of each exclude rule
    reader: str = "duckdb"  # or "record by record" (malformed lines were found)


def amount_metadata(params: IngestParams) -> str:
    """What transactions.parquet records about its amounts (see :data:`churnguard.io.AMOUNT_METADATA_KEY`)."""
    if params.default_amount is None:
        return json.dumps({"source": "column", "column": params.source.columns["amount"]})
    return json.dumps({"source": "default_amount", "default_amount": params.default_amount})


def resolve_format(fmt: str, path: Path) -> str:
    """``auto`` → ``parquet`` for .parquet/.pq/.parq files, else ``csv``."""
    if fmt != "auto":
        return fmt
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


# --------------------------------------------------------------------------- column names


def dedupe_names(names: list[str]) -> list[str]:
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


def generated_names(n: int) -> list[str]:
    """DuckDB's names for header-less files: column0… (zero-padded from 10 columns)."""
    width = len(str(max(n - 1, 0)))
    return [f"column{i:0{width}d}" for i in range(n)]


def match_column(found: list[str], wanted: str) -> str | None:
    """A source column by exact name, else by a unique case- and blank-insensitive match."""
    if wanted in found:
        return wanted
    folded = [name for name in found if name.strip().casefold() == wanted.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def resolve_columns(params: IngestParams, path: Path, found: list[str]) -> dict[str, str]:
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
        match = match_column(found, wanted)
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


def resolve_rule_columns(params: IngestParams, path: Path, found: list[str]) -> list[str]:
    """The source column of each ``ingest.exclude`` rule, matched like the mapped columns."""
    columns = []
    for i, rule in enumerate(params.exclude):
        match = match_column(found, rule.column)
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


# --------------------------------------------------------------------------- bound values


def sql_values(
    params: IngestParams, raw: RawLines, out_dir: Path, run_date: dt.date
) -> dict[str, Any]:
    """Every value the ``sql/ingest_*.sql`` programs bind, by ``$name`` (``run_date`` is the
    as-of date when ``ingest.as_of`` is not set)."""
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
        "as_of": params.as_of or run_date,
        "drop_exact_duplicates": params.drop_exact_duplicates,
        "default_account_manager": params.default_account_manager,
        "default_amount": params.default_amount,
        "amount_min": params.amount_range.min,
        "amount_max": params.amount_range.max,
        "max_text_length": params.max_text_length,
        "exclude_rules": [
            rule_values(rule, column)
            for rule, column in zip(params.exclude, raw.excluded_by, strict=True)
        ],
        "transactions_file": str(out_dir / TRANSACTIONS_FILE),
        "quarantine_file": str(out_dir / QUARANTINE_FILE),
    }


def rule_values(rule: ExcludeRule, column: str) -> dict[str, Any]:
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


def bind(sql: str, values: dict[str, Any]) -> dict[str, Any]:
    """The values a program names (DuckDB refuses parameters a statement does not use)."""
    return {name: values[name] for name in sorted(sql_parameters(sql))}


# --------------------------------------------------------------------------- report


def build_report(counts: dict[str, Any], params: IngestParams, raw: RawLines) -> dict[str, Any]:
    """ingest_report.json from the counts of ``sql/ingest_report.sql`` (the checked table
    and the files actually written), reconciled."""
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


def check_threshold(report: dict[str, Any], params: IngestParams, out_dir: Path) -> None:
    """Raise :class:`DataError` when nothing is left after ingest.exclude, or the rejected
    share is above ``ingest.max_quarantine_share`` (naming the top reasons and their fixes)."""
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
