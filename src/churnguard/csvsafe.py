"""Spreadsheet-safe CSV (write and read back exactly) and bounded, portable file names.

Re-exported from :mod:`churnguard.io`; kept apart so the CSV rules live in one short module.

CSV format written by :func:`write_excel_csv_atomic`: UTF-8 with BOM, comma, CRLF record ends
(RFC 4180). A field is quoted when it holds a comma, a quote or any control character
(C0, DEL, C1, U+2028/2029), so no reader that splits lines on CR, LF, NEL, VT, FF or the
Unicode separators can break a row. Numbers, booleans and dates are written as pandas formats
them and stay unquoted; NaN/NA is an empty field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from churnguard.errors import DataError
from churnguard.formulas import is_formula_like
from churnguard.io import write_bytes_atomic
from churnguard.timing import timed

# A formula-like text cell (churnguard.formulas) is prefixed with "'" (OWASP CSV injection
# advice), and so is one that already starts with it.
TEXT_PREFIX = "'"
IDENTIFIERS: tuple[str, ...] = ("customer_id",)
BOM = b"\xef\xbb\xbf"
LINE_END = "\r\n"
_NEEDS_QUOTES = re.compile('[",\x00-\x1f\x7f-\x9f\u2028\u2029]')
_FIELD_LIMIT = 2**31 - 1  # csv's default 131,072-character field limit is too small for free text


def _raise_csv_field_limit() -> None:
    """csv.field_size_limit is process-wide; only ever raise it."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)


# --------------------------------------------------------------------------- formula safety


def _needs_prefix(value: str) -> bool:
    return value.startswith(TEXT_PREFIX) or is_formula_like(value)


def neutralise_cell(value: str) -> str:
    """Prefix ``'`` to a formula-like text cell, and to one that already starts with ``'`` so
    :func:`unneutralise_cell` can undo it exactly."""
    return TEXT_PREFIX + value if _needs_prefix(value) else value


def unneutralise_cell(value: str) -> str:
    """Inverse of :func:`neutralise_cell`: drop exactly one leading ``'``."""
    return value[1:] if value.startswith(TEXT_PREFIX) else value


def excel_safe_frame(
    frame: pd.DataFrame, identifiers: Collection[str] = IDENTIFIERS
) -> pd.DataFrame:
    """Copy of ``frame`` with every text cell neutralised; identifier, numeric, boolean and
    datetime columns untouched."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if (
            col in identifiers
            or pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
        ):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        if series.dtype != object and not pd.api.types.is_string_dtype(series):
            # categoricals, intervals, periods, …: cell by cell, as text cells would be
            out[col] = series.astype(object).map(
                lambda v: neutralise_cell(v) if isinstance(v, str) else v
            )
            continue
        values = series.astype(object).tolist()
        hit = np.fromiter(
            (isinstance(v, str) and _needs_prefix(v) for v in values), dtype=bool, count=len(values)
        )
        if hit.any():  # only the few risky cells change; the column keeps its dtype otherwise
            series = series.astype(object).copy()
            series[hit] = [neutralise_cell(v) for v in series[hit]]
        out[col] = series
    return out


# --------------------------------------------------------------------------- writing


def _field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def excel_csv_text(frame: pd.DataFrame, *, identifiers: Collection[str] = IDENTIFIERS) -> str:
    """The CSV text :func:`write_excel_csv_atomic` writes (without the BOM).

    pandas renders every cell (so numbers and dates look as they always did); the cells are
    then re-joined with this module's quoting rule and CRLF record ends.
    """
    _raise_csv_field_limit()
    rendered = excel_safe_frame(frame, identifiers).to_csv(
        index=False, quoting=csv.QUOTE_ALL, lineterminator=LINE_END
    )
    out = io.StringIO()
    for row in csv.reader(io.StringIO(rendered, newline=""), strict=True):
        line = ",".join(map(_field, row))
        out.write(('""' if len(row) == 1 and not line else line) + LINE_END)  # a lone empty field
    return out.getvalue()


@timed("write CSVs")
def write_excel_csv_atomic(
    target: str | Path, frame: pd.DataFrame, *, identifiers: Collection[str] = IDENTIFIERS
) -> None:
    """CSV that opens safely in Excel and reads back exactly with :func:`read_excel_csv`.

    Text cells are neutralised (see :func:`neutralise_cell`) except the ``identifiers``
    columns, which are written exactly as they are. Written via ``atomic_path``.
    """

    write_bytes_atomic(target, BOM + excel_csv_text(frame, identifiers=identifiers).encode("utf-8"))


# --------------------------------------------------------------------------- reading


class MalformedCsvError(DataError, ValueError):
    """A CSV that :func:`read_excel_csv` cannot read exactly (exit 3). ``row`` counts as a
    spreadsheet does (the header is row 1); ``column`` is a header name or ``#n``."""

    def __init__(
        self, path: str | Path, detail: str, row: int | None = None, column: str | None = None
    ):
        self.path, self.detail, self.row, self.column = str(path), detail, row, column
        where = "".join(
            [
                f", row {row}" if row is not None else "",
                f", column {column!r}" if column is not None else "",
            ]
        )
        super().__init__(f"{path}{where}: {detail}")


