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
import html
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


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;
background:#fafafa;line-height:1.45}main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;
background:#fff}h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 10px;
border-bottom:1px solid #e3e3e3;padding-bottom:4px}h3{font-size:1em;margin:22px 0 8px}.meta{color:#555;margin:0}.muted{color:#777}
table{border-collapse:collapse;width:100%;font-size:.85em}th,td{border-bottom:1px solid #e6e6e6;
padding:4px 6px;text-align:start;vertical-align:middle}
td.d{white-space:nowrap}.scroll{overflow-x:auto}th{background:#f4f4f4;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}td.n{white-space:nowrap}
.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:8px 12px;margin:10px 0}
.small{font-size:.85em}.ok{color:#2e7d4f}.bad{color:#b03a2e}svg{display:block}
"""
_LO, _HI, _W = -0.5, 1.0, 130  # interval strip: save rates from -50% to 100%


def _e(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else html.escape(str(x))


def _pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _int(x: Any) -> str:
    return f"{int(x):,}"


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


def _strip(r: Any) -> str:
    """The interval strip of a table row as inline SVG (see :func:`strip_geometry`)."""
    g = strip_geometry(r.save_rate, r.save_rate_low, r.save_rate_high, r.assumed_save_rate)
    parts = [f'<svg width="{_W}" height="16" viewBox="0 0 {_W} 16" role="img">']
    parts.append(f'<line x1="{g["zero"]:.1f}" y1="1" x2="{g["zero"]:.1f}" y2="15" stroke="#ccc"/>')
    if g["bar"] is not None:
        parts.append(
            f'<rect x="{g["bar"][0]:.1f}" y="5" width="{g["bar"][1]:.1f}" height="6" fill="#9db7d5"/>'
        )
    if g["dot"] is not None:
        parts.append(f'<circle cx="{g["dot"]:.1f}" cy="8" r="3" fill="#2f5f8f"/>')
    if g["tick"] is not None:
        parts.append(
            f'<line x1="{g["tick"]:.1f}" y1="1" x2="{g["tick"]:.1f}" y2="15" stroke="#b03a2e" '
            'stroke-width="2"/>'
        )
    return "".join(parts) + "</svg>"


def _table(rows: pd.DataFrame, per_list: bool) -> str:
    head = (
        ["Action"]
        + (["List date", "Window ends"] if per_list else ["Lists"])
        + ["Treated", "Held out", "Churn treated, held out", "Measured save rate", ""]
        + ["Assumed", "Verdict"]
        + ([] if per_list else ["Outcomes recorded", "Needed for ±10 pts"])
    )
    numeric = {"Lists", "Treated", "Held out", "Churn treated, held out", "Measured save rate"}
    numeric |= {"Assumed", "Outcomes recorded", "Needed for ±10 pts"}
    th = "".join(f"<th{' class=n' if h in numeric else ''}>{_e(h)}</th>" for h in head)
    body = []
    for r in rows.itertuples(index=False):
        judged = r.verdict in (VERDICTS["lower"], VERDICTS["higher"])
        cls = "bad" if judged else "ok" if r.verdict == VERDICTS["as_assumed"] else "muted"
        interval = (
            f'<br><span class="muted small">[{_pct(r.save_rate_low)}, {_pct(r.save_rate_high)}]</span>'
            if not math.isnan(r.save_rate_low)
            else ""
        )
        cells = [f'<td dir="auto">{_e(r.action)}</td>']
        cells += (
            [f'<td class="d">{_e(r.list_date)}</td>', f'<td class="d">{_e(r.window_end)}</td>']
            if per_list
            else [f'<td class="n">{_int(r.list_dates)}</td>']
        )
        cells += [f'<td class="n">{_int(v)}</td>' for v in (r.n_treated, r.n_control)]
        cells += [
            f'<td class="n">{_pct(r.churn_rate_treated)}<br>{_pct(r.churn_rate_control)}</td>',
            f'<td class="n"><b>{_pct(r.save_rate)}</b>{interval}</td>',
            f"<td>{_strip(r)}</td>",
            f'<td class="n">{_pct(r.assumed_save_rate)}</td>',
            f'<td class="{cls}">{_e(r.verdict)}</td>',
        ]
        if not per_list:
            recorded = (
                f"{r.outcomes_recorded:,} ({r.reached:,} reached)" if r.outcomes_recorded else "–"
            )
            needed = _int(r.entries_needed) if r.entries_needed else "–"
            cells += [f'<td class="n">{recorded}</td>', f'<td class="n">{needed}</td>']
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def render_section(table: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The body of uplift.html: recommendations, the table per action (with outcome
    records), per list date, lists still waiting; every text escaped. ``meta`` as in
    :func:`render_html`. (report.html shows the same table through the template
    ``_uplift.html.j2``, without outcome records.)"""
    pooled = table[table["scope"] == "pooled"]
    per_list = table[table["scope"] == "list"]
    advice = "".join(f'<p class="warn">{_e(t)}</p>' for t in meta.get("recommendations") or [])
    pending = meta.get("pending") or []
    waiting = (
        "<ul>"
        + "".join(
            f"<li>List of {_e(p['list_date'])}: {_int(p['entries'])} customers entered it; "
            f"measurable from {_e(p['ready_on'])}</li>"
            for p in pending
        )
        + "</ul>"
        if pending
        else '<p class="muted">None.</p>'
    )
    measured = (
        _table(pooled, per_list=False) + "<h3>Per list date</h3>" + _table(per_list, per_list=True)
        if len(table)
        else '<p class="muted">No list has passed its label window yet.</p>'
    )
    return (
        f'<section class="uplift"><h2>Measured save rates</h2>{advice}{measured}'
        f"<h3>Waiting for their label window</h3>{waiting}</section>"
    )


def render_html(table: pd.DataFrame, meta: dict[str, Any]) -> str:
    """uplift.html: one self-contained page (no scripts, no network); every text escaped,
    byte-identical for identical input. ``meta``: last_transaction, horizon_days,
    control_share, confidence, pending (list of {list_date, ready_on, entries}),
    recommendations."""
    conf = float(meta.get("confidence", 0.95))
    h = _e(meta.get("horizon_days"))
    return (
        '<!DOCTYPE html>\n<html lang="en" dir="ltr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Measured save rates</title><style>{CSS}</style></head>\n<body><main>\n"
        "<header><h1>Measured save rates (uplift)</h1>"
        f'<p class="meta">Transactions up to {_e(meta.get("last_transaction"))} · label window '
        f"{h} days · control share now {_pct(meta.get('control_share'))} · "
        f"{conf:.0%} intervals</p></header>\n{render_section(table, meta)}\n"
        "<footer><h2>How to read this</h2><ul>"
        "<li>A random share of the customers who would get each action is held out (on no "
        "manager's list). After the label window, <b>measured save rate</b> = (churn held out − "
        "churn treated) / churn held out: the share of would-be churners the action kept. "
        f"Churn = no purchase in the {h} days after the list date.</li>"
        "<li>Only a customer's first list in an episode counts (they keep their arm for "
        f"{h} days); every treated customer counts, reached or not (intent to treat), which is "
        "what <code>save_rate</code> means in the expected net benefit.</li>"
        "<li><b>Interval</b>: Mantel–Haenszel risk ratio over list dates with the "
        "Greenland–Robins (Katz log) interval. Bar: interval; dot: measured; red tick: the "
        "assumed rate; grey line: 0. An action is judged only with at least "
        f"{MIN_CHURNERS} churners in each arm.</li>"
        "<li><b>Needed for ±10 pts</b>: entries (both arms) for an interval of ±0.10 at this "
        "action's churn rate, control share and assumed rate.</li>"
        "</ul></footer>\n</main></body></html>\n"
    )
