"""The weekly ``report.html`` written beside the per-manager CSV lists.

One self-contained page (inline CSS, hand-made SVG and CSS bars, no scripts, no network)
for managers and data scientists: key figures, risk distribution, value at risk, actions,
the top customers, movers since last week and the retention rate per period. Every text
value is HTML-escaped (customer and manager names are untrusted input) and the output is
byte-identical for identical input.

Lapsed customers (``lapsed`` = 1) are their own band: they have no P(churn) and no value
at risk (NaN), so the risk histogram and the value-at-risk figures cover active customers
only; they still appear in the cards, the action table and the top customers (as "lapsed").
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

TOP_CUSTOMERS = 20
TOP_MOVERS = 10
MAX_BARS = 25
RISK_BANDS = ("high", "medium", "low")
CHANGES = ("new", "escalated", "de-escalated", "unchanged")

CSS = """
.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:8px 12px;margin:10px 0;
font-weight:600}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
margin:0;background:#fafafa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:36px 0 10px;
border-bottom:1px solid #e3e3e3;padding-bottom:4px}h3{font-size:1em;margin:16px 0 6px}
.meta{color:#555;margin:0}.muted{color:#777}.small{font-size:.85em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:10px 12px}
.card .v{font-size:1.35em;font-weight:600;font-variant-numeric:tabular-nums}
.card .k{color:#666;font-size:.85em}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #e6e6e6;padding:5px 8px;text-align:start;vertical-align:top}
th{background:#f4f4f4;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:24px}
.bar{display:grid;grid-template-columns:minmax(90px,34%) 1fr auto;gap:8px;
align-items:center;font-size:.9em;margin:3px 0}
.bar .l{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar .t{background:#eef1f5;height:14px;border-radius:2px}
.bar .f{background:#4a78a8;height:14px;border-radius:2px}
.bar .n{font-variant-numeric:tabular-nums;text-align:right;min-width:70px}
svg{display:block;max-width:100%;height:auto;font-family:inherit}
.up{color:#b03a2e}.down{color:#2e7d4f}
footer{margin-top:40px;border-top:1px solid #e3e3e3;color:#444;font-size:.9em}
"""


# -- formatting -------------------------------------------------------------------------


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA or x is pd.NaT


def _e(x: Any) -> str:
    """Escaped text; missing values become an empty string."""
    return "" if _missing(x) else html.escape(str(x), quote=True)


def _int(x: Any) -> str:
    return "–" if _missing(x) else f"{round(float(x)):,}"


def _money(x: Any, currency: str) -> str:
    if _missing(x):
        return "–"
    text = f"{float(x):,.0f}"
    return f"{_e(currency)} {text}" if currency else text


def _pct(p: Any) -> str:
    """A probability in 0..1 as a percentage with one decimal."""
    return "–" if _missing(p) else f"{100 * float(p):.1f}%"


def _pct100(x: Any) -> str:
    """A value already in percent, with one decimal."""
    return "–" if _missing(x) else f"{float(x):.1f}%"


def _points(delta: Any) -> str:
    return "–" if _missing(delta) else f"{100 * float(delta):+.1f} pp"


def _frame(x: Any) -> pd.DataFrame | None:
    return x if isinstance(x, pd.DataFrame) and not x.empty else None


def _p(text: str, cls: str = "muted") -> str:
    return f'<p class="{cls}">{text}</p>'


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{''.join(parts)}</section>"


def _table(cols: str, rows: Iterable[Iterable[str]]) -> str:
    """A table from a ``"Label:class|…"`` column spec and rows of already-escaped cell HTML.

    Class ``n`` right-aligns numbers; ``name`` marks names and free text, rendered with
    ``dir="auto"`` so right-to-left names display correctly inside the LTR page.
    """
    spec = [(c.partition(":")[0], c.partition(":")[2]) for c in cols.split("|")]
    attr = {"": "", "n": ' class="n"', "name": ' dir="auto"'}
    th = "".join(f"<th{attr[c] if c == 'n' else ''}>{_e(h)}</th>" for h, c in spec)
    body = "".join(
        "<tr>"
        + "".join(f"<td{attr[c]}>{v}</td>" for (_, c), v in zip(spec, r, strict=True))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11) -> str:
    """An SVG label; ``text`` must already be escaped."""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="#444">{text}</text>'
    )


# -- sections ---------------------------------------------------------------------------


def _header(ctx: dict[str, Any]) -> str:
    summary = ctx.get("summary") or {}
    fresh = summary.get("data_freshness") or {}
    data = (
        f" · Data: last transaction {_e(fresh.get('last_transaction'))} "
        f"({_int(fresh.get('days_from_last_transaction_to_as_of'))} days before the as-of date)"
        if fresh
        else ""
    )
    warnings = "".join(f'<p class="warn">{_e(w)}</p>' for w in summary.get("warnings") or [])
    q = summary.get("model_quality") or {}
    label = q.get("scorer_label") or "model"
    if q.get("evaluated") and q.get("roc_auc") is not None:
        best = q.get("best_baseline")
        versus = (
            f" against the best other baseline, {_e(q.get('best_baseline_label') or best)}, at "
            f"{float(q['baselines_roc_auc'][best]):.3f} (lead {float(q['lead_roc_auc']):+.3f})"
            if best
            else ""
        )
        model_auc = q.get("model_roc_auc")
        beaten = (
            f"; the LightGBM model scored {float(model_auc):.3f} and did not beat it surely"
            if q.get("scorer") != "model" and model_auc is not None
            else ""
        )
        quality = (
            f'<p class="meta">Ranked by: <strong>{_e(label)}</strong> · ROC-AUC '
            f"{float(q['roc_auc']):.3f} on its test cutoff{versus}{beaten}</p>"
        )
    else:
        quality = (
            f'<p class="meta">Ranked by: <strong>{_e(label)}</strong> · not evaluated</p>'
            if q
            else ""
        )
    drift = summary.get("drift") or {}
    if drift.get("measured") and drift.get("top"):
        top = drift["top"][0]
        quality += (
            f'<p class="meta">Drift since training: largest PSI {float(top["psi"]):.2f} on '
            f"{_e(top['feature'])} ({_e(top['level'])}; {_e(top['top_bin'])}); warning at "
            f"{float(drift['threshold']):.2f}</p>"
        )
    return (
        f"<header><h1>Churn risk report — week of {_e(ctx.get('as_of'))}</h1>"
        f'<p class="meta">Model: <code>{_e(ctx.get("model"))}</code> · Label: churn = no '
        f"purchase in the next {_int(ctx.get('horizon_days'))} days · Value horizon: "
        f"{_int(ctx.get('value_horizon_days'))} days{data}</p>{_value_note(summary)}{quality}"
        f"{warnings}</header>"
    )


def _value_note(summary: dict[str, Any]) -> str:
    """One header line: value at risk next to what these customers spent in the last 12
    months, and, when the source had no amounts, that value is not money."""
    v = summary.get("value") or {}
    if not v:
        return ""
    line = (
        f'<p class="meta">Value at risk {_money(v.get("value_at_risk_total"), "")} over the '
        f"next {_int(v.get('value_horizon_days'))} days, against "
        f"{_money(v.get('revenue_trailing_12m'), '')} these customers spent in the last 12 "
        "months</p>"
    )
    if v.get("money") is False:
        line += f'<p class="warn">{_e(v.get("note"))}</p>'
    return line


def _cards(ctx: dict[str, Any], currency: str) -> str:
    s = ctx.get("summary") or {}
    bands = s.get("risk_band_counts") or {}
    items = [
        ("Customers scored", _int(s.get("customers_scored"))),
        ("On this week's lists", _int(s.get("customers_on_lists"))),
        ("Manual actions (managers)", _int(s.get("manual_actions"))),
        ("Automated actions", _int(s.get("automated_actions"))),
        ("Overflowed to automated", _int(s.get("overflowed"))),
        ("Value at risk", _money(s.get("value_at_risk_total"), currency)),
        ("Expected net benefit", _money(s.get("expected_net_benefit_total"), currency)),
        ("High / medium / low risk", " / ".join(_int(bands.get(b)) for b in RISK_BANDS)),
        ("Lapsed already", _int(s.get("lapsed"))),
    ]
    cards = "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{_e(k)}</div></div>'
        for k, v in items
    )
    return _section("Key figures", f'<div class="cards">{cards}</div>')


def _lapsed(frame: pd.DataFrame) -> pd.Series:
    """True for lapsed customers (a frame without the column has none)."""
    if "lapsed" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["lapsed"].fillna(0).astype(bool)


def _histogram(scored: pd.DataFrame | None) -> str:
    title = "Risk distribution"
    if scored is None:
        return _section(title, _p("No customers scored."))
    lapsed = _lapsed(scored)
    p = pd.to_numeric(scored.loc[~lapsed, "p_churn"], errors="coerce").dropna()
    n_lapsed = int(lapsed.sum())
    left_out = (
        _p(
            f"{n_lapsed:,} lapsed customer(s) are left out: silent longer than the lost-after "
            "period, they are not scored by the model (it is not trained on them) and get "
            "win-back actions instead."
        )
        if n_lapsed
        else ""
    )
    if p.empty:
        return _section(title, _p("No active customers scored."), left_out)
    bins = (p.clip(0, 1) * 10).astype(int).clip(upper=9)
    counts = [int((bins == i).sum()) for i in range(10)]
    w, h, left, top, base, bw = 640, 220, 30, 22, 186, 56
    peak = max(counts) or 1
    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="Histogram of P(churn)">']
    for i, c in enumerate(counts):
        bh, x, band = (base - top) * c / peak, left + i * (bw + 4), f"{i * 10}–{i * 10 + 10}%"
        parts.append(
            f'<rect x="{x}" y="{base - bh:.1f}" width="{bw}" height="{bh:.1f}" fill="#4a78a8">'
            f"<title>{band}: {c:,} customers</title></rect>"
            + _text(x + bw / 2, base - bh - 5, f"{c:,}", size=12)
            + _text(x + bw / 2, base + 16, band)
        )
    parts.append(
        f'<line x1="{left - 4}" y1="{base}" x2="{left + 10 * (bw + 4)}" y2="{base}" '
        f'stroke="#999"/>{_text(left + 5 * (bw + 4), h - 2, "P(churn)")}</svg>'
    )
    note = _p(f"Active customers per 10-point band of P(churn); {len(p):,} scored.")
    return _section(title, note, left_out, *parts)


def _bars(frame: pd.DataFrame, key: str, value: str, currency: str) -> str:
    """Horizontal CSS bars of ``value`` summed by ``key``, largest first."""
    agg = frame.groupby(key, dropna=False)[value].sum().reset_index()
    agg[key] = agg[key].map(lambda k: "(none)" if _missing(k) or k == "" else str(k))
    agg = agg.sort_values([value, key], ascending=[False, True], kind="stable")
    peak = max(float(agg[value].max()), 0.0) or 1.0
    out = [
        f'<div class="bar"><div class="l" dir="auto" title="{_e(k)}">{_e(k)}</div>'
        f'<div class="t"><div class="f" style="width:{max(float(v), 0) / peak * 100:.1f}%">'
        f'</div></div><div class="n">{_money(v, currency)}</div></div>'
        for k, v in zip(agg[key][:MAX_BARS], agg[value][:MAX_BARS], strict=True)
    ]
    if len(agg) > MAX_BARS:
        rest = _money(agg[value].iloc[MAX_BARS:].sum(), currency)
        out.append(_p(f"… and {len(agg) - MAX_BARS:,} more, {rest} in total.", "muted small"))
    return "".join(out)


def _value_at_risk(scored: pd.DataFrame | None, currency: str) -> str:
    title = "Value at risk"
    if scored is None:
        return _section(title, _p("No customers scored."))
    active = scored[scored["value_at_risk"].notna() & ~_lapsed(scored)]
    if active.empty:
        return _section(title, _p("No active customers scored."))
    return _section(
        title,
        _p(
            "Sum of P(churn) × value if retained over active customers, highest first "
            "(lapsed customers are already lost and are left out)."
        ),
        '<div class="cols"><div><h3>By RFM segment</h3>',
        _bars(active, "rfm_segment", "value_at_risk", currency),
        "</div><div><h3>By account manager</h3>",
        _bars(active, "account_manager", "value_at_risk", currency),
        "</div></div>",
    )


def _actions(listed: pd.DataFrame | None, currency: str) -> str:
    title = "Actions by rule and owner"
    if listed is None:
        return _section(title, _p("No customers on the lists this week."))
    agg = (
        listed.groupby(["rule", "owner", "action"], dropna=False)
        .agg(
            customers=("customer_id", "size"),
            var=("value_at_risk", lambda v: v.sum(min_count=1)),  # NaN: lapsed only
            enb=("expected_net_benefit", "sum"),
        )
        .reset_index()
        .sort_values(["customers", "enb", "rule"], ascending=[False, False, True], kind="stable")
    )
    rows = (
        [_e(r.rule), _e(r.owner), _e(r.action), _int(r.customers)]
        + [_money(r.var, currency), _money(r.enb, currency)]
        for r in agg.itertuples(index=False)
    )
    cols = "Rule|Owner|Action|Customers:n|Value at risk:n|Expected net benefit:n"
    return _section(title, _table(cols, rows))


def _top(listed: pd.DataFrame | None, currency: str) -> str:
    title = f"Top {TOP_CUSTOMERS} customers by expected net benefit"
    if listed is None:
        return _section(title, _p("No customers on the lists this week."))
    top = listed.sort_values(
        ["expected_net_benefit", "customer_id"], ascending=[False, True], kind="stable"
    ).head(TOP_CUSTOMERS)
    lapsed = _lapsed(top).tolist()
    rows = (
        [_e(r.customer_name), _e(r.customer_id), _e(r.account_manager)]
        + ["lapsed" if gone else _pct(r.p_churn), _money(r.value_at_risk, currency)]
        + [_e(r.action)]
        + [_money(r.expected_net_benefit, currency), _e(r.change), _e(r.reasons)]
        for r, gone in zip(top.itertuples(index=False), lapsed, strict=True)
    )
    cols = (
        "Customer:name|ID|Manager:name|Risk:n|Value at risk:n|Action|Net benefit:n|Change"
        "|Why flagged:name"
    )
    return _section(title, _table(cols, rows))


def _mover_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return _p("None.")
    rows = (
        [_e(r.customer_name), _e(r.account_manager), _pct(r.p_prev), _pct(r.p_churn)]
        + [f'<span class="{"up" if r.delta > 0 else "down"}">{_points(r.delta)}</span>']
        for r in frame.itertuples(index=False)
    )
    return _table("Customer:name|Manager:name|Last week:n|Now:n|Change:n", rows)


def _movers(ctx: dict[str, Any], listed: pd.DataFrame | None) -> str:
    title = "Biggest movers"
    movers, recovered = _frame(ctx.get("movers")), _frame(ctx.get("recovered"))
    if movers is None and recovered is None:
        return _section(
            title, _p("There is no previous list to compare with yet; movers appear next week.")
        )
    out = []
    if listed is not None and "change" in listed:
        n = {k: int((listed["change"] == k).sum()) for k in CHANGES}
        out.append(
            _p("On this week's lists: " + ", ".join(f"{v:,} {k}" for k, v in n.items()) + ".")
        )
    if movers is not None:
        m = movers.dropna(subset=["delta"])
        up = m[m["delta"] > 0].sort_values(
            ["delta", "customer_id"], ascending=[False, True], kind="stable"
        )
        down = m[m["delta"] < 0].sort_values(["delta", "customer_id"], kind="stable")
        out.append(
            f'<div class="cols"><div><h3>Risk rose most</h3>{_mover_table(up[:TOP_MOVERS])}'
            f"</div><div><h3>Risk fell most</h3>{_mover_table(down[:TOP_MOVERS])}</div></div>"
        )
    if recovered is not None:
        rec = recovered.sort_values(["account_manager", "customer_id"], kind="stable")
        rows = (
            [_e(r.customer_name), _e(r.customer_id), _e(r.account_manager)]
            for r in rec.itertuples(index=False)
        )
        out.append(f"<h3>Recovered: off the lists and bought again ({len(rec):,})</h3>")
        out.append(_table("Customer:name|ID|Manager:name", rows))
    return _section(title, *out)


def _crr_chart(crr: pd.DataFrame) -> str:
    """An SVG line of CRR per period; gaps where CRR is undefined (no customers at start)."""
    vals = [None if _missing(v) else v for v in pd.to_numeric(crr["crr_pct"], errors="coerce")]
    known = [float(v) for v in vals if v is not None]
    if not known:
        return _p("CRR is undefined for every period (no customers at the start).")
    lo = max(0, math.floor((min(known) - 5) / 10) * 10)
    w, h, left, right, top, base, n = 640, 220, 60, 40, 24, 180, len(vals)
    step = (w - left - right) / max(n - 1, 1)
    xs = [left + i * step if n > 1 else w / 2 for i in range(n)]

    def y(v: float) -> float:
        return top + (100 - v) / (100 - lo or 1) * (base - top)

    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="CRR per period">']
    for g in range(lo, 101, 10 if 100 - lo <= 50 else 20):
        parts.append(
            f'<line x1="{left}" y1="{y(g):.1f}" x2="{w - right}" y2="{y(g):.1f}" stroke="#eee"/>'
            + _text(left - 6, y(g) + 4, f"{g}%", anchor="end")
        )
    runs: list[list[str]] = [[]]
    for x, v in zip(xs, vals, strict=True):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(f"{x:.1f},{y(v):.1f}")
    parts += [
        f'<polyline points="{" ".join(r)}" fill="none" stroke="#4a78a8" stroke-width="2"/>'
        for r in runs
        if len(r) > 1
    ]
    every = math.ceil(n / 12)
    for i, (x, v, period) in enumerate(zip(xs, vals, crr["period"], strict=True)):
        if v is not None:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3" fill="#4a78a8">'
                f"<title>{_e(period)}: {v:.1f}%</title></circle>"
            )
            if n <= 12:
                parts.append(_text(x, y(v) - 8, f"{v:.1f}%"))
        if i % every == 0:
            parts.append(_text(x, base + 20, _e(period)))
    return "".join(parts) + "</svg>"


def _crr(ctx: dict[str, Any]) -> str:
    title = "Customer retention rate (CRR)"
    crr = _frame(ctx.get("crr"))
    if crr is None:
        return _section(
            title,
            _p("CRR is not available for this run: no complete period in the transaction history."),
        )
    definition = ctx.get("crr_definition") or crr.attrs.get("definition") or ""
    names = ["customers_start", "customers_end", "new_customers", "lost_customers"]
    rows = (
        [_e(r["period"])]
        + [_int(r.get(c)) for c in names]
        + [_pct100(r.get("crr_pct")), _pct100(r.get("churn_rate_pct"))]
        for r in crr.to_dict("records")
    )
    cols = "Period|Customers at start (S):n|At end (E):n|New:n|Lost:n|CRR:n|Churn rate:n"
    return _section(title, _crr_chart(crr), _p(_e(definition), "muted small"), _table(cols, rows))


def _footer(ctx: dict[str, Any]) -> str:
    h, vh = _int(ctx.get("horizon_days")), _int(ctx.get("value_horizon_days"))
    items = [
        f"<b>P(churn)</b> is a calibrated probability of no purchase in the next {h} days: of "
        "100 customers shown at 30%, about 30 are expected to churn.",
        "<b>Value if retained</b> = what the customer is expected to spend in the next "
        f"{vh} days if they buy again within {h} days: their purchase rate and spend per "
        "purchase day, each shrunk toward all customers' by how little history they have "
        "(a new or one-time customer is valued near a typical customer, not their first "
        "order annualised). <b>Value at risk</b> = P(churn) × value if retained.",
        "<b>Expected net benefit</b> = P(churn) × value if retained × save rate − action cost. "
        "A customer is on a list only when that is positive; manual actions are capped per "
        "manager each week and the overflow goes to an automated action.",
        "<b>Change</b>: <i>new</i> = not on last week's list; <i>escalated</i> / "
        "<i>de-escalated</i> = risk band moved up / down since last week (low → medium → "
        "high → lapsed).",
        "<b>Lapsed</b> customers (no purchase for longer than the lost-after period) are "
        "their own band: the model is not trained on them, so they have no P(churn) and no "
        "value at risk and are left out of the risk distribution. They get win-back actions "
        "worth value if retained × save rate − action cost (they are already lost).",
    ]
    lis = "".join(f"<li>{i}</li>" for i in items)
    return f"<footer><h2>How to read this</h2><ul>{lis}</ul></footer>"


def render_html(ctx: dict[str, Any]) -> str:
    """The weekly report as one self-contained HTML page (see the module docstring)."""
    scored = _frame(ctx.get("scored"))
    listed = None if scored is None else _frame(scored[scored["on_list"].astype(bool)])
    currency = str(ctx.get("currency") or "")
    sections = [
        _header(ctx),
        _cards(ctx, currency),
        _histogram(scored),
        _value_at_risk(scored, currency),
        _actions(listed, currency),
        _top(listed, currency),
        _movers(ctx, listed),
        _crr(ctx),
        _footer(ctx),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en" dir="ltr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Churn risk report — {_e(ctx.get('as_of'))}</title><style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(sections) + "\n</main></body></html>\n"
    )