SCHEMA_TYPES = ("str", "int", "Int64", "float", "bool", "boolean", "datetime")
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)
_INT64 = (-(2**63), 2**63 - 1)
_BOOLS = {"True": True, "False": False}


def _column_name(header: list[str] | None, index: int) -> str:
    return header[index] if header is not None and 0 <= index < len(header) else f"#{index + 1}"


def _split_records(text: str, path: str | Path) -> list[list[str]]:
    """RFC 4180 records through the csv module in strict mode (CRLF, LF or CR ends); broken
    quoting is an error naming the record, not a silently merged row. A blank line is one
    empty field (how a one-column row with an empty value reads)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[list[str]] = []
    try:
        for record in reader:
            records.append(record or [""])
    except csv.Error as exc:
        raise MalformedCsvError(path, f"broken quoting ({exc})", len(records) + 1) from None
    return records


def _locate_offset(prefix: str) -> tuple[int, int, list[str] | None]:
    """(row, field index, header) of the end of ``prefix``: where a bad byte sits."""
    try:
        rows = list(csv.reader(io.StringIO(prefix, newline="")))
    except csv.Error:
        return prefix.count("\n") + 1, 0, None
    if not rows or prefix.endswith(("\n", "\r")):
        return len(rows) + 1, 0, rows[0] if rows else None
    return len(rows), max(len(rows[-1]) - 1, 0), rows[0]


def _cast(values: list[str], kind: str, text: bool, fail: Callable[[int, str], NoReturn]) -> Any:
    """``values`` (one column's fields) as ``kind``; ``fail(i, detail)`` on a bad field."""
    if kind == "str":
        return pd.Series([unneutralise_cell(v) for v in values] if text else values, dtype=object)
    if kind == "float":
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if v == "":
                out[i] = np.nan
            elif _FLOAT.fullmatch(v):
                out[i] = float(v)
            else:
                fail(i, f"{v[:40]!r} is not a number")
        return out
    if kind in ("int", "Int64"):
        ints: list[int | None] = []
        for i, v in enumerate(values):
            if v == "" and kind == "Int64":
                ints.append(None)
            elif not _INT.fullmatch(v):
                fail(
                    i,
                    f"{v[:40]!r} is not a whole number"
                    if v
                    else "empty, but the column allows no blanks",
                )
            elif not _INT64[0] <= (n := int(v)) <= _INT64[1]:
                fail(i, f"{v[:40]} does not fit a 64-bit integer")
            else:
                ints.append(n)
        return np.array(ints, dtype=np.int64) if kind == "int" else pd.array(ints, dtype="Int64")
    if kind in ("bool", "boolean"):
        flags: list[bool | None] = []
        for i, v in enumerate(values):
            if v == "" and kind == "boolean":
                flags.append(None)
            elif v in _BOOLS:
                flags.append(_BOOLS[v])
            else:
                fail(i, f"{v[:40]!r} is not True or False")
        return np.array(flags, dtype=bool) if kind == "bool" else pd.array(flags, dtype="boolean")
    # datetime: ISO 8601 as pandas writes it; blank is NaT
    try:
        return pd.to_datetime([v or None for v in values], format="ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        for i, v in enumerate(values):  # find the culprit only on failure: one by one is slow
            try:
                pd.to_datetime([v or None], format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                fail(i, f"{v[:40]!r} is not an ISO 8601 date")
        fail(-1, f"dates cannot be combined in one column ({exc})")  # e.g. mixed time zones


def read_excel_csv(
    path: str | Path, schema: Mapping[str, str], *, identifiers: Collection[str] = IDENTIFIERS
) -> pd.DataFrame:
    """Read a CSV written by :func:`write_excel_csv_atomic` back exactly.

    ``schema`` maps each wanted column to one of :data:`SCHEMA_TYPES`; the result has those
    columns in that order (other columns in the file are ignored). Nothing is guessed:
    ``str`` fields come back exactly ("NA", "null", "007", "1e5" stay text; a blank field is
    ``""``, never NaN), with the ``'`` added by neutralisation removed except in the
    ``identifiers`` columns. Blank is NaN for ``float``, NA for ``Int64``/``boolean``, NaT for
    ``datetime``, and an error for ``int``/``bool``.

    Any malformation (bad UTF-8, broken quoting, ragged rows, missing or repeated columns,
    a field that does not cast) raises :class:`MalformedCsvError` naming the file, row and
    column. OS errors (a missing file) propagate unchanged.
    """
    unknown = {k: v for k, v in schema.items() if v not in SCHEMA_TYPES}
    if unknown:
        raise ValueError(f"unknown schema types {unknown}; use one of {SCHEMA_TYPES}")
    _raise_csv_field_limit()
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row, index, header = _locate_offset(raw[: exc.start].decode("utf-8-sig", "replace"))
        detail = f"bytes that are not UTF-8 at byte offset {exc.start}"
        raise MalformedCsvError(path, detail, row, _column_name(header, index)) from None
    records = _split_records(text, path)
    if not records:
        raise MalformedCsvError(path, "the file is empty (no header row)", 1)
    header = records[0]
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in schema and name in positions:
            raise MalformedCsvError(path, "this column appears twice in the header", 1, name)
        positions.setdefault(name, i)
    missing = [name for name in schema if name not in positions]
    if missing:
        raise MalformedCsvError(path, f"missing column(s) {missing} in the header", 1, missing[0])
    for r, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            col = _column_name(header, min(len(record), len(header)))
            detail = f"{len(record)} fields but the header has {len(header)}"
            raise MalformedCsvError(path, detail, r, col)
    columns: dict[str, Any] = {}
    for name, kind in schema.items():
        j = positions[name]

        def fail(i: int, detail: str, name: str = name) -> NoReturn:
            raise MalformedCsvError(
                path, f"{detail} (expected {schema[name]})", i + 2 if i >= 0 else None, name
            )

        columns[name] = _cast([rec[j] for rec in records[1:]], kind, name not in identifiers, fail)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(records) - 1))


# --------------------------------------------------------------------------- file names

MAX_STEM_BYTES = 80  # stem + ".xlsx" ≤ 85 bytes: far below NAME_MAX (255) and the ~120 asked,
# and leaves most of Windows' 260-character path for the folders above it
_HASH_CHARS = 8
_KEEP = re.compile(r"[\w\-. ]")
_RESERVED = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])", re.IGNORECASE)


