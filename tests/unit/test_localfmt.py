"""Local formats: exact strings for numbers, money, percentages and dates in en, ar and fa,
native digits, the Solar Hijri calendar, and the fast number path against Babel itself."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest
from babel.numbers import format_decimal as babel_decimal
from babel.numbers import format_percent as babel_percent

from churnguard.localfmt import (
    LocalFormat,
    format_date,
    format_money,
    format_month,
    format_number,
    format_percent,
    to_native_digits,
)

LRM, RLM, ALM, NBSP = "\u200e", "\u200f", "\u061c", "\xa0"
JUNE_3 = dt.date(2024, 6, 3)


@pytest.mark.parametrize(
    ("x", "language", "native", "group", "expected"),
    [
        (1234567.5, "en", False, True, "1,234,568"),
        (6798.4, "en", False, True, "6,798"),
        (1134, "en", False, False, "1134"),
        (-1234.4, "en", False, True, "-1,234"),
        (-0.3, "en", False, True, "0"),
        (1234567.5, "ar", False, True, "1,234,568"),
        (1234567.5, "ar", True, True, "١٬٢٣٤٬٥٦٨"),
        (-1234.4, "ar", False, True, f"{LRM}-1,234"),
        (-1234.4, "ar", True, True, f"{ALM}-١٬٢٣٤"),
        (1234567.5, "fa", False, True, "1,234,568"),
        (1234567.5, "fa", True, True, "۱٬۲۳۴٬۵۶۸"),
        (1134, "fa", True, False, "۱۱۳۴"),
        (-1234.4, "fa", True, True, f"{LRM}−۱٬۲۳۴"),
        (0, "fa", True, True, "۰"),
    ],
    ids=lambda v: repr(v),
)
def test_whole_numbers_use_the_locale_separators_and_digits(x, language, native, group, expected):
    assert format_number(x, language, native=native, group=group) == expected


def test_decimals_round_as_python_formats_them():
    assert format_number(2.675, "en", digits=2) == f"{2.675:.2f}" == "2.67"
    assert format_number(2.5, "en") == "2" and format_number(3.5, "en") == "4"
    assert format_number(1234.56, "fa", digits=1, native=True) == "۱٬۲۳۴٫۶"
    assert format_number(1234.56, "ar", digits=1, native=True) == "١٬٢٣٤٫٦"
    assert format_number(1234.56, "ar", digits=1) == "1,234.6"


@pytest.mark.parametrize("language", ["en", "ar", "fa"])
@pytest.mark.parametrize("native", [False, True], ids=["latin digits", "native digits"])
def test_the_fast_number_path_writes_what_babel_writes(language, native):
    """format_number lays out digits itself (Babel costs ~20 µs a number); it must agree
    with Babel's format_decimal, up to the symbols Babel leaves as ASCII."""
    system = {"en": "latn", "ar": "arab", "fa": "arabext"}[language] if native else "latn"
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.uniform(-1e7, 1e7, 400), rng.integers(-5000, 5000, 200) + 0.5, [0.0, 999.5, 1e12]]
    )
    to_ascii = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹−", "01234567890123456789-", f"{LRM}{ALM}")
    for digits in (0, 1, 2):
        for group in (True, False):
            pattern = ("#,##0" if group else "0") + ("." + "0" * digits if digits else "")
            for x in values:
                ours = format_number(x, language, digits=digits, native=native, group=group)
                rounded = Decimal(f"{x:.{digits}f}")
                theirs = babel_decimal(
                    abs(rounded) if rounded == 0 else rounded,
                    pattern,
                    locale=language,
                    numbering_system=system,
                )
                assert ours.translate(to_ascii) == theirs, (x, digits, group)


@pytest.mark.parametrize(
    ("p", "language", "native", "expected"),
    [
        (0.125, "en", False, "12.5%"),
        (0.125, "ar", False, f"12.5{LRM}%{LRM}"),
        (0.125, "ar", True, f"١٢٫٥٪{ALM}"),
        (0.125, "fa", False, "12.5%"),
        (0.125, "fa", True, "۱۲٫۵٪"),
        (-0.051, "en", False, "-5.1%"),
        (-0.051, "fa", True, f"{LRM}−۵٫۱٪"),
    ],
    ids=lambda v: repr(v),
)
def test_percentages(p, language, native, expected):
    assert format_percent(p, language, digits=1, native=native) == expected


