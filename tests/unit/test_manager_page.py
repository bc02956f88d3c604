"""One account manager's page: what to do first (in order, with due dates), what changed
since the last list, links to their files; names isolated, every amount in the currency."""

from __future__ import annotations

import datetime as dt
import gettext
import re
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest
from test_report import make_ctx
from test_workbook import ACTIONS, MIXED, manager_list

from churnguard.actions import due_dates
from churnguard.i18n import direction, translations
from churnguard.localfmt import LocalFormat
from churnguard.report import href, render_html, render_manager_html

MANAGER = 'Tom <b> & "Co"'


def manager_ctx(**kw: Any) -> dict[str, Any]:
    base = make_ctx()
    return {
        "as_of": "2025-06-30",
        "model": "models/ (version file, 1a2b3c4d)",
        "horizon_days": 90,
        "value_horizon_days": 365,
        "currency": "EUR",
        "summary": base["summary"]
        | {"warnings": ["Stale data: refresh it."], "data_freshness": {"last_transaction": "x"}},
        "actions": ACTIONS,
        "manager": MANAGER,
        "list": manager_list(),
        "automated": 41,
        "previous_list": "2025-06-23",
        "due_within_days": 7,
        "files": {
            "workbook": "Tom _b_-1a2b.xlsx",
            "csv": "Tom _b_-1a2b.csv",
            "summary": "../report.html",
        },
    } | kw


@pytest.fixture(scope="module")
def page() -> str:
    return render_manager_html(manager_ctx())


def section(page: str, heading: str) -> str:
    return page.split(heading, 1)[1].split("</section>", 1)[0]


