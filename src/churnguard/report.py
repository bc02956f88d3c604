"""The weekly report: ``report.html`` for everyone and one page per account manager.

Pure: the functions below compute what the pages show — figures, table rows, the geometry
of the SVG charts — from the scored frame and the lists; the Jinja2 templates in
``churnguard/templates`` (shipped with the package, autoescaped, so customer and manager
names are always escaped) lay it out and hold every word, translated through the reader's
message catalogue (:func:`churnguard.i18n.jinja_environment`), with numbers, money and
dates in the reader's local formats (:class:`churnguard.localfmt.LocalFormat`). Pages are self-contained (inline CSS, SVG, no scripts,
no network; links only to the lists beside them) and byte-identical for identical input.

Names sit in ``<bdi>``: a right-to-left name (or one mixing Arabic, Latin and digits) keeps
its own direction without pulling the cell, or the punctuation around it, along.

Lapsed customers (``lapsed`` = 1) are their own band: they have no P(churn) and no value
at risk (NaN), so the risk histogram and the value-at-risk figures cover active customers
only; they still appear in the cards, the action table and the top customers (as "lapsed").
"""

from __future__ import annotations

import functools
import math
from typing import Any
from urllib.parse import quote

import jinja2
import pandas as pd

from churnguard import i18n, uplift
from churnguard.config import humanize
from churnguard.localfmt import LocalFormat, missing
from churnguard.timing import timed

TOP_CUSTOMERS = 20
TOP_MOVERS = 10
MAX_BARS = 25
RISK_BANDS = ("high", "medium", "low")
CHANGES = ("new", "escalated", "de-escalated", "unchanged")
MANUAL = ("account_manager", "account manager")  # the owner code (scored) and its CSV text


