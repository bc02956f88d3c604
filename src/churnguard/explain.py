"""Reason codes: the top drivers of each customer's risk, phrased against their own rhythm.

Drivers come from LightGBM's own TreeSHAP contributions (``pred_contrib=True``). Related
features are grouped (recency, recency_to_gap and r_score all say "has not ordered for a
while"), contributions are summed per group, and the groups that push risk up the most
are turned into sentences built from the customer's own numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

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


def _days(x: float) -> str:
    n = int(round(x))
    return f"{n} day" if n == 1 else f"{n} days"


def _recency(r: Row) -> str:
    rec, gap = _num(r.recency_days), _num(r.gap_mean_days)
    if rec is None:
        return "Recency unknown"
    if gap:
        return f"No order for {_days(rec)}; usually orders every {_days(gap)}"
    return f"No order for {_days(rec)} since the first and only purchase"


def _rhythm(r: Row) -> str:
    gap, std = _num(r.gap_mean_days), _num(r.gap_std_days)
    if gap is None:
        return ""  # one-time buyer: the frequency reason says it
    if std is not None:
        return f"Irregular buyer: gaps of {_days(gap)} on average, give or take {_days(std)}"
    return f"Orders about every {_days(gap)}"


def _change(now: float, before: float, what: str) -> str:
    if before > 0 and now <= 0:
        return f"No {what} in the last 90 days, after {before:,.0f} in the 90 before"
    if before > 0:
        pct = (now - before) / before * 100
        direction = "down" if pct < 0 else "up"
        return (
            f"{what.capitalize()} in the last 90 days {direction} {abs(pct):.0f}% on the 90 before"
        )
    if now <= 0:
        return f"No {what} in the last 180 days"
    return f"{what.capitalize()} only started in the last 90 days"


def _spend_trend(r: Row) -> str:
    return _change(_num(r.spend_90d) or 0.0, _num(r.spend_prev_90d) or 0.0, "spend")


def _order_trend(r: Row) -> str:
    now, before = int(_num(r.orders_90d) or 0), int(_num(r.orders_prev_90d) or 0)
    if now == 0 and before == 0:
        return "No orders in the last 180 days"
    return f"{now} order(s) in the last 90 days against {before} in the 90 before"


def _frequency(r: Row) -> str:
    n = int(_num(r.purchase_days) or 0)
    if n <= 1:
        return "Only one purchase so far"
    return f"Only {n} purchase days in {_days(_num(r.tenure_days) or 0)}"


def _value(r: Row) -> str:
    return f"Lifetime spend {(_num(r.monetary_total) or 0):,.0f}; average order {(_num(r.avg_order_value) or 0):,.0f}"


def _tenure(r: Row) -> str:
    return f"Customer for {_days(_num(r.tenure_days) or 0)}"


def _returns(r: Row) -> str:
    return f"Returned {100 * (_num(r.returned_share) or 0):.0f}% of what they bought"


def _breadth(r: Row) -> str:
    return f"Buys from only {int(_num(r.distinct_products) or 0)} product(s)"


PHRASES: dict[str, Callable[[Row], str]] = {
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


def top_reasons(contrib: pd.DataFrame, snapshot: pd.DataFrame, k: int = 3) -> pd.Series:
    """The ``k`` groups pushing each customer's risk up the most, as ' | '-joined sentences.

    ``contrib`` and ``snapshot`` share an index; contributions are in log-odds. Only
    positive (risk-raising) drivers are named, so a customer may get fewer than ``k``.
    Ties between groups break by group name. Groups are ranked with one numpy argsort and
    the phrases read a namedtuple per customer (no per-row pandas objects).
    """
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
            text = phrases[g](row)
            if text and text not in said:
                said.append(text)
                if len(said) == k:
                    break
        texts.append(" | ".join(said))
    return pd.Series(texts, index=grouped.index, name="reasons", dtype=object)
