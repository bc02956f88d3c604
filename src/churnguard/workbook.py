"""A manager's list as an Excel workbook to work in and record outcomes in.

The contract (``churnguard outcomes import`` reads filled workbooks back; keep it):

- the first sheet is ``List``: header in row 1, one row per listed customer in rank order;
- it holds, by these exact headers, ``list_date`` (a date cell, the list's as-of date, the
  same in every row), ``customer_id`` (text, exactly as in the data), ``action`` (the
  playbook rule name, text) and, last, the manager's columns: ``contacted_on`` (empty date
  cells with date validation), ``outcome`` (empty, a drop-down of :data:`OUTCOMES`) and
  ``note`` (text);
- the second sheet is ``Actions``: each short action label and its full wording.

The other columns (rank, due date, name, risk, value, reasons…) and their headers are for
the manager and may change (their headers are translated with the report).

Cells are typed: numbers as numbers, dates as dates (``yyyy-mm-dd``), percentages as
fractions formatted ``0.0%``, money with ``report.currency``. Every text cell is a string
cell formatted as Text (``@``), so no formula can run — a name like ``=HYPERLINK(…)`` is
shown, not evaluated — and what a manager types into a text column stays text. Characters
a workbook cannot hold (C0 controls other than tab and line breaks) become ``�``.

Deterministic: the document's created/modified dates are the list date and every zip entry
carries that date, so the same list gives the same bytes (DVC tracks ``scores/latest``).
Pure: :func:`manager_workbook` returns the file's bytes; the caller writes them.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from churnguard.i18n import OUTCOMES, direction, label, left_list_action, translator
from churnguard.labels import WORKBOOK_HEADERS, WORKBOOK_TEXT
from churnguard.localfmt import missing
from churnguard.timing import timed

LIST_SHEET = "List"
ACTIONS_SHEET = "Actions"
# the exact headers other programs read (never translated)
LIST_DATE, CUSTOMER_ID, ACTION = "list_date", "customer_id", "action"
CONTACTED_ON, OUTCOME, NOTE = "contacted_on", "outcome", "note"
MANAGER_INPUT = (CONTACTED_ON, OUTCOME, NOTE)
CONTRACT_HEADERS = (LIST_DATE, CUSTOMER_ID, ACTION, *MANAGER_INPUT)

DATE_FORMAT = "yyyy-mm-dd"
TEXT_FORMAT = "@"
PCT_FORMAT = "0.0%"
INT_FORMAT = "0"
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
CONTACT_WINDOW_DAYS = 366  # contacted_on must fall in [list date, list date + this]
ZIP_EPOCH = dt.date(1980, 1, 1)  # the earliest date a zip entry can carry
EXCEL_EPOCH = dt.date(1899, 12, 30)  # day 0 of Excel's 1900 date system (from 1900-03-01 on)

_HEADER = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="F2F2F2")
_INPUT_HEADER_FILL = PatternFill("solid", fgColor="FFE699")
_INPUT_FILL = PatternFill("solid", fgColor="FFF8E1")
_TOP = Alignment(vertical="top")
_WRAP = Alignment(vertical="top", wrap_text=True)


@dataclass(frozen=True)
class Column:
    """One column of a sheet: the field it shows (a contract header is its own header; any
    other's is translated from :data:`churnguard.labels.WORKBOOK_HEADERS`), the kind of cell
    it holds, its width, and whether text wraps."""

    key: str
    kind: str  # text | int | date | pct | money
    width: float
    wrap: bool = False

    def header(self, _: Callable[[str], str]) -> str:
        return self.key if self.key in CONTRACT_HEADERS else _(WORKBOOK_HEADERS[self.key])


LIST_COLUMNS = (
    Column("rank", "int", 6),
    Column(LIST_DATE, "date", 11),
    Column("due_date", "date", 11),
    Column(CUSTOMER_ID, "text", 14),
    Column("customer_name", "text", 28),
    Column("risk", "pct", 8),
    Column("risk_band", "text", 10),
    Column("value_at_risk", "money", 14),
    Column("expected_net_benefit", "money", 14),
    Column("action_label", "text", 20),
    Column("channel", "text", 10),
    Column("reasons", "text", 60, wrap=True),
    Column("last_purchase_date", "date", 12),
    Column("usual_gap_days", "int", 12),
    Column("change", "text", 12),
    Column(ACTION, "text", 18),
    Column(CONTACTED_ON, "date", 13),
    Column(OUTCOME, "text", 15),
    Column(NOTE, "text", 40, wrap=True),
)
ACTION_COLUMNS = (
    Column("label", "text", 22),
    Column(ACTION, "text", 20),
    Column("action_text", "text", 90, wrap=True),
    Column("channel", "text", 10),
    Column("cost", "money", 14),
    Column("save_rate", "pct", 12),
)
LEFT_COLUMNS = (
    Column(CUSTOMER_ID, "text", 14),
    Column("customer_name", "text", 28),
    Column("change", "text", 12),
    Column("last_purchase_date", "date", 12),
    Column("what_to_do", "text", 30),
)


def sheet_text(value: Any) -> str:
    """``value`` as text a workbook can hold: characters XML forbids become ``�`` and
    the length is capped at Excel's 32,767 characters per cell."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", str(value))[:MAX_CELL_CHARS]


def _date(x: Any) -> dt.date | None:
    if missing(x) or x == "":
        return None
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    return dt.date.fromisoformat(str(x)[:10])


def _number(x: Any) -> float | None:
    if missing(x) or x == "":
        return None
    return float(x)


def _set(cell: Cell, kind: str, value: Any, money_format: str) -> None:
    """Write ``value`` into ``cell`` typed as ``kind`` (empty cells keep the format, so
    what a manager types is read the same way)."""
    if kind == "text":
        cell.number_format = TEXT_FORMAT
        if not missing(value) and value != "":
            cell.value = sheet_text(value)
            cell.data_type = "s"  # never a formula ('f') or an error code ('e')
    elif kind == "date":
        cell.number_format = DATE_FORMAT
        cell.value = _date(value)
    else:
        number = _number(value)
        if kind == "int":
            cell.number_format = INT_FORMAT
            cell.value = None if number is None else int(round(number))
        else:
            cell.number_format = PCT_FORMAT if kind == "pct" else money_format
            cell.value = number


def money_format(currency: str) -> str:
    """Whole amounts with thousands separators, the currency (quoted text) before them."""
    return f'"{currency}" #,##0' if currency else "#,##0"


def _sheet(
    ws: Worksheet,
    columns: tuple[Column, ...],
    rows: list[dict[str, Any]],
    _: Callable[[str], str],
    money: str,
) -> None:
    """Header, typed rows, widths, frozen header, filter."""
    for j, col in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=j)
        _set(cell, "text", col.header(_), money)
        cell.font = _HEADER
        cell.fill = _INPUT_HEADER_FILL if col.key in MANAGER_INPUT else _HEADER_FILL
        cell.alignment = _WRAP
        ws.column_dimensions[get_column_letter(j)].width = col.width
    for i, row in enumerate(rows, start=2):
        for j, col in enumerate(columns, start=1):
            cell = ws.cell(row=i, column=j)
            _set(cell, col.kind, row.get(col.key), money)
            cell.alignment = _WRAP if col.wrap else _TOP
            if col.key in MANAGER_INPUT:
                cell.fill = _INPUT_FILL
    last = get_column_letter(len(columns))
    ws.auto_filter.ref = f"A1:{last}{len(rows) + 1}"
    ws.freeze_panes = "A2"
    ws.print_title_rows = "1:1"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _validations(ws: Worksheet, n: int, list_date: dt.date, _: Callable[[str], str]) -> None:
    """``contacted_on``: a date from the list date on; ``outcome``: one of OUTCOMES."""
    if n == 0:
        return
    where = {c.key: get_column_letter(j) for j, c in enumerate(LIST_COLUMNS, start=1)}
    first = (list_date - EXCEL_EPOCH).days  # a date validation compares serial day numbers
    last = first + CONTACT_WINDOW_DAYS
    text = {k: _(v) for k, v in WORKBOOK_TEXT.items()}
    contacted = DataValidation(
        type="date",
        operator="between",
        formula1=str(first),
        formula2=str(last),
        allow_blank=True,
        showErrorMessage=True,
        errorTitle=text["date_error_title"],
        error=text["date_error"],
        showInputMessage=True,
        promptTitle=text["date_prompt_title"],
        prompt=text["date_prompt"],
    )
    outcome = DataValidation(
        type="list",
        formula1='"' + ",".join(OUTCOMES) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle=text["outcome_error_title"],
        error=text["outcome_error"] % {"outcomes": ", ".join(OUTCOMES)},
        showInputMessage=True,
        promptTitle=text["outcome_prompt_title"],
        prompt=text["outcome_prompt"],
    )
    for validation, key in ((contacted, CONTACTED_ON), (outcome, OUTCOME)):
        ws.add_data_validation(validation)
        validation.add(f"{where[key]}2:{where[key]}{n + 1}")


