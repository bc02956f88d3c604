"""Backtest logic: split rules, the head-to-head tables and the variant comparisons.

Pure functions on dates, arrays and frames (no disk, database or MLflow), shared by the
``churnguard backtest`` command (:mod:`churnguard.backtest_run`, which runs the pipeline at
past dates) and the benchmarks (``benchmarks/cdnow.py``, ``benchmarks/tuning.py``).

**Split rules.** ``train_model`` splits labelled cutoffs by time: test = the latest cutoff
(as_of − h), validation = the one before (test − step), training = cutoffs whose h-day
label window ends by the validation cutoff. So the latest training cutoff is
``as_of − 2h − step``: a long horizon may not fit the history directly, and
:mod:`churnguard.horizon` chains a short model over it instead (the chain functions are
re-exported here).

**Comparisons.** Every scorer is evaluated on the same bootstrap resamples of customers
(:func:`churnguard.stats.resample_counts`), so the differences are paired; over several
dates, resample r of every date is averaged into one draw of the mean lead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from churnguard.config import FeaturesParams
from churnguard.feature_defs import plan_cutoffs
from churnguard.fitting import plan_split
from churnguard.horizon import (  # noqa: F401 - re-exported
    P_FLOOR,
    chain_cutoffs,
    chain_no_purchase,
    chain_step_weights,
    chain_steps,
)
from churnguard.metrics import lift_at
from churnguard.stats import (
    bootstrap_metric,
    percentile_ci,
    point_metric,
    rank01,
    resample_counts,
)

HorizonFit = Literal["no_fit", "acquisition_only", "fits"]
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- split rules


@dataclass(frozen=True)
class BacktestSplit:
    """The cutoff grid for training at ``as_of`` on an h-day label, and how train splits it."""

    as_of: dt.date
    horizon_days: int
    step_days: int
    cutoffs: list[dt.date]  # every labelled cutoff, oldest first (what the snapshots hold)
    train_cutoffs: list[dt.date]
    valid_cutoff: dt.date
    test_cutoff: dt.date


def latest_training_cutoff(as_of: dt.date, horizon_days: int, step_days: int) -> dt.date:
    """The latest cutoff train can fit on: test = as_of − h, validation = test − step,
    training label windows end by validation, so training cutoffs are ≤ as_of − 2h − step."""
    return as_of - dt.timedelta(days=2 * horizon_days + step_days)


def horizon_fit(
    as_of: dt.date,
    horizon_days: int,
    step_days: int,
    data_start: dt.date,
    acquisition_end: dt.date | None = None,
) -> tuple[HorizonFit, dt.date]:
    """Whether an h-day model can be trained at ``as_of`` on data from ``data_start``.

    ``no_fit``: the latest training cutoff is on or before the first day of data.
    ``acquisition_only``: it is on or before ``acquisition_end`` (the cohort is still being
    acquired, so training tenures are unlike the scored ones). Returns (status, latest).
    """
    latest = latest_training_cutoff(as_of, horizon_days, step_days)
    if latest <= data_start:
        return "no_fit", latest
    if acquisition_end is not None and latest <= acquisition_end:
        return "acquisition_only", latest
    return "fits", latest


def plan_backtest_split(
    data_min: dt.date, as_of: dt.date, horizon_days: int, step_days: int
) -> BacktestSplit:
    """As many ``step_days``-spaced labelled cutoffs as fit in ``(data_min, as_of − h]``, split
    as ``train_model`` splits them. Raises :class:`~churnguard.errors.DataError` when the grid
    or the split does not fit (too few cutoffs, no training label window before validation).
    """
    last = as_of - dt.timedelta(days=horizon_days)
    n = max(1, ((last - data_min).days - 1) // step_days + 1)
    fp = FeaturesParams(
        as_of=as_of,
        horizon_days=horizon_days,
        cutoff_step_days=step_days,
        n_cutoffs=n,
        horizon_mode="direct",
    )
    cutoffs = plan_cutoffs(data_min, as_of, fp)[1]
    split = plan_split(cutoffs, horizon_days, step_days)
    return BacktestSplit(
        as_of=as_of,
        horizon_days=horizon_days,
        step_days=step_days,
        cutoffs=cutoffs,
        train_cutoffs=split.train_cutoffs,
        valid_cutoff=split.valid_cutoff,
        test_cutoff=split.test_cutoff,
    )


def check_pseudo_splits(splits: Sequence[tuple[dt.date, int]], cal_end: dt.date) -> None:
    """Raise ValueError if a pseudo-split (end, horizon) reads past ``cal_end``: design
    choices are made inside the calibration period, never on the holdout."""
    for end, horizon in splits:
        if end + dt.timedelta(days=horizon) > cal_end:
            raise ValueError(
                f"pseudo-split {end} + {horizon} days ends after the calibration end {cal_end}"
            )


# --------------------------------------------------------------------------- chaining
# (the chain lives in churnguard.horizon, which scoring uses; re-exported here)

# --------------------------------------------------------------------------- comparing scorers


def point_metrics(y: np.ndarray, score: np.ndarray, probability: bool) -> dict[str, float | None]:
    """ROC-AUC, PR-AUC and (for probabilities only) Brier on the sample."""
    return {
        "roc_auc": point_metric("roc_auc", score, y),
        "pr_auc": point_metric("pr_auc", score, y),
        "brier": point_metric("brier", score, y) if probability else None,
    }


def compare_scorers(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    probability: Mapping[str, bool],
    counts: Sequence[np.ndarray],
    baselines: Sequence[str],
    model: str = "churnguard",
) -> dict[str, Any]:
    """Every scorer's metrics with bootstrap intervals, and ``model`` against the best baseline.

    ``counts`` are shared resamples (:func:`churnguard.stats.resample_counts`), so the
    differences are paired. The best baseline is chosen per metric on the sample (Brier:
    among the baselines that give probabilities; first listed wins a tie). Non-probability
    scores get a lift through their rank (:func:`churnguard.stats.rank01`).
    """
    rows: dict[str, dict[str, Any]] = {}
    boot: dict[str, dict[str, np.ndarray]] = {}
    for name, s in scores.items():
        prob = probability[name]
        b_auc = bootstrap_metric("roc_auc", s, y, counts)
        b_ap = bootstrap_metric("pr_auc", s, y, counts)
        boot[name] = {"roc_auc": b_auc, "pr_auc": b_ap}
        row: dict[str, Any] = {
            "roc_auc": point_metric("roc_auc", s, y),
            "roc_auc_ci95": list(percentile_ci(b_auc)),
            "pr_auc": point_metric("pr_auc", s, y),
            "pr_auc_ci95": list(percentile_ci(b_ap)),
            "brier": None,
            "lift_top10": lift_at(y, s if prob else rank01(s), 0.1),
        }
        if prob:
            row["brier"] = point_metric("brier", s, y)
            b_br = bootstrap_metric("brier", s, y, counts)
            boot[name]["brier"] = b_br
            row["brier_ci95"] = list(percentile_ci(b_br))
            row["mean_prediction"] = float(s.mean())
        rows[name] = row
    best: dict[str, Any] = {}
    for metric, better in (("roc_auc", max), ("pr_auc", max), ("brier", min)):
        pool = [n for n in baselines if rows[n][metric] is not None]
        if not pool or rows[model][metric] is None:
            continue
        winner = better(pool, key=lambda n, m=metric: rows[n][m])
        diff = boot[model][metric] - boot[winner][metric]
        wins = diff > 0 if metric != "brier" else diff < 0
        best[metric] = {
            "baseline": winner,
            "baseline_value": rows[winner][metric],
            "churnguard_value": rows[model][metric],
            "difference": rows[model][metric] - rows[winner][metric],
            "difference_ci95": list(percentile_ci(diff)),
            "share_of_resamples_churnguard_better": float(wins.mean()),
        }
    return {
        "n": int(y.size),
        "churn_rate": float(y.mean()),
        "base_rate_brier_oracle": float(y.mean() * (1 - y.mean())),
        "scorers": rows,
        "vs_best_baseline": best,
    }


def select_variant(
    splits: Sequence[Mapping[str, Mapping[str, Any]]], prefix: str = "chain_"
) -> tuple[dict[str, float], str]:
    """Mean ROC-AUC (4 decimals) of every ``prefix`` variant scored on every pseudo-split,
    and the best one (ties: the larger name). ``splits[i]`` maps scorer → its metrics."""
    variants = sorted({k for s in splits for k in s if k.startswith(prefix)})
    mean_auc = {
        v: round(float(np.mean([s[v]["roc_auc"] for s in splits])), 4)
        for v in variants
        if all(v in s for s in splits)
    }
    if not mean_auc:
        raise ValueError(f"no '{prefix}' variant was scored on every pseudo-split")
    return mean_auc, max(mean_auc, key=lambda v: (mean_auc[v], v))


# --------------------------------------------------------------------------- churnguard backtest
#
# The whole pipeline at a past as-of date D and a target window W: features from the
# canonical transactions with every line after D hidden (no ingest change), the plan, the
# model and its calibration exactly as `features` + `train` fit them, scoring as `score`
# scores (chained when the plan chains), and the realised outcome: no purchase in (D, D+W].

PROBABILITY = {
    "model": True,
    "model_evaluated": True,
    "logreg": True,
    "recency": False,
    "rfm": False,
    "bg_expected": False,
    "bg_no_purchase": True,
    "pn_expected": False,
    "pn_no_purchase": True,
}
LABELS = {
    "model": "churnguard (LightGBM, as shipped)",
    "model_evaluated": "churnguard, evaluated fit (before the refit)",
    "logreg": "logistic regression, same features",
    "recency": "days since last purchase",
    "rfm": "RFM quintile sum (15 − R − F − M)",
    "bg_expected": "BG/NBD, expected purchases in the window",
    "bg_no_purchase": "BG/NBD, P(no purchase in the window)",
    "pn_expected": "Pareto/NBD, expected purchases in the window",
    "pn_no_purchase": "Pareto/NBD, P(no purchase in the window)",
}
BASELINE_NAMES = (
    "logreg",
    "recency",
    "rfm",
    "bg_expected",
    "bg_no_purchase",
    "pn_expected",
    "pn_no_purchase",
)
PARETO = ("pn_expected", "pn_no_purchase")
METRICS = ("roc_auc", "pr_auc", "brier")
BOOTSTRAP_SEED = 20250
RESULTS_JSON, RESULTS_MD, RESULTS_PNG = "backtest.json", "backtest.md", "backtest.png"


@dataclass
class DateRun:
    """One as-of date: the customers scored (active at D), the outcome and every score."""

    as_of: dt.date
    window_days: int
    customers: np.ndarray
    y: np.ndarray
    scores: dict[str, np.ndarray]
    info: dict[str, Any]


def parse_window(text: str) -> int:
    """``273d``, ``39w`` or ``273`` → days (ConfigError-free: ValueError on anything else)."""
    t = text.strip().lower()
    mult = 7 if t.endswith("w") else 1
    t = t[:-1] if t[-1:] in ("d", "w") else t
    if not t.isdigit() or int(t) < 1:
        raise ValueError(f"window {text!r} is not a number of days (273d) or weeks (39w)")
    return int(t) * mult


def parse_dates(text: str) -> list[dt.date]:
    """``D1,D2,...`` or a grid ``START..END/STEP`` (STEP in days or weeks, END included)."""
    text = text.strip()
    if ".." in text:
        span, _, step = text.partition("/")
        start, _, end = span.partition("..")
        first, last = dt.date.fromisoformat(start.strip()), dt.date.fromisoformat(end.strip())
        days = parse_window(step or "30d")
        if last < first:
            raise ValueError(f"grid {text!r} ends before it starts")
        out, d = [], first
        while d <= last:
            out.append(d)
            d += dt.timedelta(days=days)
        return out
    return sorted({dt.date.fromisoformat(p.strip()) for p in text.split(",") if p.strip()})


def _best(rows: Mapping[str, Mapping[str, Any]], names: Sequence[str], metric: str) -> str | None:
    pool = [n for n in names if n in rows and rows[n].get(metric) is not None]
    if not pool:
        return None
    sign = -1.0 if metric == "brier" else 1.0
    return max(pool, key=lambda n: (sign * rows[n][metric], -list(names).index(n)))


def compare_date(
    run: DateRun, counts: Sequence[np.ndarray], confidence: float, model: str = "model"
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Every scorer's metrics with intervals, and the model's paired leads at one date:
    over the best baseline, over Pareto/NBD (best of its two scores) and over each
    baseline. Returns (table, bootstrap values per scorer and metric)."""
    boot: dict[str, dict[str, np.ndarray]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, s in run.scores.items():
        prob = PROBABILITY.get(name, True)
        row: dict[str, Any] = {"label": LABELS.get(name, name), "probability": prob}
        boot[name] = {}
        for metric in METRICS:
            if metric == "brier" and not prob:
                row[metric] = None
                continue
            values = bootstrap_metric(metric, s, run.y, counts)
            boot[name][metric] = values
            row[metric] = point_metric(metric, s, run.y)
            row[f"{metric}_ci"] = list(percentile_ci(values, confidence))
        row["lift_top10"] = lift_at(run.y, s if prob else rank01(s), 0.1)
        if prob:
            row["mean_prediction"] = float(np.mean(s))
        rows[name] = row
    leads: dict[str, Any] = {}
    present = [b for b in BASELINE_NAMES if b in rows]
    for metric in METRICS:
        if rows.get(model, {}).get(metric) is None:
            continue
        targets = {"best_baseline": _best(rows, present, metric)}
        targets["pareto_nbd"] = _best(rows, [b for b in PARETO if b in rows], metric)
        for b in present:
            targets[b] = b
        out = {}
        for key, other in targets.items():
            if other is None or metric not in boot[other]:
                continue
            diff = boot[model][metric] - boot[other][metric]
            sign = -1.0 if metric == "brier" else 1.0  # lead > 0: the model is better
            lo, hi = percentile_ci(sign * diff, confidence)
            out[key] = {
                "baseline": other,
                "lead": sign * (rows[model][metric] - rows[other][metric]),
                "lead_ci": [lo, hi],
                "share_better": float(np.mean(sign * diff > 0)),
            }
        leads[metric] = out
    table = {
        **run.info,
        "n": int(run.y.size),
        "scorers": rows,
        "leads": leads,
        "model_best_brier": _model_best_brier(rows, model),
    }
    return table, boot


def _model_best_brier(rows: Mapping[str, Mapping[str, Any]], model: str) -> bool | None:
    others = [r["brier"] for n, r in rows.items() if n != model and n != "model_evaluated"]
    others = [b for b in others if b is not None]
    if rows.get(model, {}).get("brier") is None or not others:
        return None
    return bool(rows[model]["brier"] < min(others))


def pooled_leads(
    dates: Sequence[dict[str, Any]],
    boots: Sequence[dict[str, dict[str, np.ndarray]]],
    confidence: float,
    model: str = "model",
) -> dict[str, Any]:
    """The model's lead averaged over the dates, with a paired interval: resample r of
    every date is drawn with the same seed index, and the mean over dates of the per-date
    differences on resample r is one draw of the mean lead. Baselines are named per
    date (the best baseline may differ between dates)."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        per_key: dict[str, list[np.ndarray]] = {}
        point: dict[str, list[float]] = {}
        for table, boot in zip(dates, boots, strict=True):
            for key, lead in table["leads"].get(metric, {}).items():
                diff = boot[model][metric] - boot[lead["baseline"]][metric]
                sign = -1.0 if metric == "brier" else 1.0
                per_key.setdefault(key, []).append(sign * diff)
                point.setdefault(key, []).append(lead["lead"])
        out[metric] = {
            key: {
                "mean_lead": float(np.mean(point[key])),
                "mean_lead_ci": list(percentile_ci(np.mean(np.vstack(v), axis=0), confidence)),
                "dates": len(v),
            }
            for key, v in per_key.items()
            if len(v) == len(dates)
        }
    means = {}
    for name in dates[0]["scorers"]:
        means[name] = {
            m: float(np.mean([d["scorers"][name][m] for d in dates]))
            if all(d["scorers"].get(name, {}).get(m) is not None for d in dates)
            else None
            for m in METRICS
        }
    return {"leads": out, "mean_metrics": means}


def _rounded(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, dict):
        return {str(k): _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v, digits) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return None if not np.isfinite(x) else round(x, digits) + 0.0
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _console_line(table: Mapping[str, Any]) -> str:
    m = table["scorers"]["model"]
    lead = table["leads"].get("roc_auc", {}).get("best_baseline")
    txt = f"{table['as_of']}: model ROC-AUC {m['roc_auc']:.4f}, Brier {m['brier']:.4f}"
    if lead:
        lo, hi = lead["lead_ci"]
        txt += f"; lead over {lead['baseline']} {lead['lead']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
    return txt


def _f(x: float | None, d: int = 3) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def _ci(row: Mapping[str, Any], metric: str, d: int = 3) -> str:
    if row.get(metric) is None:
        return "–"
    lo, hi = row[f"{metric}_ci"]
    return f"{row[metric]:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def _lead(lead: Mapping[str, Any] | None, d: int = 4) -> str:
    if not lead:
        return "–"
    lo, hi = lead["lead_ci"]
    return f"{lead['lead']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def markdown(result: Mapping[str, Any]) -> str:
    """The backtest as Markdown: one table per date, then the pooled leads."""
    bt = result["backtest"]
    pct = f"{100 * bt['confidence']:.0f}%"
    out = [
        f"# Backtest: {bt['window_days']}-day window, as of {', '.join(bt['dates'])}",
        "",
        f"Outcome: no purchase in (as-of, as-of + {bt['window_days']} days]. Customers: those "
        "active (not lapsed) at the as-of date. Each date runs the whole pipeline on the "
        "transactions up to it (features, plan, model, calibration, scoring as shipped). "
        f"Intervals: {pct} paired bootstrap over customers ({bt['resamples']} resamples, the "
        "same resamples for every method). Lead = how much better churnguard is (ROC-AUC and "
        "PR-AUC: higher; Brier: lower), so a lead above 0 favours churnguard.",
        "",
    ]
    for t in result["dates"]:
        plan = t["plan"]
        how = (
            f"chained: {plan['label_horizon_days']}-day model over {plan['target_horizon_days']} days"
            if plan["mode"] == "chained"
            else f"direct {plan['target_horizon_days']}-day model"
        )
        out += [
            f"## As of {t['as_of']}",
            "",
            f"{t['n']:,} customers, churn rate {100 * t['churn_rate']:.1f}%; {how}, "
            f"{t['shipped_fit']} shipped, calibrated on {', '.join(t['calibration_dates'])}.",
            "",
            "| method | ROC-AUC | PR-AUC | Brier | top-decile lift |",
            "|---|---|---|---|---|",
        ]
        for name, row in t["scorers"].items():
            label = f"**{row['label']}**" if name == "model" else row["label"]
            out.append(
                f"| {label} | {_ci(row, 'roc_auc')} | {_ci(row, 'pr_auc')} | "
                f"{_ci(row, 'brier', 4)} | {_f(row['lift_top10'], 2)} |"
            )
        out += ["", "| churnguard lead over | ROC-AUC | PR-AUC | Brier |", "|---|---|---|---|"]
        for key in ("best_baseline", "pareto_nbd"):
            cells = []
            for metric in METRICS:
                lead = t["leads"].get(metric, {}).get(key)
                name = f" ({lead['baseline']})" if lead else ""
                cells.append(_lead(lead, 4) + name)
            out.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
        out.append("")
    pooled = result["pooled"]["leads"]
    out += [
        f"## Over all {len(result['dates'])} date(s)",
        "",
        "Mean over the dates of churnguard's lead (the baseline named per date), with a paired "
        "interval from the same resamples:",
        "",
        "| lead over | ROC-AUC | PR-AUC | Brier |",
        "|---|---|---|---|",
    ]
    keys = [k for k in ("best_baseline", "pareto_nbd", *BASELINE_NAMES) if k in pooled["roc_auc"]]
    for key in keys:
        cells = []
        for metric in METRICS:
            p = pooled.get(metric, {}).get(key)
            cells.append(
                "–"
                if not p
                else f"{p['mean_lead']:+.4f} [{p['mean_lead_ci'][0]:+.4f}, {p['mean_lead_ci'][1]:+.4f}]"
            )
        out.append(f"| {LABELS.get(key, key.replace('_', ' '))} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def compare_variants(
    runs: Mapping[str, Sequence[DateRun]],
    reference: str,
    resamples: int,
    confidence: float = 0.95,
    score: str = "model",
) -> dict[str, Any]:
    """Each variant's ``score`` against the ``reference`` variant's, paired on the same
    customers and resamples at every date, then averaged over the dates.

    ``runs[v][i]`` is variant v at date i (the same dates, customers and outcomes for every
    variant). Returns, per variant: per-date metrics and, per metric, the mean difference
    variant − reference made "higher is better" (Brier: reference − variant) with a paired
    interval (resample r of every date, averaged over dates).
    """
    ref = runs[reference]
    out: dict[str, Any] = {}
    counts = [resample_counts(r.y.size, resamples, BOOTSTRAP_SEED) for r in ref]
    ref_boot = [
        {m: bootstrap_metric(m, r.scores[score], r.y, c) for m in METRICS}
        for r, c in zip(ref, counts, strict=True)
    ]
    for name, variant in runs.items():
        if len(variant) != len(ref):
            raise ValueError(f"variant {name} has {len(variant)} dates, {reference} {len(ref)}")
        per_date, diffs = [], {m: [] for m in METRICS}
        for r, v, c, rb in zip(ref, variant, counts, ref_boot, strict=True):
            if not (np.array_equal(r.customers, v.customers) and np.array_equal(r.y, v.y)):
                raise ValueError(f"variant {name} scored other customers at {v.as_of}")
            row = {"as_of": str(v.as_of), "window_days": v.window_days}
            for m in METRICS:
                row[m] = point_metric(m, v.scores[score], v.y)
                sign = -1.0 if m == "brier" else 1.0
                diffs[m].append(sign * (bootstrap_metric(m, v.scores[score], v.y, c) - rb[m]))
                row[f"{m}_gain"] = sign * (row[m] - point_metric(m, r.scores[score], r.y))
            per_date.append(row)
        gains = {}
        for m in METRICS:
            mean = np.mean(np.vstack(diffs[m]), axis=0)
            gains[m] = {
                "mean_gain": float(np.mean([row[f"{m}_gain"] for row in per_date])),
                "mean_gain_ci": list(percentile_ci(mean, confidence)),
            }
        out[name] = {"dates": per_date, "gain_vs_reference": gains}
    return out
