"""Reason codes: the top drivers of each customer's risk, phrased against their own rhythm.

Drivers come from LightGBM's own TreeSHAP contributions (``pred_contrib=True``). Related
features are grouped (recency, recency_to_gap and r_score all say "has not ordered for a
while"), contributions are summed per group, and the groups that push risk up the most
are turned into sentences built from the customer's own numbers, in the reader's language
(gettext catalogues, :mod:`churnguard.i18n`; English by default, byte for byte as before)
with the reader's number formats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from churnguard.i18n import Translator, translations, translator
from churnguard.localfmt import format_number, format_percent
from churnguard.timing import timed

Row = Any  # a snapshot row: pandas Series or namedtuple (attribute access)

GROUPS: dict[str, tuple[str, ...]] = {
    "recency": ("recency_days", "recency_to_gap", "r_score", "gap_last_days"),
    "rhythm": ("gap_mean_days", "gap_std_days"),
    "spend_trend": ("spend_trend_90d", "spend_90d", "spend_prev_90d", "spend_30d"),
    "order_trend": ("orders_trend_90d", "orders_90d", "orders_prev_90d", "orders_30d"),
    "frequency": (
        "purchase_days",
        "orders",
        "f_score",
        "one_time_buyer",
        "orders_180d",
        "orders_365d",
    ),
    "value": (
        "monetary_total",
        "m_score",
        "rfm_score",
        "avg_order_value",
        "max_order_value",
        "last_day_spend",
        "spend_180d",
        "spend_365d",
    ),
    "tenure": ("tenure_days",),
    "returns": ("returned_share",),
    "breadth": ("distinct_products",),
}
FEATURE_GROUP = {f: g for g, feats in GROUPS.items() for f in feats}


def _num(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


ENGLISH = Translator()


@lru_cache(maxsize=100_000)
def _count_text(n: int, language: str, native: bool) -> str:
    return format_number(n, language, native=native, group=False)


def _count(n: int, tr: Translator) -> str:
    """A count as said in a sentence: no thousands separator ("1134 days")."""
    return _count_text(n, tr.language, tr.fmt.native_digits)


def _amount(x: float, tr: Translator) -> str:
    """An amount, whole units, thousands grouped ("6,798"); no currency symbol."""
    return format_number(x, tr.language, native=tr.fmt.native_digits)


def _share(pct: float, tr: Translator) -> str:
    """A percentage already ×100, whole, ungrouped ("12%"), rounded as f"{pct:.0f}" is."""
    whole = Decimal(f"{pct:.0f}")
    return format_percent(whole / 100, tr.language, native=tr.fmt.native_digits, group=False)


def _days(x: float, tr: Translator = ENGLISH) -> str:
    return _days_text(int(round(x)), tr.language, tr.fmt.native_digits)


@lru_cache(maxsize=100_000)
def _days_text(n: int, language: str, native: bool) -> str:
    # TRANSLATORS: a duration inside a reason, e.g. "No order for {duration}"
    text = translations(language).ngettext("{n} day", "{n} days", n)
    return text.format(n=_count_text(n, language, native))


def _recency(r: Row, tr: Translator = ENGLISH) -> str:
    rec, gap = _num(r.recency_days), _num(r.gap_mean_days)
    if rec is None:
        return tr.gettext("Recency unknown")
    if gap:
        # TRANSLATORS: {duration} and {gap} are durations such as "128 days"
        text = tr.gettext("No order for {duration}; usually orders every {gap}")
        return text.format(duration=_days(rec, tr), gap=_days(gap, tr))
    text = tr.gettext("No order for {duration} since the first and only purchase")
    return text.format(duration=_days(rec, tr))


def _rhythm(r: Row, tr: Translator = ENGLISH) -> str:
    gap, std = _num(r.gap_mean_days), _num(r.gap_std_days)
    if gap is None:
        return ""  # one-time buyer: the frequency reason says it
    if std is not None:
        text = tr.gettext("Irregular buyer: gaps of {gap} on average, give or take {spread}")
        return text.format(gap=_days(gap, tr), spread=_days(std, tr))
    return tr.gettext("Orders about every {gap}").format(gap=_days(gap, tr))


def _spend_change(now: float, before: float, tr: Translator) -> str:
    if before > 0 and now <= 0:
        text = tr.gettext("No spend in the last 90 days, after {amount} in the 90 before")
        return text.format(amount=_amount(before, tr))
    if before > 0:
        pct = (now - before) / before * 100
        if pct < 0:
            text = tr.gettext("Spend in the last 90 days down {share} on the 90 before")
        else:
            text = tr.gettext("Spend in the last 90 days up {share} on the 90 before")
        return text.format(share=_share(abs(pct), tr))
    if now <= 0:
        return tr.gettext("No spend in the last 180 days")
    return tr.gettext("Spend only started in the last 90 days")


def _spend_trend(r: Row, tr: Translator = ENGLISH) -> str:
    return _spend_change(_num(r.spend_90d) or 0.0, _num(r.spend_prev_90d) or 0.0, tr)


def _order_trend(r: Row, tr: Translator = ENGLISH) -> str:
    now, before = int(_num(r.orders_90d) or 0), int(_num(r.orders_prev_90d) or 0)
    if now == 0 and before == 0:
        return tr.gettext("No orders in the last 180 days")
    # TRANSLATORS: English keeps "order(s)" (one form for all); give each plural form of
    # {now}, the orders in the last 90 days ({before} is the count of the 90 days before)
    text = tr.ngettext(
        "{now} order(s) in the last 90 days against {before} in the 90 before",
        "{now} order(s) in the last 90 days against {before} in the 90 before",
        now,
    )
    return text.format(now=_count(now, tr), before=_count(before, tr))


def _frequency(r: Row, tr: Translator = ENGLISH) -> str:
    n = int(_num(r.purchase_days) or 0)
    if n <= 1:
        return tr.gettext("Only one purchase so far")
    # TRANSLATORS: {n} days with a purchase (always 2 or more) within {tenure}, a duration
    text = tr.ngettext("Only {n} purchase day in {tenure}", "Only {n} purchase days in {tenure}", n)
    return text.format(n=_count(n, tr), tenure=_days(_num(r.tenure_days) or 0, tr))


def _value(r: Row, tr: Translator = ENGLISH) -> str:
    text = tr.gettext("Lifetime spend {total}; average order {average}")
    return text.format(
        total=_amount(_num(r.monetary_total) or 0, tr),
        average=_amount(_num(r.avg_order_value) or 0, tr),
    )


def _tenure(r: Row, tr: Translator = ENGLISH) -> str:
    text = tr.gettext("Customer for {duration}")
    return text.format(duration=_days(_num(r.tenure_days) or 0, tr))


def _returns(r: Row, tr: Translator = ENGLISH) -> str:
    text = tr.gettext("Returned {share} of what they bought")
    return text.format(share=_share(100 * (_num(r.returned_share) or 0), tr))


def _breadth(r: Row, tr: Translator = ENGLISH) -> str:
    n = int(_num(r.distinct_products) or 0)
    text = tr.ngettext("Buys from only {n} product(s)", "Buys from only {n} product(s)", n)
    return text.format(n=_count(n, tr))


PHRASES: dict[str, Callable[..., str]] = {
    "recency": _recency,
    "rhythm": _rhythm,
    "spend_trend": _spend_trend,
    "order_trend": _order_trend,
    "frequency": _frequency,
    "value": _value,
    "tenure": _tenure,
    "returns": _returns,
    "breadth": _breadth,
}


# the snapshot columns the phrases read
PHRASE_COLUMNS = (
    "recency_days",
    "gap_mean_days",
    "gap_std_days",
    "spend_90d",
    "spend_prev_90d",
    "orders_90d",
    "orders_prev_90d",
    "purchase_days",
    "tenure_days",
    "monetary_total",
    "avg_order_value",
    "returned_share",
    "distinct_products",
)


def phrase(group: str, row: Row, lang: str | Translator = "en") -> str:
    """One reason (a group of :data:`GROUPS`) for ``row`` in the reader's language; digits
    a translation writes itself ("90 days") follow the reader's numbering system too."""
    tr = lang if isinstance(lang, Translator) else translator(lang)
    return tr.fmt.digits(PHRASES[group](row, tr))


