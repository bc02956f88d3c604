"""Numbers, money, percentages and dates as a manager reads them, in their own language.

Pure formatting through Babel (CLDR data): the locale's decimal and group separators, its
currency pattern and symbol, its month names. Two options Babel does not cover on its own:

- **native digits** (``native=True``): Arabic-Indic digits for ``ar`` (``٠١٢…``) and Extended
  Arabic-Indic for ``fa`` (``۰۱۲…``), with that numbering system's separators and signs
  (CLDR's ``arab`` / ``arabext`` symbols; Babel 2.19 picks the separators but still writes
  Latin digits and an ASCII ``%`` and ``-``, so they are replaced here);
- the **Solar Hijri calendar** for Persian dates (``calendar="persian"``, via jdatetime).

Right-to-left texts get CLDR's own bidi marks around signs (e.g. U+200E before a minus in
``fa``), so a negative amount does not show its minus on the wrong side. English output is
plain ASCII apart from the currency symbol (en's symbols are ``%`` and ``-``). Files that tools read back (CSV lists, ledgers)
never use these functions: they keep plain numbers and ISO dates.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from babel import Locale
from babel.dates import format_date as _babel_date
from babel.dates import format_skeleton
from babel.numbers import NumberPattern, get_currency_symbol

Calendar = Literal["gregorian", "persian"]
DateStyle = Literal["short", "medium", "long"]

# the numbering system of each language's own digits
NATIVE_NUMBERING = {"ar": "arab", "fa": "arabext"}
DIGITS = {"arab": "٠١٢٣٤٥٦٧٨٩", "arabext": "۰۱۲۳۴۵۶۷۸۹"}
DASH = "–"


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def numbering_system(language: str, native: bool) -> str:
    """``latn`` (0–9), or the language's own digits when ``native`` (``en`` has none)."""
    return NATIVE_NUMBERING.get(language, "latn") if native else "latn"


def to_native_digits(text: str, language: str) -> str:
    """``text`` with 0–9 written in ``language``'s own digits (unchanged for ``en``)."""
    system = NATIVE_NUMBERING.get(language)
    if system is None:
        return text
    return text.translate(str.maketrans("0123456789", DIGITS[system]))


@cache
def _symbols(language: str, system: str) -> dict[str, str]:
    """CLDR's number symbols of ``language`` in numbering ``system`` (via Babel)."""
    return dict(_locale(language).number_symbols[system])


def _signs(text: str, language: str, system: str) -> str:
    """Babel's ASCII ``%`` and ``-`` as the locale writes them in ``system`` (RTL locales
    carry bidi marks in these symbols), and native digits for a native system. In CLDR
    patterns ``%`` and ``-`` stand for these symbols; Babel writes them as they are."""
    symbols = _symbols(language, system)
    text = text.replace("%", symbols["percentSign"]).replace("-", symbols["minusSign"])
    return to_native_digits(text, language) if system in DIGITS else text


@cache
def _separators(language: str, system: str) -> dict[int, str]:
    symbols = _symbols(language, system)
    table = {ord(","): symbols["group"], ord("."): symbols["decimal"]}
    if system in DIGITS:
        table.update(zip(map(ord, "0123456789"), DIGITS[system], strict=True))
    return table


def _unsigned(
    x: float | Decimal, digits: int, group: bool, language: str, system: str
) -> tuple[str, bool]:
    """``|x|`` with ``digits`` decimals in the locale's separators and digits, and whether
    it is negative (a value that rounds to zero is not: never "-0").

    Babel's own ``format_decimal`` gives the same text (a test checks it on thousands of
    values in every language) but costs about 20 µs a number; reasons format a few numbers
    for each of up to 100,000 customers, so the digits are laid out here from Python's
    correctly rounded ``format`` and only the symbols come from CLDR."""
    text = format(x, f"{',' if group else ''}.{digits}f")
    negative = text.startswith("-")
    if negative:
        text = text[1:]
        negative = any(c not in "0.," for c in text)
    return text.translate(_separators(language, system)), negative


def format_number(
    x: float, language: str, *, digits: int = 0, native: bool = False, group: bool = True
) -> str:
    """``x`` with ``digits`` decimals (rounded like ``f"{x:,.{digits}f}"``), the locale's
    separators (``group=False``: none between thousands) and minus sign."""
    system = numbering_system(language, native)
    text, negative = _unsigned(float(x), digits, group, language, system)
    return _symbols(language, system)["minusSign"] + text if negative else text