class Tables(HTMLParser):
    """Every table as rows of cell texts (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


def test_do_these_first_lists_the_manual_actions_in_rank_order_with_due_dates(page):
    first = tables(section(page, "<h2>Do these first</h2>"))[0]
    assert first[0][:3] == ["#", "Due by", "Customer"]
    assert [r[0] for r in first[1:]] == ["1", "2", "3"]
    assert [r[1] for r in first[1:]] == ["2025-07-01", "2025-07-01", "2025-07-02"]
    assert [r[6] for r in first[1:]] == ["Personal call", "Winback call", "Personal call"]
    assert first[2][4] == "lapsed"  # no P(churn) for a lapsed customer
    assert "Zoë Back" not in section(page, "<h2>Do these first</h2>")


def test_changes_since_the_last_list_name_new_escalated_and_recovered(page):
    changes = section(page, "Since the last list (2025-06-23)")
    new = changes.split("New on your list (1)", 1)[1].split("</table>", 1)[0]
    assert "=1+1" in new
    escalated = changes.split("Risk went up (escalated) (1)", 1)[1].split("</table>", 1)[0]
    assert "Bell" in escalated
    recovered = changes.split("Bought again since the last list: thank them (1)", 1)[1]
    assert "Zoë Back" in recovered and "2025-06-28" in recovered


def test_first_list_says_changes_come_next_time():
    page = render_manager_html(manager_ctx(previous_list=None))
    assert "This is the first list" in page and "Bought again" not in page


def test_links_to_the_managers_own_files_are_relative_and_encoded(page):
    files = page.split('<p class="files">', 1)[1].split("</p>", 1)[0]
    hrefs = re.findall(r'href="([^"]+)"', files)
    assert hrefs == ["Tom%20_b_-1a2b.xlsx", "Tom%20_b_-1a2b.csv", "../report.html"]
    assert (
        href("مریم رضایی.xlsx") == "%D9%85%D8%B1%DB%8C%D9%85%20%D8%B1%D8%B6%D8%A7%DB%8C%DB%8C.xlsx"
    )
    assert href("A#1?.html") == "A%231%3F.html"


def test_manager_and_customer_names_are_escaped_and_isolated(page):
    assert MANAGER not in page and "Tom &lt;b&gt; &amp; &#34;Co&#34;" in page
    assert "<h1><bdi>Tom &lt;b&gt; &amp; &#34;Co&#34;</bdi>: your churn risk list" in page
    assert "&#34;http://evil.example&#34;" in page  # the hostile id, shown as text
    assert "<script" not in page.lower() and 'http://evil.example"' not in page


def test_a_name_mixing_arabic_latin_and_digits_stays_in_its_own_cell(page):
    # the whole name inside one <bdi> inside one <td>: its digits and Latin letters cannot
    # reorder with the neighbouring cells or the punctuation around it
    assert f"<td><bdi>{MIXED}</bdi></td>" in page
    row = next(r for r in tables(page)[0] if MIXED in r)
    assert row[2] == MIXED and row[3] == "007"


def test_warnings_and_model_line_are_on_the_managers_page_too(page):
    assert page.count('class="warn"') == 1 and "Stale data: refresh it." in page
    assert "churn = no purchase in the next 90 days" in page


def test_the_actions_used_are_explained(page):
    legend = tables(section(page, "<h2>What each action means</h2>"))[0]
    assert [r[0] for r in legend[1:]] == ["Personal call", "Winback call"]


def test_a_manager_without_manual_actions_gets_a_plain_page():
    empty = manager_list().iloc[3:]
    page = render_manager_html(manager_ctx(list=empty))
    assert "No customers for you to contact this week." in page
    assert "What each action means" not in page


MONEY_HEADERS = {"Value at risk", "Expected net benefit", "Net benefit"}


def money_cells(html: str) -> list[str]:
    cells = []
    for table in tables(html):
        header = table[0]
        for j, h in enumerate(header):
            if h in MONEY_HEADERS:
                cells += [row[j] for row in table[1:] if j < len(row)]
    return cells


@pytest.mark.parametrize(
    "render",
    [
        lambda: render_html(make_ctx()),
        lambda: render_manager_html(manager_ctx()),
    ],
    ids=["summary report", "manager page"],
)
def test_every_amount_shown_carries_the_currency(render):
    html = render()
    cells = money_cells(html)
    assert len(cells) >= 3
    assert all(c == "–" or c.startswith("€") for c in cells), cells
    cards = re.findall(r'<div class="v">([^<]*)</div><div class="k">([^<]*)</div>', html)
    money_cards = [v for v, k in cards if "value" in k.lower() or "benefit" in k.lower()]
    assert money_cards and all(v.startswith("€") for v in money_cards)
    bars = re.findall(r'<div class="n">([^<]*)</div>', html)
    assert all(b.startswith("€") for b in bars)


def test_summary_report_links_every_managers_page_workbook_and_csv():
    files = {
        "Sara": {
            "page": "by_manager/Sara.html",
            "workbook": "by_manager/Sara.xlsx",
            "csv": "by_manager/Sara.csv",
        },
        "رضا کریمی": {
            "page": "by_manager/رضا کریمی.html",
            "workbook": "by_manager/رضا کریمی.xlsx",
            "csv": "by_manager/رضا کریمی.csv",
        },
    }
    page = render_html(make_ctx() | {"manager_files": files})
    managers = section(page, "<h2>Account managers</h2>")
    assert '<a href="by_manager/Sara.html"><bdi>Sara</bdi></a>' in managers
    assert f'href="{href("by_manager/رضا کریمی.xlsx")}"' in managers
    rows = {r[0]: r for r in tables(managers)[0][1:]}
    # 3 manual actions, 1 new and 2 escalated among them (the fixture's Persian manager)
    assert rows["رضا کریمی"][1:4] == ["3", "1", "2"]
    assert rows["Tom <b>"][1] == "2"  # listed but without files: still a row


@pytest.mark.parametrize(
    ("n", "capacity", "expected_days"),
    [
        (25, 25, [1, 1, 1, 2, 2, 2, 2]),  # the first seven of 25: a full week's pace
        (3, 25, [1, 1, 1]),  # a short list is done at the same pace, not stretched
        (1, 1, [7]),  # one action a week: due by the end of the week
        (0, 25, []),
    ],
    ids=["a full list spreads over the week", "a short list starts at once", "one a week", "none"],
)
def test_due_dates_follow_rank_at_the_weekly_pace(n, capacity, expected_days):
    start = dt.date(2025, 6, 30)
    got = [(d - start).days for d in due_dates(n, start, 7, capacity)][: len(expected_days)]
    assert got == expected_days
    every = due_dates(n, start, 7, capacity)
    assert every == sorted(every) and all(1 <= (d - start).days <= 7 for d in every)


def test_local_format_is_the_one_place_numbers_become_text():
    fmt = LocalFormat(currency="SAR")
    assert fmt.money(1234567.4) == "SAR\xa01,234,567" and LocalFormat().money(12.5) == "12"
    assert fmt.pct(0.1234) == "12.3%" and fmt.pct100(81.25) == "81.2%"
    assert fmt.signed(-24.0, 1) == "-24.0" and fmt.int(None) == "–"
    assert fmt.money(float("nan")) == "–" and fmt.pct(pd.NA) == "–" and fmt.text(pd.NaT) == ""
    assert fmt.day("2025-06-30") == "2025-06-30"  # English pages keep ISO dates


def test_languages_have_a_catalogue_and_a_direction():
    assert [direction(x) for x in ("en", "ar", "fa")] == ["ltr", "rtl", "rtl"]
    assert translations("fa").gettext("Do these first") == "اول این‌ها"
    assert translations("en").gettext("Do these first") == "Do these first"
    with pytest.raises(ValueError, match="unknown language"):
        translations("de")


def test_right_to_left_language_sets_the_page_direction():
    page = render_manager_html(manager_ctx(language="fa"))
    assert page.startswith('<!DOCTYPE html>\n<html lang="fa" dir="rtl">')
    assert render_html(make_ctx()).startswith('<!DOCTYPE html>\n<html lang="en" dir="ltr">')


def test_managers_table_says_dash_for_changes_only_without_a_previous_list():
    files = {"Sara": {"page": "by_manager/Sara.html"}}
    first = render_html(make_ctx() | {"movers": None, "recovered": None, "manager_files": files})
    row = next(r for r in tables(section(first, "<h2>Account managers</h2>"))[0] if r[0] == "Sara")
    assert row[2:5] == ["–", "–", "–"]  # new, escalated, recovered: nothing to compare with
    later = render_html(
        make_ctx() | {"recovered": None, "manager_files": files, "summary": {"previous_list": "x"}}
    )
    row = next(r for r in tables(section(later, "<h2>Account managers</h2>"))[0] if r[0] == "Sara")
    assert row[4] == "0"  # compared, and nobody came back


class Marked(gettext.NullTranslations):
    """A stand-in catalogue that marks every message it translates: «…»."""

    def gettext(self, message: str) -> str:
        return f"«{message}»"

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return f"«{singular if n == 1 else plural}»"

    def pgettext(self, context: str, message: str) -> str:
        return f"«{message}»"


def test_a_catalogue_reaches_every_label_but_not_the_contract_or_the_data(monkeypatch):
    import io

    import openpyxl

    from churnguard import i18n, report
    from churnguard.workbook import CONTRACT_HEADERS, manager_workbook

    monkeypatch.setattr(i18n, "translations", lambda language: Marked())
    report.environment.cache_clear()
    try:
        page = render_manager_html(manager_ctx())
        data = manager_workbook(
            manager_list(), list_date=dt.date(2025, 6, 30), manager="S", actions=ACTIONS
        )
    finally:
        report.environment.cache_clear()
    assert "<h2>«Do these first»</h2>" in page and "«Why flagged»" in page
    assert "«escalated»" in page  # a change code, displayed through the catalogue
    assert "Zoë Back" in page and "«Zoë" not in page  # names are data
    wb = openpyxl.load_workbook(io.BytesIO(data))
    headers = [c.value for c in wb["List"][1]]
    assert [h for h in headers if h in CONTRACT_HEADERS] == list(CONTRACT_HEADERS)
    others = [h for h in headers if h not in CONTRACT_HEADERS]
    assert others and all(h.startswith("«") and h.endswith("»") for h in others)
    assert wb.sheetnames == ["List", "Actions", "«Left the list»"]  # contract sheet names kept
    rules = {dv.type: dv for dv in wb["List"].data_validations.dataValidation}
    assert rules["list"].error.startswith("«Pick one of:") and rules["date"].prompt.startswith("«")
    assert rules["list"].formula1 == '"reached,no answer,saved,declined,wrong contact"'
    values = [c.value for row in wb["List"].iter_rows(min_row=2) for c in row]
    assert "«new»" in values and "007" in values  # codes displayed translated; ids untouched


def test_the_population_value_line_is_on_the_summary_only_and_the_not_money_warning_on_both():
    value = {
        "value_at_risk_total": 629135.0,
        "value_horizon_days": 365,
        "revenue_trailing_12m": 971174.0,
        "money": True,
    }
    summary = make_ctx()["summary"] | {"value": value}
    report = render_html(make_ctx() | {"summary": summary})
    page = render_manager_html(manager_ctx(summary=summary))
    assert "these customers spent in the last 12 months" in report
    assert "€629,135" in report and "€971,174" in report
    # a manager's page shows their own value at risk in its cards, not everyone's
    assert "these customers spent" not in page and "629,135" not in page
    note = "Values are not money: every line had the same amount."
    not_money = summary | {"value": value | {"money": False, "note": note}}
    for html in (
        render_html(make_ctx() | {"summary": not_money}),
        render_manager_html(manager_ctx(summary=not_money)),
    ):
        assert note in html
