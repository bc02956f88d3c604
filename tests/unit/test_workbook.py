"""A manager's workbook: the contract the outcome import reads, typed cells, no formula that
can run, right-to-left sheets, and the same bytes for the same list."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import openpyxl
import pandas as pd
import pytest

from churnguard.config import ActionRule, OverflowAction
from churnguard.i18n import OUTCOMES
from churnguard.labels import action_catalogue
from churnguard.workbook import (
    ACTIONS_SHEET,
    CONTRACT_HEADERS,
    LIST_SHEET,
    manager_workbook,
    sheet_text,
)

LIST_DATE = dt.date(2025, 6, 30)
PLAYBOOK = [
    ActionRule(
        name="personal_call",
        label="Personal call",
        action="Personal call from your account manager: ask what is not working",
        channel="phone",
        owner="account_manager",
        cost=20,
        save_rate=0.3,
    ),
    ActionRule(
        name="winback_call",
        action="Call: ask why they stopped buying",
        channel="phone",
        owner="account_manager",
        cost=15,
        save_rate=0.1,
    ),
    ActionRule(
        name="reminder",
        action="Reminder email",
        channel="email",
        owner="automated",
        cost=0.5,
        save_rate=0.04,
    ),
]
ACTIONS = action_catalogue(PLAYBOOK, OverflowAction())
HOSTILE_ID = '=HYPERLINK("http://evil.example","click")'
MIXED = "شركة ABC 2024 للتجارة"


def manager_list() -> pd.DataFrame:
    """A manager's list as score writes it to their CSV: ranked rows, then a customer who
    left the list (empty rank)."""
    # fmt: off
    rows = [
        (1, HOSTILE_ID, "=1+1", 93.5, "high", 2212.72, 643.82, "personal_call", "2025-07-01",
         "phone", "No order for 204 days", "2024-12-08", 32, "new"),
        (2, "007", MIXED, None, "lapsed", None, 120.0, "winback_call", "2025-07-01",
         "phone", "#N/A", "2023-05-01", None, "first list"),
        (3, "C3", "Bell\x07Co\x1b", 61.0, "high", 980.0, 150.5, "personal_call", "2025-07-02",
         "phone", "@SUM(A1)", "2025-04-01", 14, "escalated"),
        (None, "C9", "Zoë Back", None, None, None, None, None, None,
         None, None, "2025-06-28", None, "recovered"),
    ]
    # fmt: on
    cols = [
        "rank",
        "customer_id",
        "customer_name",
        "churn_risk_pct",
        "risk_band",
        "value_at_risk",
        "expected_net_benefit",
        "action",
        "due_date",
        "channel",
        "reasons",
        "last_purchase_date",
        "usual_gap_days",
        "change",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols).astype(object)
    frame["usual_gap_days"] = pd.array([32, None, 14, None], dtype="Int64")
    return frame


def build(**kw) -> bytes:
    args = {"list_date": LIST_DATE, "manager": "Sara", "actions": ACTIONS, "currency": "EUR"}
    return manager_workbook(manager_list(), **(args | kw))


@pytest.fixture(scope="module")
def book() -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(build()))


def column(ws, header: str) -> list:
    headers = [c.value for c in ws[1]]
    j = headers.index(header) + 1
    return [ws.cell(row=i, column=j) for i in range(2, ws.max_row + 1)]


def test_first_sheet_is_the_list_with_the_contract_headers_in_place(book):
    assert book.sheetnames[:2] == [LIST_SHEET, ACTIONS_SHEET]
    headers = [c.value for c in book.worksheets[0][1]]
    assert set(CONTRACT_HEADERS) <= set(headers)
    assert headers[-3:] == ["contacted_on", "outcome", "note"]  # the manager's columns, last
    assert headers.index("list_date") < headers.index("action") < headers.index("contacted_on")


def test_one_row_per_listed_customer_in_rank_order(book):
    ws = book[LIST_SHEET]
    assert ws.max_row == 1 + 3  # the customer who left the list is not a row to work
    assert [c.value for c in column(ws, "customer_id")] == [HOSTILE_ID, "007", "C3"]
    assert [c.value for c in column(ws, "Rank")] == [1, 2, 3]
    assert [c.value for c in column(ws, "action")] == [
        "personal_call",
        "winback_call",
        "personal_call",
    ]


def test_list_date_is_a_date_cell_equal_in_every_row(book):
    cells = column(book[LIST_SHEET], "list_date")
    assert {c.data_type for c in cells} == {"d"}
    assert {c.value.date() for c in cells} == {LIST_DATE}
    assert {c.number_format for c in cells} == {"yyyy-mm-dd"}


@pytest.mark.parametrize(
    ("header", "data_type", "number_format", "first"),
    [
        ("Rank", "n", "0", 1),
        ("Due by", "d", "yyyy-mm-dd", dt.datetime(2025, 7, 1)),
        ("Risk", "n", "0.0%", 0.935),
        ("Value at risk", "n", '"EUR" #,##0', 2212.72),
        ("Expected net benefit", "n", '"EUR" #,##0', 643.82),
        ("Last purchase", "d", "yyyy-mm-dd", dt.datetime(2024, 12, 8)),
        ("Usually orders every (days)", "n", "0", 32),
        ("Action", "s", "@", "Personal call"),
        ("Change", "s", "@", "new"),
    ],
    ids=lambda v: str(v),
)
def test_numbers_dates_and_percentages_are_typed_and_formatted(
    book, header, data_type, number_format, first
):
    cell = column(book[LIST_SHEET], header)[0]
    assert (cell.data_type, cell.number_format, cell.value) == (data_type, number_format, first)


def test_a_lapsed_customer_has_empty_risk_and_value_cells_not_text(book):
    ws = book[LIST_SHEET]
    risk, value = column(ws, "Risk")[1], column(ws, "Value at risk")[1]
    assert risk.value is None and value.value is None
    assert column(ws, "Risk band")[1].value == "lapsed"


def test_no_cell_in_any_sheet_is_a_formula_even_when_text_looks_like_one(book):
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type in ("f", "e")]
    ws = book[LIST_SHEET]
    assert column(ws, "customer_id")[0].value == HOSTILE_ID  # shown exactly, as text
    assert column(ws, "Customer")[0].value == "=1+1"
    assert [c.value for c in column(ws, "Why flagged")][1:] == ["#N/A", "@SUM(A1)"]


def test_every_text_cell_is_a_string_formatted_as_text(book):
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str):
                    assert (c.data_type, c.number_format) == ("s", "@"), (ws.title, c.coordinate)


def test_raw_xml_holds_no_formula_element():
    with zipfile.ZipFile(io.BytesIO(build())) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and all(b"<f>" not in z.read(n) and b"<f " not in z.read(n) for n in sheets)


def test_characters_a_workbook_cannot_hold_are_replaced_not_fatal(book):
    assert column(book[LIST_SHEET], "Customer")[2].value == "Bell\ufffdCo\ufffd"
    assert sheet_text("tab\tand\nline") == "tab\tand\nline"  # allowed characters stay
    assert len(sheet_text("x" * 40_000)) == 32_767


def test_mixed_script_name_is_kept_exactly(book):
    assert column(book[LIST_SHEET], "Customer")[1].value == MIXED


def test_manager_columns_are_empty_with_date_and_drop_down_validation(book):
    ws = book[LIST_SHEET]
    for header in ("contacted_on", "outcome", "note"):
        assert all(c.value is None for c in column(ws, header))
    assert {c.number_format for c in column(ws, "contacted_on")} == {"yyyy-mm-dd"}
    assert {c.number_format for c in column(ws, "note")} == {"@"}  # typed notes stay text
    rules = {dv.type: dv for dv in ws.data_validations.dataValidation}
    assert str(rules["date"].sqref) == "Q2:Q4" and str(rules["list"].sqref) == "R2:R4"
    serial = (LIST_DATE - dt.date(1899, 12, 30)).days
    assert (rules["date"].operator, rules["date"].formula1) == ("between", str(serial))
    assert rules["list"].formula1 == '"' + ",".join(OUTCOMES) + '"'
    assert OUTCOMES == ("reached", "no answer", "saved", "declined", "wrong contact")
    assert all(dv.showErrorMessage for dv in rules.values())


def test_header_frozen_filter_on_widths_set(book):
    ws = book[LIST_SHEET]
    assert ws.freeze_panes == "F2"  # the header row and the columns up to the name
    assert ws.auto_filter.ref == "A1:S4"
    assert all(ws.column_dimensions[c].width >= 6 for c in "ABCDEFGHIJKLMNOPQRS")
    assert book[ACTIONS_SHEET].freeze_panes == "A2"


def test_actions_sheet_maps_each_short_label_to_its_full_wording(book):
    rows = list(book[ACTIONS_SHEET].iter_rows(values_only=True))
    assert rows[0][:3] == ("Action", "action", "What to do")
    mapping = {r[0]: (r[1], r[2]) for r in rows[1:]}
    assert mapping == {
        "Personal call": ("personal_call", PLAYBOOK[0].action),
        "Winback call": ("winback_call", PLAYBOOK[1].action),  # no label: the name, humanised
    }
    labels = {c.value for c in column(book[LIST_SHEET], "Action")}
    assert labels <= set(mapping)  # every label in the list is explained


def test_customers_who_left_the_list_are_on_a_sheet_of_their_own(book):
    rows = list(book.worksheets[2].iter_rows(values_only=True))
    assert rows[1][:3] == ("C9", "Zoë Back", "recovered")
    assert rows[1][4] == "Bought again: thank them"


@pytest.mark.parametrize(
    ("language", "rtl"),
    [("en", False), ("ar", True), ("fa", True)],
    ids=["English reads left to right", "Arabic right to left", "Persian right to left"],
)
def test_sheets_are_right_to_left_for_right_to_left_languages(language, rtl):
    wb = openpyxl.load_workbook(io.BytesIO(build(language=language)))
    assert all(bool(ws.sheet_view.rightToLeft) is rtl for ws in wb.worksheets)


def test_same_list_gives_the_same_bytes_dated_on_the_list_date():
    first = build()
    assert build() == first
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        assert {i.date_time for i in z.infolist()} == {(2025, 6, 30, 0, 0, 0)}
        core = z.read("docProps/core.xml").decode()
    assert core.count("2025-06-30T00:00:00Z") == 2  # created and modified
    assert build(list_date=dt.date(2025, 7, 7)) != first


def test_no_currency_means_plain_amounts():
    wb = openpyxl.load_workbook(io.BytesIO(build(currency="")))
    assert column(wb[LIST_SHEET], "Value at risk")[0].number_format == "#,##0"


def test_an_empty_list_is_a_header_only_sheet_without_validation():
    empty = manager_list().iloc[3:]  # only the customer who left
    data = manager_workbook(empty, list_date=LIST_DATE, manager="Sara", actions=ACTIONS)
    ws = openpyxl.load_workbook(io.BytesIO(data))[LIST_SHEET]
    assert ws.max_row == 1 and not ws.data_validations.dataValidation
    assert [c.value for c in ws[1]][-3:] == ["contacted_on", "outcome", "note"]
