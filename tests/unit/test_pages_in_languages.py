"""Who reads what, as they read it: the report and a manager's page render in English,
Arabic and Persian (lang/dir, translated headings, names in <bdi>, money in the locale's
currency format, Solar Hijri dates on Persian pages, warnings in the page's language);
the workbook's headers are translated and its sheets right to left, while the contract
headers and the cells tools read back stay as they are."""

from __future__ import annotations

import datetime as dt
import io
import re

import openpyxl
import pytest
from test_manager_page import manager_ctx
from test_report import make_ctx
from test_workbook import ACTIONS, manager_list

from churnguard.i18n import OUTCOMES, Notice, notice_codes
from churnguard.report import render_html, render_manager_html
from churnguard.workbook import CONTRACT_HEADERS, manager_workbook

HEADINGS = {"en": "Do these first", "ar": "ابدأ بهؤلاء", "fa": "اول این‌ها"}
KEY_FIGURES = {"en": "Key figures", "ar": "أهم الأرقام", "fa": "ارقام کلیدی"}


@pytest.mark.parametrize(
    ("lang", "direction"), [("en", "ltr"), ("ar", "rtl"), ("fa", "rtl")], ids=["en", "ar", "fa"]
)
def test_the_summary_report_is_in_its_language_and_direction(lang, direction):
    page = render_html(make_ctx() | {"language": lang, "currency": "SAR"})
    assert page.startswith(f'<!DOCTYPE html>\n<html lang="{lang}" dir="{direction}">')
    assert f"<h2>{KEY_FIGURES[lang]}</h2>" in page
    assert "<bdi>Zoë Back</bdi>" in page  # a Latin name keeps its own direction
    money = {"en": "SAR\xa0", "ar": "\xa0ر.س.", "fa": "SAR\xa0"}[lang]
    assert money in page


def test_a_manager_page_in_arabic_uses_arabic_words_dates_and_money():
    page = render_manager_html(manager_ctx(language="ar", currency="SAR"))
    assert '<html lang="ar" dir="rtl">' in page
    assert f"<h2>{HEADINGS['ar']}</h2>" in page
    assert "30 يونيو 2025" in page  # the as-of date, month named
    assert re.search(r"‏2,213\xa0ر\.س\.‏", page)  # value at risk 2212.72, the locale's pattern
    assert "<bdi>Zoë Back</bdi>" in page
    assert "Do these first" not in page


def test_a_persian_page_can_use_the_solar_hijri_calendar_and_native_digits():
    ctx = manager_ctx(language="fa", currency="IRR", calendar="persian", native_digits=True)
    page = render_manager_html(ctx)
    assert '<html lang="fa" dir="rtl">' in page and f"<h2>{HEADINGS['fa']}</h2>" in page
    assert "۹ تیر ۱۴۰۴" in page  # 2025-06-30 in the Solar Hijri calendar, Persian digits
    assert "ریال" in page and "۲٬۲۱۳" in page
    gregorian = render_manager_html(manager_ctx(language="fa", currency="IRR"))
    assert "30 ژوئن 2025" in gregorian and "تیر" not in gregorian


def test_english_pages_keep_iso_dates_and_english_words():
    page = render_manager_html(manager_ctx())
    assert "week of 2025-06-30" in page and "<h2>Do these first</h2>" in page
    assert "2025-07-01" in page  # due dates


def test_warnings_with_a_code_are_said_in_the_page_language_and_summary_keeps_english():
    notice = Notice("band_share", share=0.91, band="high", limit=0.8)
    assert notice == (
        "91% of the active customers scored are in the 'high' band (score.warn_band_share is "
        "80%): the scores barely separate customers. Check the model quality above and "
        "score.risk_bands."
    )
    summary = make_ctx()["summary"] | {
        "warnings": [notice, "A warning without a code."],
        "warning_codes": notice_codes([notice, "A warning without a code."]),
    }
    assert summary["warning_codes"][1] is None
    fa = render_html(make_ctx() | {"language": "fa", "summary": summary})
    assert "۹۱" not in fa and "91% از مشتریان فعالِ امتیازدهی‌شده در سطح «بالا»" in fa
    assert "A warning without a code." in fa  # no code: shown as written
    en = render_html(make_ctx() | {"summary": summary})
    assert "91% of the active customers scored are in the &#39;high&#39; band" in en


def test_every_warning_score_writes_has_a_code():
    quality_texts = [
        Notice("not_evaluated", label="LightGBM model"),
        Notice("data_too_old", days=120, as_of=dt.date(2025, 6, 30), last=dt.date(2025, 3, 2),
               horizon=90, last_iso=dt.date(2025, 3, 2)),
    ]  # fmt: skip
    assert "score at --as-of 2025-03-02." in quality_texts[1]
    assert [c["code"] for c in notice_codes(quality_texts)] == ["not_evaluated", "data_too_old"]
    assert quality_texts[1].params["as_of"] == "2025-06-30"  # JSON-ready


def workbook(language: str) -> openpyxl.Workbook:
    data = manager_workbook(
        manager_list(),
        list_date=dt.date(2025, 6, 30),
        manager="مریم رضایی",
        actions=ACTIONS,
        currency="IRR",
        language=language,
    )
    return openpyxl.load_workbook(io.BytesIO(data))


def test_a_persian_workbook_is_right_to_left_with_persian_headers_and_the_contract_kept():
    wb, en = workbook("fa"), workbook("en")
    headers = [c.value for c in wb["List"][1]]
    assert [h for h in headers if h in CONTRACT_HEADERS] == list(CONTRACT_HEADERS)
    assert "مشتری" in headers and "دلیل" in headers and "Customer" not in headers
    assert wb.sheetnames == ["List", "Actions", "خارج‌شده از فهرست"]
    assert all(ws.sheet_view.rightToLeft for ws in wb.worksheets)
    assert not any(ws.sheet_view.rightToLeft for ws in en.worksheets)
    # the cells tools read back are the same whatever the language
    contract = [headers.index(h) for h in CONTRACT_HEADERS]
    en_headers = [c.value for c in en["List"][1]]
    en_contract = [en_headers.index(h) for h in CONTRACT_HEADERS]
    for fa_row, en_row in zip(wb["List"].iter_rows(min_row=2, values_only=True),
                              en["List"].iter_rows(min_row=2, values_only=True), strict=True):  # fmt: skip
        assert [fa_row[i] for i in contract] == [en_row[i] for i in en_contract]
    rules = {dv.type: dv for dv in wb["List"].data_validations.dataValidation}
    assert rules["list"].formula1 == '"' + ",".join(OUTCOMES) + '"'  # codes, read back
    bands = {
        r[headers.index("سطح ریسک")] for r in wb["List"].iter_rows(min_row=2, values_only=True)
    }
    assert "بالا" in bands and "high" not in bands
