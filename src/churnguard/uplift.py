"""Measured uplift: each action's realised save rate against the one ``params.yaml`` assumes.

For the customers who would get an action on a list date, a random ``score.control_share``
were held out (:mod:`churnguard.actions`). Once the label window (``features.horizon_days``)
has passed, the churn rate of the treated (c_T) and of the held out (c_C) gives

    realised save rate = (c_C − c_T) / c_C = 1 − c_T / c_C = 1 − RR

— the share of would-be churners the action kept, the quantity ``save_rate`` stands for
in expected net benefit (P(churn) × value × save_rate − cost).

**Intent to treat.** Every treated customer counts, reached or not: the control group
cannot say which of its customers a manager would have reached, and the reached are not a
random part of the treated (managers reach the responsive), so comparing them with all
controls flatters the action. ITT is also what ``save_rate`` means in the benefit formula,
which pays the cost for every listed customer. Recorded outcomes are shown beside it.

**Interval.** The risk ratio's Mantel–Haenszel estimate over list dates (strata; one date:
the plain ratio) with the Greenland–Robins variance of log RR — for a single stratum the
classic Katz log interval, the one used for vaccine efficacy (also 1 − RR). Closed form, so
the report is exact and byte-identical on re-run, and pooling by date stays right when the
churn rate or the control share changes between lists. An action is judged only when each
arm has at least :data:`MIN_CHURNERS` churners (the normal approximation needs it).

**Power.** With n entries, control share π and control churn rate c_C, the interval's
half-width is about z·(1 − s)·√((1 − c_T)/((1 − π)·n·c_T) + (1 − c_C)/(π·n·c_C)), so
:func:`entries_needed` = z²(1 − s)²[(1 − c_T)/((1 − π)c_T) + (1 − c_C)/(π c_C)] / h².
"""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from churnguard.config import ScoreParams