def test_percentages_agree_with_babel_and_can_drop_grouping():
    for language in ("en", "ar", "fa"):
        for p in (0.0, 0.004, 0.5, 0.999, 12.34, 123.456):
            ours = format_percent(p, language).replace(LRM, "")
            assert ours == babel_percent(p, locale=language).replace(LRM, "")
    assert format_percent(12.34, "en") == "1,234%"
    assert format_percent(12.34, "en", group=False) == "1234%"
    # a Decimal share is scaled exactly: 15.5% rounds to even (16), a float 0.155 would not
    assert format_percent(Decimal(155) / 1000, "en") == "16%"
    assert format_percent(Decimal(145) / 1000, "en") == "14%"


@pytest.mark.parametrize(
    ("x", "language", "currency", "native", "expected"),
    [
        (1234.5, "en", "EUR", False, "€1,234"),
        (1234.6, "en", "USD", False, "$1,235"),
        (-99.5, "en", "EUR", False, "-€100"),
        (1234.5, "ar", "SAR", False, f"{RLM}1,234{NBSP}ر.س.{RLM}"),
        (1234.5, "ar", "SAR", True, f"{RLM}١٬٢٣٤{NBSP}ر.س.{RLM}"),
        (1234.5, "fa", "IRR", False, f"{LRM}ریال{NBSP}1,234"),
        (1234.5, "fa", "IRR", True, f"{LRM}ریال{NBSP}۱٬۲۳۴"),
        (1234.5, "fa", "EUR", True, f"{LRM}€{NBSP}۱٬۲۳۴"),
        (1234.5, "fa", "", True, "۱٬۲۳۴"),
        (1234.5, "en", "", False, "1,234"),
    ],
    ids=lambda v: repr(v),
)
def test_money_in_the_locale_currency_pattern(x, language, currency, native, expected):
    assert format_money(x, language, currency, native=native) == expected


def test_money_with_cents():
    assert format_money(1234.567, "en", "EUR", digits=2) == "€1,234.57"
    assert format_money(1234.567, "fa", "EUR", digits=2, native=True) == f"{LRM}€{NBSP}۱٬۲۳۴٫۵۷"


@pytest.mark.parametrize(
    ("language", "calendar", "native", "style", "expected"),
    [
        ("en", "gregorian", False, "medium", "Jun 3, 2024"),
        ("en", "gregorian", False, "long", "June 3, 2024"),
        ("ar", "gregorian", False, "long", "3 يونيو 2024"),
        ("ar", "gregorian", True, "long", "٣ يونيو ٢٠٢٤"),
        ("fa", "gregorian", False, "medium", "3 ژوئن 2024"),
        ("fa", "persian", False, "medium", "14 خرداد 1403"),
        ("fa", "persian", True, "medium", "۱۴ خرداد ۱۴۰۳"),
        ("fa", "persian", False, "short", "1403/03/14"),
        ("fa", "persian", True, "long", "دوشنبه ۱۴ خرداد ۱۴۰۳"),
        # the Solar Hijri calendar is for Persian texts: an Arabic reader keeps Gregorian
        ("ar", "persian", False, "long", "3 يونيو 2024"),
    ],
    ids=lambda v: repr(v),
)
def test_dates(language, calendar, native, style, expected):
    assert format_date(JUNE_3, language, calendar=calendar, native=native, style=style) == expected


def test_solar_hijri_new_year_falls_on_nowruz():
    assert format_date(dt.date(2025, 3, 20), "fa", calendar="persian") == "30 اسفند 1403"
    assert format_date(dt.date(2025, 3, 21), "fa", calendar="persian") == "1 فروردین 1404"


def test_months_label_gregorian_periods():
    assert format_month(JUNE_3, "en") == "Jun 2024"
    assert format_month(JUNE_3, "ar") == "يونيو 2024"
    assert format_month(JUNE_3, "fa", native=True) == "ژوئن ۲۰۲۴"


def test_native_digits_only_touch_digits():
    assert to_native_digits("C0012 in 90 days", "fa") == "C۰۰۱۲ in ۹۰ days"
    assert to_native_digits("90", "ar") == "٩٠"
    assert to_native_digits("90", "en") == "90"


def test_a_reader_format_shows_a_dash_for_missing_values():
    fmt = LocalFormat(language="fa", currency="IRR", calendar="persian", native_digits=True)
    for missing in (None, math.nan, float("nan")):
        assert fmt.money(missing) == fmt.int(missing) == fmt.pct(missing) == "–"
    assert fmt.date("") == "–"
    assert fmt.date("2024-06-03") == "۱۴ خرداد ۱۴۰۳"
    assert fmt.pct(0.935) == "۹۳٫۵٪"
    assert fmt.number(float("inf")) == "–"
    assert fmt.digits("90 روز") == "۹۰ روز"
    assert LocalFormat().digits("90 days") == "90 days"