@timed("reasons: texts")
def top_reasons(
    contrib: pd.DataFrame,
    snapshot: pd.DataFrame,
    k: int = 3,
    lang: str | Translator = "en",
) -> pd.Series:
    """The ``k`` groups pushing each customer's risk up the most, as ' | '-joined sentences
    in the reader's language (a code, or a :class:`~churnguard.i18n.Translator` that also
    carries number formats such as native digits).

    ``contrib`` and ``snapshot`` share an index; contributions are in log-odds. Only
    positive (risk-raising) drivers are named, so a customer may get fewer than ``k``.
    Ties between groups break by group name. Groups are ranked with one numpy argsort and
    the phrases read a namedtuple per customer (no per-row pandas objects).
    """
    tr = lang if isinstance(lang, Translator) else translator(lang)
    if contrib.empty or k == 0:
        return pd.Series("", index=snapshot.index, name="reasons", dtype=object)
    grouped = contrib.T.groupby(lambda f: FEATURE_GROUP.get(f, "other")).sum().T
    grouped = grouped.drop(columns=["other"], errors="ignore")
    names = list(grouped.columns)  # sorted by name: a stable sort on -value breaks ties by name
    values = grouped.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")
    positive = np.take_along_axis(values, order, axis=1) > 0
    phrases = [PHRASES[g] for g in names]
    rows = snapshot.loc[grouped.index, [c for c in PHRASE_COLUMNS if c in snapshot.columns]]
    texts = []
    for row, ranked, pos in zip(
        rows.itertuples(index=False), order.tolist(), positive.tolist(), strict=True
    ):
        said: list[str] = []
        for j, g in enumerate(ranked):
            if not pos[j]:
                break
            text = tr.fmt.digits(phrases[g](row, tr))
            if text and text not in said:
                said.append(text)
                if len(said) == k:
                    break
        texts.append(" | ".join(said))
    return pd.Series(texts, index=grouped.index, name="reasons", dtype=object)