MIN_CHURNERS = 10  # per arm, before an interval is trusted (Katz needs counts, not just n)
ALL_ACTIONS = "(all actions)"
COLUMNS: tuple[str, ...] = (
    "scope",
    "action",
    "list_date",
    "list_dates",
    "window_end",
    "n_treated",
    "n_control",
    "churned_treated",
    "churned_control",
    "churn_rate_treated",
    "churn_rate_control",
    "save_rate",
    "save_rate_low",
    "save_rate_high",
    "confidence",
    "assumed_save_rate",
    "verdict",
    "params_key",
    "suggested_save_rate",
    "outcomes_recorded",
    "reached",
    "entries_needed",
)
VERDICTS = {
    "as_assumed": "as assumed",
    "lower": "lower than assumed",
    "higher": "higher than assumed",
    "too_few": "too few to judge",
    "no_control": "no control group",
    "no_treated": "no treated customers",
}
REACHED = ("reached", "saved", "declined")


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def mh_risk_ratio(
    a: np.ndarray, n1: np.ndarray, c: np.ndarray, n0: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """Mantel–Haenszel risk ratio (treated / control churn) over strata, with the
    Greenland–Robins interval of its log. ``a``/``n1``: treated churners / customers per
    stratum, ``c``/``n0``: control. Strata missing an arm are left out. NaN where undefined
    (no control churner; the interval also when no treated churner)."""
    a, n1, c, n0 = (np.asarray(x, dtype=float) for x in (a, n1, c, n0))
    use = (n1 > 0) & (n0 > 0)
    a, n1, c, n0 = a[use], n1[use], c[use], n0[use]
    n = n1 + n0
    r = float(np.sum(a * n0 / n)) if len(n) else 0.0
    s = float(np.sum(c * n1 / n)) if len(n) else 0.0
    if s == 0:
        return math.nan, math.nan, math.nan
    rr = r / s
    if r == 0:
        return rr, math.nan, math.nan
    p = float(np.sum((n1 * n0 * (a + c) - a * c * n) / n**2))
    half = z_value(confidence) * math.sqrt(max(p, 0.0) / (r * s))
    return rr, rr * math.exp(-half), rr * math.exp(half)


def entries_needed(
    churn_control: float,
    save_rate: float,
    control_share: float,
    half_width: float = 0.1,
    confidence: float = 0.95,
) -> int:
    """Entries (both arms) an action needs before its save-rate interval is ± ``half_width``
    (see the module docstring)."""
    c_c = churn_control
    c_t = (1 - save_rate) * c_c
    if not (0 < c_c <= 1 and 0 < c_t <= 1 and 0 < control_share < 1 and half_width > 0):
        return 0
    z = z_value(confidence)
    bracket = (1 - c_t) / ((1 - control_share) * c_t) + (1 - c_c) / (control_share * c_c)
    return math.ceil(z**2 * (1 - save_rate) ** 2 * bracket / half_width**2)


def params_key(action: str, sp: ScoreParams) -> str:
    """Where an action's assumed save rate lives in params.yaml."""
    for i, rule in enumerate(sp.playbook):
        if rule.name == action:
            return f"score.playbook[{i}].save_rate"
    if action == sp.overflow.name:
        return "score.overflow.save_rate"
    return ""


def assumed_rates(sp: ScoreParams) -> dict[str, float]:
    return {r.name: r.save_rate for r in sp.playbook} | {sp.overflow.name: sp.overflow.save_rate}


def _verdict(row: dict[str, Any], assumed: float | None) -> str:
    if row["n_control"] == 0:
        return VERDICTS["no_control"]
    if row["n_treated"] == 0:
        return VERDICTS["no_treated"]
    if (
        min(row["churned_treated"], row["churned_control"]) < MIN_CHURNERS
        or math.isnan(row["save_rate_low"])
        or assumed is None
        or math.isnan(assumed)
    ):
        return VERDICTS["too_few"]
    if assumed < row["save_rate_low"]:
        return VERDICTS["higher"]
    if assumed > row["save_rate_high"]:
        return VERDICTS["lower"]
    return VERDICTS["as_assumed"]


def _row(group: pd.DataFrame, confidence: float, strata: list[str]) -> dict[str, Any]:
    """Counts, rates and the save-rate interval of one group of entries."""
    t, c = group[group["arm"] == "treated"], group[group["arm"] == "control"]
    by = group.groupby([*strata, "arm"])["churned"].agg(["sum", "size"]).unstack("arm")
    by = by.reindex(columns=pd.MultiIndex.from_product([["sum", "size"], ["treated", "control"]]))
    by = by.fillna(0)
    rr, lo, hi = mh_risk_ratio(
        by[("sum", "treated")].to_numpy(),
        by[("size", "treated")].to_numpy(),
        by[("sum", "control")].to_numpy(),
        by[("size", "control")].to_numpy(),
        confidence,
    )
    contacted = t["outcome_recorded"] if "outcome_recorded" in t else pd.Series(dtype=bool)
    reached = t["reached"] if "reached" in t else pd.Series(dtype=bool)
    return {
        "n_treated": len(t),
        "n_control": len(c),
        "churned_treated": int(t["churned"].sum()),
        "churned_control": int(c["churned"].sum()),
        "churn_rate_treated": round(float(t["churned"].mean()), 4) if len(t) else math.nan,
        "churn_rate_control": round(float(c["churned"].mean()), 4) if len(c) else math.nan,
        "save_rate": round(1 - rr, 4) if not math.isnan(rr) else math.nan,
        "save_rate_low": round(1 - hi, 4) if not math.isnan(hi) else math.nan,
        "save_rate_high": round(1 - lo, 4) if not math.isnan(lo) else math.nan,
        "confidence": confidence,
        "outcomes_recorded": int(contacted.sum()),
        "reached": int(reached.sum()),
    }


def uplift_table(
    measured: pd.DataFrame, sp: ScoreParams, horizon_days: int, confidence: float
) -> pd.DataFrame:
    """One row per action (all list dates pooled), one for all actions, then one per action
    and list date. ``measured``: the episode entries whose window has passed — list_date,
    customer_id, action, arm, save_rate (as the list assumed it), churned (bool), and
    optionally outcome_recorded / reached (bools, treated rows)."""
    rows: list[dict[str, Any]] = []
    if measured.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    current = assumed_rates(sp)
    measured = measured.assign(list_date=pd.to_datetime(measured["list_date"]).dt.date)
    for action, group in measured.groupby("action", sort=True):
        row = _row(group, confidence, ["list_date"])
        assumed = current.get(str(action))
        key = params_key(str(action), sp)
        row.update(
            scope="pooled",
            action=action,
            list_date="",
            list_dates=int(group["list_date"].nunique()),
            window_end="",
            assumed_save_rate=assumed if assumed is not None else math.nan,
            params_key=key,
        )
        row["verdict"] = _verdict(row, assumed)
        row["suggested_save_rate"] = (
            min(max(round(row["save_rate"], 2), 0.0), 1.0)
            if row["verdict"] in (VERDICTS["lower"], VERDICTS["higher"])
            else math.nan
        )
        share = row["n_control"] / max(row["n_treated"] + row["n_control"], 1)
        row["entries_needed"] = (
            entries_needed(row["churn_rate_control"], assumed, share, 0.1, confidence)
            if assumed is not None and not math.isnan(row["churn_rate_control"])
            else 0
        )
        rows.append(row)
    overall = _row(measured, confidence, ["action", "list_date"])
    overall.update(
        scope="pooled",
        action=ALL_ACTIONS,
        list_date="",
        list_dates=int(measured["list_date"].nunique()),
        window_end="",
        assumed_save_rate=math.nan,
        params_key="",
        verdict="",
        suggested_save_rate=math.nan,
        entries_needed=0,
    )
    rows.append(overall)
    for (action, day), group in measured.groupby(["action", "list_date"], sort=True):
        row = _row(group, confidence, ["list_date"])
        was = group["save_rate"].dropna()
        assumed = float(was.iloc[0]) if len(was) else math.nan
        row.update(
            scope="list",
            action=action,
            list_date=day.isoformat(),
            list_dates=1,
            window_end=(day + dt.timedelta(days=horizon_days)).isoformat(),
            assumed_save_rate=assumed,
            params_key=params_key(str(action), sp),
            suggested_save_rate=math.nan,
            entries_needed=0,
        )
        row["verdict"] = _verdict(row, assumed)
        rows.append(row)
    return pd.DataFrame(rows)[list(COLUMNS)]


def advice_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows of actions whose interval excludes the assumed save rate: each says
    which ``params_key`` to set to ``suggested_save_rate``."""
    return table[(table["scope"] == "pooled") & table["suggested_save_rate"].notna()]


def verdict_code(verdict: str) -> str:
    """The key of :data:`VERDICTS` for a verdict's text ("" for none)."""
    return next((k for k, v in VERDICTS.items() if v == verdict), "")


def recommendations(table: pd.DataFrame) -> list[str]:
    """One sentence per action whose pooled interval excludes the assumed save rate."""
    out = []
    for r in advice_rows(table).itertuples(index=False):
        where = r.params_key or f"the save rate of {r.action} (no longer in score.playbook)"
        harm = " (it saves no one here: consider dropping the rule)" if r.save_rate <= 0 else ""
        out.append(
            f"{r.action}: measured save rate {r.save_rate:.2f} "
            f"[{r.save_rate_low:.2f}, {r.save_rate_high:.2f}] from {r.n_treated + r.n_control:,} "
            f"customers is {r.verdict} ({r.assumed_save_rate:.2f}): set {where} to "
            f"{r.suggested_save_rate:.2f}{harm}"
        )
    return out


# --------------------------------------------------------------------------- the page
# uplift.html is drawn by churnguard.report.render_uplift_html through the templates that
# draw report.html's section (_uplift.html.j2); this module gives the strip's geometry.

_LO, _HI, _W = -0.5, 1.0, 130  # interval strip: save rates from -50% to 100%


def strip_geometry(save_rate: float, low: float, high: float, assumed: float) -> dict[str, Any]:
    """Where the interval strip draws its marks (x in a :data:`_W`-wide box; None for a
    missing value): the interval as a bar on a -50%..100% scale, the estimate as a dot, the
    assumed rate as a tick, 0 as a grey line."""

    def x(v: float) -> float | None:
        if v is None or math.isnan(v):
            return None
        return 4 + (min(max(v, _LO), _HI) - _LO) / (_HI - _LO) * (_W - 8)

    lo, hi = x(low), x(high)
    return {
        "w": _W,
        "zero": x(0.0),
        "bar": None if lo is None or hi is None else (lo, max(hi - lo, 1)),
        "dot": x(save_rate),
        "tick": x(assumed),
    }