def list_rows(
    frame: pd.DataFrame,
    list_date: dt.date,
    actions: dict[str, dict[str, Any]],
    language: str = "en",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``List`` rows (ranked customers, rank order) and the ``Left the list`` rows
    from a manager's list as written to their CSV; display columns (band, change, what to
    do) in ``language``, the contract columns as codes."""
    rank = pd.to_numeric(frame["rank"], errors="coerce") if "rank" in frame else pd.Series()
    on_list = rank.notna() & (rank > 0)
    ranked = frame[on_list].assign(_rank=rank[on_list]).sort_values("_rank", kind="stable")
    rows = []
    for r in ranked.to_dict("records"):
        rule = r.get(ACTION)
        pct = _number(r.get("churn_risk_pct"))
        rows.append(
            {
                **r,
                LIST_DATE: list_date,
                "risk": None if pct is None else round(pct / 100, 4),
                "risk_band": label("risk_band", r.get("risk_band"), language),
                "change": label("change", r.get("change"), language),
                "channel": label("channel", r.get("channel"), language),
                "action_label": (actions.get(str(rule)) or {}).get("label", rule),
            }
        )
    left = [
        {
            **r,
            "change": label("change", r.get("change"), language),
            "what_to_do": left_list_action(str(r.get("change")), language)
            if r.get("change") in ("recovered", "off list")
            else "",
        }
        for r in frame[~on_list].to_dict("records")
    ]
    return rows, left


@timed("write workbooks")
def manager_workbook(
    frame: pd.DataFrame,
    *,
    list_date: dt.date,
    manager: str,
    actions: dict[str, dict[str, Any]],
    currency: str = "",
    language: str = "en",
) -> bytes:
    """The ``.xlsx`` bytes of one manager's list (see the module docstring).

    ``frame`` is the manager's list as written to their CSV (ranked rows, then customers
    who left the list since last time with an empty rank); ``actions`` is
    :func:`churnguard.labels.action_catalogue` in ``language``. Headers (other than the
    contract's), prompts and display values are in ``language``; ar and fa sheets are
    right to left."""
    _ = translator(language).gettext
    money = money_format(currency)
    rows, left = list_rows(frame, list_date, actions, language)
    wb = Workbook()
    ws = wb.active
    ws.title = LIST_SHEET
    _sheet(ws, LIST_COLUMNS, rows, _, money)
    _validations(ws, len(rows), list_date, _)
    name_col = next(j for j, c in enumerate(LIST_COLUMNS, start=1) if c.key == "customer_name")
    ws.freeze_panes = f"{get_column_letter(name_col + 1)}2"  # header and who stay in view
    manual = [
        {
            **info,
            ACTION: name,
            "action_text": info["action"],
            "channel": label("channel", info["channel"], language),
        }
        for name, info in actions.items()
        if info.get("owner") == "account_manager"
    ]
    _sheet(wb.create_sheet(ACTIONS_SHEET), ACTION_COLUMNS, manual, _, money)
    if left:
        _sheet(wb.create_sheet(_(WORKBOOK_TEXT["left_sheet"])[:31]), LEFT_COLUMNS, left, _, money)
    if direction(language) == "rtl":
        for sheet in wb.worksheets:
            sheet.sheet_view.rightToLeft = True
    stamp = dt.datetime.combine(list_date, dt.time())
    wb.properties.creator = "churnguard"
    wb.properties.title = sheet_text(f"{manager} — {list_date.isoformat()}")
    wb.properties.created = wb.properties.modified = stamp
    return _deterministic_xlsx(wb, max(list_date, ZIP_EPOCH))


def _deterministic_xlsx(wb: Workbook, day: dt.date) -> bytes:
    """Save without openpyxl's "modified = now", then re-stamp every zip entry with ``day``
    (zip entries otherwise carry the time of writing)."""
    raw = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED)).save()  # closes it
    out = io.BytesIO()
    with (
        zipfile.ZipFile(raw) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            entry = zipfile.ZipInfo(
                info.filename, date_time=(day.year, day.month, day.day, 0, 0, 0)
            )
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 0
            entry.external_attr = 0
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()