@cache
def _percent_affixes(language: str, system: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The locale's percent pattern around the number: (prefix, suffix) for a positive and
    a negative value, with CLDR's symbols in place of ``%`` and ``-``."""
    pattern = _locale(language).percent_formats[None]
    return (
        (_signs(pattern.prefix[0], language, system), _signs(pattern.suffix[0], language, system)),
        (_signs(pattern.prefix[1], language, system), _signs(pattern.suffix[1], language, system)),
    )


def format_percent(
    p: float | Decimal,
    language: str,
    *,
    digits: int = 0,
    native: bool = False,
    group: bool = True,
) -> str:
    """A share (0.125) as a percentage (``12%``; ``12.5%`` with ``digits=1``), placed and
    signed as the locale's percent pattern says. A :class:`~decimal.Decimal` share is
    scaled exactly (``Decimal(155) / 1000`` is 15.5%, which a float 0.155 is not quite)."""
    scaled = p * 100 if isinstance(p, Decimal) else float(p) * 100
    return format_percent_value(scaled, language, digits=digits, native=native, group=group)


def format_percent_value(
    x: float | Decimal,
    language: str,
    *,
    digits: int = 0,
    native: bool = False,
    group: bool = True,
) -> str:
    """A value already in percent (``12.5``) with the locale's percent pattern (``12.5%``):
    rounded as ``f"{x:.{digits}f}"`` rounds it, with no scaling on the way."""
    system = numbering_system(language, native)
    text, negative = _unsigned(x, digits, group, language, system)
    prefix, suffix = _percent_affixes(language, system)[negative]
    return prefix + text + suffix


def _decimal(x: float, digits: int) -> Decimal:
    """``x`` rounded as ``f"{x:.{digits}f}"`` rounds it (exact binary value, ties to even),
    as a Decimal that Babel then prints without rounding again; never -0."""
    value = Decimal(f"{x:.{digits}f}")
    return abs(value) if value == 0 else value


def format_money(
    x: float, language: str, currency: str = "", *, digits: int = 0, native: bool = False
) -> str:
    """An amount with ``digits`` decimals; with an ISO 4217 ``currency``, in the locale's
    currency pattern and symbol (``€1,235``, ``‏1,235 ر.س.``); without one, a plain number."""
    if not currency:
        return format_number(x, language, digits=digits, native=native)
    system = numbering_system(language, native)
    locale = _locale(language)
    pattern: NumberPattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    value = _decimal(float(x), digits)
    text = pattern.apply(
        value, locale, currency=currency, currency_digits=False, numbering_system=system
    )
    return _currency_spacing(_signs(text, language, system), get_currency_symbol(currency, locale))


_DIGIT = "[0-9\u0660-\u0669\u06f0-\u06f9]"


def _currency_spacing(text: str, symbol: str) -> str:
    """CLDR's currency spacing, which Babel does not apply: a symbol written in letters
    (``SAR``, ``ر.س.``) is kept apart from the digits by a no-break space (``SAR 1,235``,
    not ``SAR1,235``); a sign symbol (``€``, ``$``) stays next to them."""
    if symbol[-1:].isalpha():
        text = re.sub(f"({re.escape(symbol)})(?={_DIGIT})", "\\1\u00a0", text)
    if symbol[:1].isalpha():
        text = re.sub(f"(?<={_DIGIT})({re.escape(symbol)})", "\u00a0\\1", text)
    return text


def format_date(
    d: dt.date,
    language: str,
    *,
    calendar: Calendar = "gregorian",
    native: bool = False,
    style: DateStyle = "medium",
) -> str:
    """A date in the locale's words. ``calendar="persian"`` writes Persian (``fa``) dates in
    the Solar Hijri calendar (``14 خرداد 1403``); other languages always use the Gregorian
    calendar."""
    if isinstance(d, dt.datetime):
        d = d.date()
    if calendar == "persian" and language == "fa":
        text = _solar_hijri(d, style)
    else:
        text = _babel_date(d, style, locale=_locale(language))
    return to_native_digits(text, language) if native else text


def _solar_hijri(d: dt.date, style: DateStyle) -> str:
    import jdatetime

    j = jdatetime.date.fromgregorian(date=d)
    if style == "short":
        return f"{j.year}/{j.month:02d}/{j.day:02d}"
    text = f"{j.day} {jdatetime.date.j_months_fa[j.month - 1]} {j.year}"
    if style == "long":
        return f"{jdatetime.date.j_weekdays_fa[j.weekday()]} {text}"
    return text


def format_month(d: dt.date, language: str, *, native: bool = False) -> str:
    """A Gregorian month and year (``Jun 2024``, ``ژوئن 2024``): labels of calendar-month
    periods (CRR), which are Gregorian months whatever the reader's calendar."""
    text = format_skeleton("yMMM", d, locale=_locale(language))
    return to_native_digits(text, language) if native else text


def missing(x: Any) -> bool:
    """None, NaN, NaT or pd.NA."""
    if x is None:
        return True
    try:
        return bool(x != x)
    except TypeError:
        return True


@dataclass(frozen=True)
class LocalFormat:
    """One reader's formats (language, currency, calendar, digits); a dash for a missing
    value. Templates get its methods as filters (:func:`churnguard.i18n.jinja_environment`)."""

    language: str = "en"
    currency: str = ""
    calendar: Calendar = "gregorian"
    native_digits: bool = False
    dash: str = DASH

    def int(self, x: Any, group: bool = True) -> str:
        if missing(x):
            return self.dash
        return format_number(x, self.language, native=self.native_digits, group=group)

    def number(self, x: Any, digits: int = 1) -> str:
        if missing(x) or math.isinf(float(x)):
            return self.dash
        return format_number(x, self.language, digits=digits, native=self.native_digits)

    def money(self, x: Any, digits: int = 0) -> str:
        if missing(x):
            return self.dash
        return format_money(
            x, self.language, self.currency, digits=digits, native=self.native_digits
        )

    def pct(self, p: Any, digits: int = 1) -> str:
        """A probability or share in 0..1 as a percentage."""
        if missing(p):
            return self.dash
        return format_percent(p, self.language, digits=digits, native=self.native_digits)

    def pct100(self, x: Any, digits: int = 1) -> str:
        """A value already in percent (a CRR of ``87.5``) as a percentage."""
        if missing(x):
            return self.dash
        return format_percent_value(
            float(x), self.language, digits=digits, native=self.native_digits
        )

    def signed(self, x: Any, digits: int = 3) -> str:
        """``x`` with its sign always shown (``+0.012``, ``-0.004``) in the locale's signs."""
        if missing(x) or math.isinf(float(x)):
            return self.dash
        system = numbering_system(self.language, self.native_digits)
        text, negative = _unsigned(float(x), digits, True, self.language, system)
        symbols = _symbols(self.language, system)
        return symbols["minusSign" if negative else "plusSign"] + text

    def text(self, x: Any) -> str:
        """A value shown as it is (a name, an id, a code); ``""`` when missing."""
        return "" if missing(x) else str(x)

    def day(self, d: Any) -> str:
        """A date in a page or a table: ISO ``yyyy-mm-dd`` for English (as churnguard's
        English pages have always shown it), the locale's medium date otherwise (Solar
        Hijri with ``calendar="persian"`` in Persian, native digits when configured)."""
        if missing(d) or d == "":
            return self.dash
        if self.language == "en":
            return str(d)[:10]
        try:  # Arabic's medium date is numeric (30/06/2025): its long one names the month
            return self.date(d, "long" if self.language == "ar" else "medium")
        except ValueError:  # not an ISO date: shown as it is
            return str(d)

    def date(self, d: Any, style: DateStyle = "medium") -> str:
        if missing(d) or d == "":
            return self.dash
        if isinstance(d, str):
            d = dt.date.fromisoformat(d[:10])
        return format_date(
            d, self.language, calendar=self.calendar, native=self.native_digits, style=style
        )

    def month(self, d: Any) -> str:
        if missing(d):
            return self.dash
        if isinstance(d, str):
            d = dt.date.fromisoformat(d[:10])
        return format_month(d, self.language, native=self.native_digits)

    def digits(self, text: str) -> str:
        """Digits already in ``text`` (a translation's "90 days") in the reader's system."""
        return to_native_digits(text, self.language) if self.native_digits else text