def _cap(text: str, max_bytes: int) -> str:
    """Longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes, cut at a character
    boundary and never between a letter and its combining marks."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    cut = len(text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
    while cut > 0 and unicodedata.category(text[cut])[0] == "M":
        cut -= 1
    return text[:cut]


def _is_reserved(stem: str) -> bool:
    """A Windows device name (CON, NUL, COM1, …) before the first dot, with any extension."""
    return _RESERVED.fullmatch(stem.split(".", 1)[0].rstrip(" ")) is not None


def _with_suffix(text: str, suffix: str, max_bytes: int) -> str:
    base = _cap(text, max_bytes - len(suffix.encode("utf-8")) - 1).rstrip(" ._")
    stem = f"{base or 'unnamed'}-{suffix}"
    return stem if not _is_reserved(stem) else _with_suffix("_" + text, suffix, max_bytes)


def safe_file_stem(
    name: str, taken: set[str] | None = None, max_bytes: int = MAX_STEM_BYTES
) -> str:
    """A file stem for ``name`` that is safe on Linux, macOS and Windows and depends on the
    name alone.

    NFC; control/format characters dropped; anything outside letters, digits, ``_ - . `` and
    combining marks becomes ``_`` (runs collapsed); `` ._`` stripped at the ends; empty is
    ``unnamed``; a Windows device name (``CON``, ``nul.txt``, ``COM¹``…) gets a leading ``_``.
    When cleaning changed anything, or the stem is longer than ``max_bytes`` UTF-8 bytes, it
    is cut to fit and ``-`` plus 8 hex digits of the name's SHA-256 is appended, so
    ``"A/B"`` is always ``A_B-<hash>`` and never takes ``"A_B"``'s file. Already-safe names
    (Arabic and Persian included) are kept as they are.

    ``taken`` (casefolded stems, updated) is the one case where other names matter: a stem
    equal but for case to a taken one (``Ana`` after ``ANA``: one file on Windows and macOS)
    gets the hash too, then a counter if it still collides.
    """
    if max_bytes < 32:  # room for "unnamed-<hash>-<counter>"
        raise ValueError(f"max_bytes must be at least 32, not {max_bytes}")
    original = str(name)
    text = unicodedata.normalize("NFC", original)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    # again: dropping a control between a letter and its mark can leave them composable
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        ch if _KEEP.match(ch) or unicodedata.category(ch)[0] == "M" else "_" for ch in text
    )
    text = re.sub(r"_+", "_", text).strip(" ._") or "unnamed"
    if _is_reserved(text):
        text = "_" + text
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    hashed = text != original or len(text.encode("utf-8")) > max_bytes
    stem = _with_suffix(text, digest, max_bytes) if hashed else text
    if taken is None:
        return stem
    if stem.casefold() in taken and not hashed:
        stem = _with_suffix(text, digest, max_bytes)
    i = 2
    while stem.casefold() in taken:
        stem = _with_suffix(text, f"{digest}-{i}", max_bytes)
        i += 1
    taken.add(stem.casefold())
    return stem