@functools.cache
def environment(language: str, fmt: LocalFormat | None = None) -> jinja2.Environment:
    """The templates for ``language`` readers: :func:`churnguard.i18n.jinja_environment`
    (autoescaped, the language's catalogue, ``lang``/``dir``/``label``, format filters)
    with the package's templates, strict undefined values and trimmed ``{% trans %}``
    blocks (``babel.cfg`` extracts them trimmed too)."""
    env = i18n.jinja_environment(
        language,
        jinja2.PackageLoader("churnguard", "templates"),
        fmt or LocalFormat(language=language),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    return env


def page_format(ctx: dict[str, Any]) -> LocalFormat:
    """The local formats of a page's reader: ``ctx["language"]`` with the run's currency,
    calendar and digits (``report.*``). The Solar Hijri calendar applies to Persian
    pages only."""
    language = str(ctx.get("language") or "en")
    calendar = str(ctx.get("calendar") or "gregorian")
    return LocalFormat(
        language=language,
        currency=str(ctx.get("currency") or ""),
        calendar=calendar if language == "fa" else "gregorian",  # type: ignore[arg-type]
        native_digits=bool(ctx.get("native_digits")),
    )


def href(path: str) -> str:
    """A relative link to a file churnguard wrote (names may hold spaces, Arabic, ``#``…)."""
    return quote(path, safe="/")


# -- small helpers -----------------------------------------------------------------------


def _frame(x: Any) -> pd.DataFrame | None:
    return x if isinstance(x, pd.DataFrame) and not x.empty else None


def _lapsed(frame: pd.DataFrame) -> pd.Series:
    """True for lapsed customers (a frame without the column has none)."""
    if "lapsed" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["lapsed"].fillna(0).astype(bool)


def _value(x: Any) -> Any:
    """A cell value for a template: None for missing, plain Python otherwise."""
    if missing(x):
        return None
    return x.item() if hasattr(x, "item") else x


def _label(rule: Any, actions: dict[str, dict[str, Any]]) -> str:
    """The short label of a rule name (the rule name humanised when the playbook is unknown)."""
    if missing(rule) or rule == "":
        return ""
    known = actions.get(str(rule))
    return str(known["label"]) if known else humanize(str(rule))


# -- the header, shared by every page ---------------------------------------------------


def header_view(ctx: dict[str, Any]) -> dict[str, Any]:
    """Model quality, drift, freshness and warnings: what every page says at the top."""
    summary = ctx.get("summary") or {}
    fresh = summary.get("data_freshness") or {}
    q = summary.get("model_quality") or {}
    quality: dict[str, Any] | None = None
    if q:
        quality = {"label": q.get("scorer_label"), "evaluated": False}
        if q.get("evaluated") and q.get("roc_auc") is not None:
            best = q.get("best_baseline")
            model_auc = q.get("model_roc_auc")
            quality.update(
                evaluated=True,
                roc_auc=float(q["roc_auc"]),
                best_label=(q.get("best_baseline_label") or best) if best else None,
                best_auc=float(q["baselines_roc_auc"][best]) if best else None,
                lead=float(q["lead_roc_auc"]) if best else None,
                model_auc=(
                    float(model_auc)
                    if q.get("scorer") != "model" and model_auc is not None
                    else None
                ),
            )
    drift = summary.get("drift") or {}
    top = drift["top"][0] if drift.get("measured") and drift.get("top") else None
    v = summary.get("value") or {}
    value = (
        {
            "at_risk": v.get("value_at_risk_total"),
            "days": v.get("value_horizon_days"),
            "revenue": v.get("revenue_trailing_12m"),
            "not_money": v.get("money") is False,
            "note": v.get("note"),
        }
        if v
        else None
    )
    return {
        "value": value,
        "as_of": ctx.get("as_of"),
        "model": ctx.get("model"),
        "horizon_days": ctx.get("horizon_days"),
        "value_horizon_days": ctx.get("value_horizon_days"),
        "freshness": (
            {
                "last": fresh.get("last_transaction"),
                "days": fresh.get("days_from_last_transaction_to_as_of"),
            }
            if fresh
            else None
        ),
        "quality": quality,
        "drift": (
            {
                "psi": float(top["psi"]),
                "feature": top["feature"],
                "level": top["level"],
                "top_bin": top["top_bin"],
                "threshold": float(drift["threshold"]),
            }
            if top
            else None
        ),
        "warnings": page_warnings(summary, page_format(ctx)),
    }


def page_warnings(summary: dict[str, Any], fmt: LocalFormat) -> list[str]:
    """``summary.json``'s warnings as the page's reader reads them: the English text as it
    is for English pages; for other languages each warning with a code
    (``warning_codes``) is said again in that language, one without a code stays English."""
    texts = [str(w) for w in summary.get("warnings") or []]
    codes = summary.get("warning_codes") or []
    if fmt.language == "en" or len(codes) != len(texts):
        return texts
    tr = i18n.Translator(fmt.language, fmt)
    return [
        i18n.notice_text(c["code"], c.get("params") or {}, tr)
        if isinstance(c, dict) and c.get("code") in i18n.NOTICES
        else text
        for text, c in zip(texts, codes, strict=True)
    ]


# -- summary page: figures and charts ----------------------------------------------------


def cards_view(summary: dict[str, Any]) -> dict[str, Any]:
    bands = summary.get("risk_band_counts") or {}
    return {
        "scored": summary.get("customers_scored"),
        "on_lists": summary.get("customers_on_lists"),
        "manual": summary.get("manual_actions"),
        "automated": summary.get("automated_actions"),
        "overflowed": summary.get("overflowed"),
        "value_at_risk": summary.get("value_at_risk_total"),
        "net_benefit": summary.get("expected_net_benefit_total"),
        "bands": [bands.get(b) for b in RISK_BANDS],
        "lapsed": summary.get("lapsed"),
    }


def histogram_view(scored: pd.DataFrame | None) -> dict[str, Any] | None:
    """Active customers per 10-point band of P(churn), as SVG geometry (None: no customers)."""
    if scored is None:
        return None
    lapsed = _lapsed(scored)
    p = pd.to_numeric(scored.loc[~lapsed, "p_churn"], errors="coerce").dropna()
    view: dict[str, Any] = {"n_active": len(p), "n_lapsed": int(lapsed.sum()), "chart": None}
    if p.empty:
        return view
    bins = (p.clip(0, 1) * 10).astype(int).clip(upper=9)
    counts = [int((bins == i).sum()) for i in range(10)]
    w, h, left, top, base, bw = 640, 220, 30, 22, 186, 56
    peak = max(counts) or 1
    bars = []
    for i, c in enumerate(counts):
        bh, x = (base - top) * c / peak, left + i * (bw + 4)
        bars.append(
            {
                "x": x,
                "y": round(base - bh, 1),
                "w": bw,
                "h": round(bh, 1),
                "cx": x + bw / 2,
                "count": c,
                "band": f"{i * 10}–{i * 10 + 10}%",
                "lo": i * 10,
                "hi": i * 10 + 10,
            }
        )
    view["chart"] = {
        "w": w,
        "h": h,
        "base": base,
        "bars": bars,
        "axis": (left - 4, left + 10 * (bw + 4)),
        "title_x": left + 5 * (bw + 4),
    }
    return view


def bars_view(frame: pd.DataFrame, key: str, value: str) -> dict[str, Any]:
    """``value`` summed by ``key``, largest first, as bar widths in percent of the largest."""
    agg = frame.groupby(key, dropna=False)[value].sum().reset_index()
    agg["_key"] = agg[key].map(lambda k: "" if missing(k) else str(k))
    agg = agg.sort_values([value, "_key"], ascending=[False, True], kind="stable")
    peak = max(float(agg[value].max()), 0.0) or 1.0
    rows = [
        {"key": k or None, "value": float(v), "width": round(max(float(v), 0) / peak * 100, 1)}
        for k, v in zip(agg["_key"][:MAX_BARS], agg[value][:MAX_BARS], strict=True)
    ]
    more = len(agg) - MAX_BARS
    rest = float(agg[value].iloc[MAX_BARS:].sum()) if more > 0 else 0.0
    return {"rows": rows, "more": max(more, 0), "rest": rest}


def value_at_risk_view(scored: pd.DataFrame | None) -> dict[str, Any] | None:
    if scored is None:
        return None
    active = scored[scored["value_at_risk"].notna() & ~_lapsed(scored)]
    if active.empty:
        return {"segments": None, "managers": None}
    return {
        "segments": bars_view(active, "rfm_segment", "value_at_risk"),
        "managers": bars_view(active, "account_manager", "value_at_risk"),
    }


def actions_view(
    listed: pd.DataFrame | None, actions: dict[str, dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """Customers, value at risk and net benefit per action, most customers first."""
    if listed is None:
        return None
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
    return [
        {
            "label": _label(r.rule, actions),
            "rule": _value(r.rule),
            "owner": _value(r.owner),
            "action": _value(r.action),
            "customers": int(r.customers),
            "value_at_risk": _value(r.var),
            "net_benefit": _value(r.enb),
        }
        for r in agg.itertuples(index=False)
    ]


def top_view(
    listed: pd.DataFrame | None, actions: dict[str, dict[str, Any]]
) -> list[dict[str, Any]] | None:
    if listed is None:
        return None
    top = listed.sort_values(
        ["expected_net_benefit", "customer_id"], ascending=[False, True], kind="stable"
    ).head(TOP_CUSTOMERS)
    return [
        {
            "name": _value(r.customer_name),
            "id": _value(r.customer_id),
            "manager": _value(r.account_manager),
            "lapsed": bool(gone),
            "p_churn": None if gone else _value(r.p_churn),
            "value_at_risk": _value(r.value_at_risk),
            "label": _label(r.rule, actions),
            "action": _value(r.action),
            "net_benefit": _value(r.expected_net_benefit),
            "change": _value(r.change),
            "reasons": _value(r.reasons),
        }
        for r, gone in zip(top.itertuples(index=False), _lapsed(top).tolist(), strict=True)
    ]


def _mover_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "name": _value(r.customer_name),
            "manager": _value(r.account_manager),
            "p_prev": _value(r.p_prev),
            "p_churn": _value(r.p_churn),
            "delta": _value(r.delta),
        }
        for r in frame.itertuples(index=False)
    ]


def movers_view(ctx: dict[str, Any], listed: pd.DataFrame | None) -> dict[str, Any] | None:
    """Risers, fallers and recovered customers; None when there is no previous list."""
    movers, recovered = _frame(ctx.get("movers")), _frame(ctx.get("recovered"))
    if movers is None and recovered is None:
        return None
    view: dict[str, Any] = {"counts": None, "up": None, "down": None, "recovered": None}
    if listed is not None and "change" in listed:
        view["counts"] = [(k, int((listed["change"] == k).sum())) for k in CHANGES]
    if movers is not None:
        m = movers.dropna(subset=["delta"])
        up = m[m["delta"] > 0].sort_values(
            ["delta", "customer_id"], ascending=[False, True], kind="stable"
        )
        down = m[m["delta"] < 0].sort_values(["delta", "customer_id"], kind="stable")
        view["up"], view["down"] = _mover_rows(up[:TOP_MOVERS]), _mover_rows(down[:TOP_MOVERS])
    if recovered is not None:
        rec = recovered.sort_values(["account_manager", "customer_id"], kind="stable")
        view["recovered"] = [
            {
                "name": _value(r.customer_name),
                "id": _value(r.customer_id),
                "manager": _value(r.account_manager),
            }
            for r in rec.itertuples(index=False)
        ]
    return view


def crr_chart(crr: pd.DataFrame) -> dict[str, Any] | None:
    """SVG geometry of CRR per period; the line breaks where CRR is undefined (no
    customers at the start). None when no period has a CRR."""
    vals = [
        None if missing(v) else float(v) for v in pd.to_numeric(crr["crr_pct"], errors="coerce")
    ]
    known = [v for v in vals if v is not None]
    if not known:
        return None
    lo = max(0, math.floor((min(known) - 5) / 10) * 10)
    w, h, left, right, top, base, n = 640, 220, 60, 40, 24, 180, len(vals)
    step = (w - left - right) / max(n - 1, 1)
    xs = [left + i * step if n > 1 else w / 2 for i in range(n)]

    def y(v: float) -> float:
        return round(top + (100 - v) / (100 - lo or 1) * (base - top), 1)

    grid = [
        {"y": y(g), "label": f"{g}%", "value": g}
        for g in range(lo, 101, 10 if 100 - lo <= 50 else 20)
    ]
    runs: list[list[str]] = [[]]
    for x, v in zip(xs, vals, strict=True):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(f"{x:.1f},{y(v):.1f}")
    every = math.ceil(n / 12)
    points = [
        {
            "x": round(x, 1),
            "y": None if v is None else y(v),
            "value": v,
            "period": str(period),
            "show_value": n <= 12,
            "show_period": i % every == 0,
        }
        for i, (x, v, period) in enumerate(zip(xs, vals, crr["period"], strict=True))
    ]
    return {
        "w": w,
        "h": h,
        "left": left,
        "right": w - right,
        "base": base,
        "grid": grid,
        "lines": [" ".join(r) for r in runs if len(r) > 1],
        "points": points,
    }


def crr_view(ctx: dict[str, Any]) -> dict[str, Any] | None:
    crr = _frame(ctx.get("crr"))
    if crr is None:
        return None
    names = ["customers_start", "customers_end", "new_customers", "lost_customers"]
    return {
        "chart": crr_chart(crr),
        "definition": ctx.get("crr_definition") or crr.attrs.get("definition") or "",
        # the definition's wording in the page's language (crr.definition's, translated)
        "active_within_days": ctx.get("active_within_days"),
        "rows": [
            {
                "period": str(r["period"]),
                "counts": [_value(r.get(c)) for c in names],
                "crr": _value(r.get("crr_pct")),
                "churn": _value(r.get("churn_rate_pct")),
            }
            for r in crr.to_dict("records")
        ],
    }


def managers_view(ctx: dict[str, Any], scored: pd.DataFrame | None) -> list[dict[str, Any]]:
    """One row per account manager: their manual list, what changed in it (None without a
    previous list), links to their page and files (``manager_files``: name → {page,
    workbook, csv}, relative paths)."""
    files: dict[str, dict[str, str]] = ctx.get("manager_files") or {}
    listed = None if scored is None else _frame(scored[scored["on_list"].astype(bool)])
    recovered = _frame(ctx.get("recovered"))
    compared = bool((ctx.get("summary") or {}).get("previous_list")) or (
        recovered is not None or _frame(ctx.get("movers")) is not None
    )
    names = set(files)
    if listed is not None:
        names |= set(listed["account_manager"].dropna().astype(str))
    rows = []
    for name in sorted(names):
        mine = listed[listed["account_manager"] == name] if listed is not None else pd.DataFrame()
        manual = mine[mine["owner"].isin(MANUAL)] if len(mine) else mine
        change = manual["change"] if "change" in manual else pd.Series(dtype=str)
        rows.append(
            {
                "name": name,
                "manual": len(manual),
                "automated": len(mine) - len(manual),
                "value_at_risk": float(mine["value_at_risk"].sum()) if len(mine) else 0.0,
                "net_benefit": float(mine["expected_net_benefit"].sum()) if len(mine) else 0.0,
                "new": int((change == "new").sum()) if compared else None,
                "escalated": int((change == "escalated").sum()) if compared else None,
                "recovered": (
                    int((recovered["account_manager"] == name).sum())
                    if recovered is not None
                    else 0
                )
                if compared
                else None,
                "links": {k: href(v) for k, v in files.get(name, {}).items()},
            }
        )
    return rows


def _uplift_row(r: Any, actions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    everything = r.action == uplift.ALL_ACTIONS
    return {
        "label": None if everything else _label(r.action, actions),
        "rule": None if everything else str(r.action),
        "lists": int(r.list_dates),
        "treated": int(r.n_treated),
        "control": int(r.n_control),
        "customers": int(r.n_treated) + int(r.n_control),
        "churn_treated": _value(r.churn_rate_treated),
        "churn_control": _value(r.churn_rate_control),
        "save_rate": _value(r.save_rate),
        "low": _value(r.save_rate_low),
        "high": _value(r.save_rate_high),
        "assumed": _value(r.assumed_save_rate),
        "verdict": uplift.verdict_code(str(r.verdict)),
        "params_key": str(r.params_key),
        "suggested": _value(r.suggested_save_rate),
        "list_date": _value(r.list_date) or None,
        "window_end": _value(r.window_end) or None,
        "outcomes_recorded": int(r.outcomes_recorded),
        "reached": int(r.reached),
        "entries_needed": int(r.entries_needed),
        "strip": uplift.strip_geometry(
            r.save_rate, r.save_rate_low, r.save_rate_high, r.assumed_save_rate
        ),
    }


def uplift_view(ctx: dict[str, Any]) -> dict[str, Any]:
    """The measured save rates (``ctx["uplift"]``, :func:`churnguard.feedback.measured_at`):
    one row per action pooled over list dates and one for all actions, the advice (which
    ``params.yaml`` key to set to what, :func:`churnguard.uplift.advice_rows`) and the lists
    still in their label window. ``status`` ``off`` without a ledger (or without
    ``ctx["uplift"]``)."""
    u = ctx.get("uplift") or {"status": "off"}
    actions = ctx.get("actions") or {}
    table = u.get("table")
    table = table if isinstance(table, pd.DataFrame) else pd.DataFrame(columns=uplift.COLUMNS)
    pooled = table[table["scope"] == "pooled"]
    per_action = pooled[pooled["action"] != uplift.ALL_ACTIONS]
    pending = list(u.get("pending") or [])
    return {
        "status": u.get("status", "off"),
        "horizon_days": u.get("horizon_days", ctx.get("horizon_days")),
        "control_share": u.get("control_share"),
        "confidence": u.get("confidence"),
        "last_transaction": u.get("last_transaction"),
        "min_churners": uplift.MIN_CHURNERS,
        "rows": [_uplift_row(r, actions) for r in per_action.itertuples(index=False)],
        "total": [
            _uplift_row(r, actions)
            for r in pooled[pooled["action"] == uplift.ALL_ACTIONS].itertuples(index=False)
        ],
        "advice": [
            _uplift_row(r, actions) for r in uplift.advice_rows(table).itertuples(index=False)
        ],
        "pending": pending,
        "next_ready": min((p["ready_on"] for p in pending), default=None),
        "waiting": sum(int(p["entries"]) for p in pending),
    }


def uplift_page_view(
    table: pd.DataFrame, meta: dict[str, Any], actions: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What ``uplift.html`` shows: :func:`uplift_view` of the whole table (``status``
    ``measured`` once a list is measured, else ``pending``/``empty``) and one row per action
    and list date. ``meta``: last_transaction, horizon_days, control_share, confidence,
    pending (list of {list_date, ready_on, entries}); ``actions``: the labels by rule name
    (:func:`churnguard.labels.action_catalogue`; the rule name humanised without)."""
    pending = list(meta.get("pending") or [])
    status = "measured" if len(table) else "pending" if pending else "empty"
    ctx = {"uplift": {**meta, "status": status, "table": table, "pending": pending}}
    ctx["actions"] = actions or {}
    per_list = table[table["scope"] == "list"] if len(table) else table
    return {
        "uplift": uplift_view(ctx),
        "per_list": [_uplift_row(r, ctx["actions"]) for r in per_list.itertuples(index=False)],
    }


def summary_view(ctx: dict[str, Any]) -> dict[str, Any]:
    """Everything ``report.html`` shows, computed (the template only lays it out)."""
    scored = _frame(ctx.get("scored"))
    listed = None if scored is None else _frame(scored[scored["on_list"].astype(bool)])
    actions = ctx.get("actions") or {}
    return {
        "header": header_view(ctx),
        "cards": cards_view(ctx.get("summary") or {}),
        "managers": managers_view(ctx, scored),
        "histogram": histogram_view(scored),
        "value_at_risk": value_at_risk_view(scored),
        "actions": actions_view(listed, actions),
        "top": top_view(listed, actions),
        "top_n": TOP_CUSTOMERS,
        "movers": movers_view(ctx, listed),
        "crr": crr_view(ctx),
        "uplift": uplift_view(ctx),
    }


def _page(template: str, ctx: dict[str, Any], view: dict[str, Any]) -> str:
    fmt = page_format(ctx)
    page = environment(fmt.language, fmt).get_template(template)
    return page.render(view=view, fmt=fmt)


@timed("render uplift.html")
def render_uplift_html(
    table: pd.DataFrame,
    meta: dict[str, Any],
    actions: dict[str, dict[str, Any]] | None = None,
    reader: dict[str, Any] | None = None,
) -> str:
    """``uplift.html`` (``churnguard report uplift``): the measured save rates of
    :func:`churnguard.uplift.uplift_table` on one self-contained page, through the same
    templates as report.html's section (``_uplift.html.j2``) with the outcomes recorded,
    per list date, the lists still waiting and how to read it; escaped, byte-identical for
    identical input. ``reader``: the page's language, calendar, digits and currency as
    :func:`page_format` reads them (``report.*``; English when omitted)."""
    return _page("uplift.html.j2", dict(reader or {}), uplift_page_view(table, meta, actions))


@timed("render report.html")
def render_html(ctx: dict[str, Any]) -> str:
    """``report.html``: the whole week on one self-contained page."""
    return _page("report.html.j2", ctx, summary_view(ctx))


# -- one page per account manager --------------------------------------------------------


def _due(x: Any) -> str | None:
    return None if missing(x) or x == "" else str(x)


def manager_view(ctx: dict[str, Any]) -> dict[str, Any]:
    """A manager's page: their manual actions in rank order with due dates ("do these
    first"), what changed since the previous list, the actions' full wording, their files.

    ``ctx["list"]`` is the manager's list as written to their CSV (ranked rows, then the
    customers who left the list since last time, with an empty rank)."""
    frame = ctx.get("list")
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()
    actions = ctx.get("actions") or {}
    rank = pd.to_numeric(frame["rank"], errors="coerce") if "rank" in frame else pd.Series()
    ranked = frame[rank.notna() & (rank > 0)] if len(frame) else frame
    left = frame[~(rank.notna() & (rank > 0))] if len(frame) else frame
    first = [
        {
            "rank": int(r["rank"]),
            "due": _due(r.get("due_date")),
            "name": _value(r.get("customer_name")),
            "id": _value(r.get("customer_id")),
            "risk_pct": _value(r.get("churn_risk_pct")),
            "band": _value(r.get("risk_band")),
            "value_at_risk": _value(r.get("value_at_risk")),
            "net_benefit": _value(r.get("expected_net_benefit")),
            "label": _label(r.get("action"), actions),
            "channel": _value(r.get("channel")),
            "reasons": _value(r.get("reasons")),
            "change": _value(r.get("change")),
        }
        for r in ranked.to_dict("records")
    ]
    changes: dict[str, list[dict[str, Any]]] = {}
    for code in ("new", "escalated", "de-escalated"):
        changes[code] = [row for row in first if row["change"] == code]
    for code in ("recovered", "off list"):
        changes[code] = [
            {
                "name": _value(r.get("customer_name")),
                "id": _value(r.get("customer_id")),
                "last_purchase": _value(r.get("last_purchase_date")),
            }
            for r in left.to_dict("records")
            if r.get("change") == code
        ]
    used = [str(a) for a in ranked["action"].dropna().unique()] if "action" in ranked else []
    legend = [
        {"label": info["label"], "action": info["action"], "channel": info["channel"]}
        for name, info in actions.items()
        if name in used
    ]
    files = ctx.get("files") or {}
    return {
        "header": header_view(ctx),
        "manager": ctx.get("manager"),
        "links": {k: href(v) for k, v in files.items()},
        "first": first,
        "figures": {
            "manual": len(first),
            "automated": ctx.get("automated"),
            "value_at_risk": float(
                pd.to_numeric(ranked.get("value_at_risk"), errors="coerce").sum()
            )
            if len(ranked)
            else 0.0,
            "net_benefit": float(
                pd.to_numeric(ranked.get("expected_net_benefit"), errors="coerce").sum()
            )
            if len(ranked)
            else 0.0,
        },
        "due_within_days": ctx.get("due_within_days"),
        "previous_list": ctx.get("previous_list"),
        "changes": changes,
        "legend": legend,
    }


@timed("render manager pages")
def render_manager_html(ctx: dict[str, Any]) -> str:
    """``by_manager/<name>.html``: one account manager's week."""
    return _page("manager.html.j2", ctx, manager_view(ctx))
