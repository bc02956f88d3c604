"""EXPERIMENT (not part of the pipeline): a discrete-time hazard model against the chain.

Usage: ``python benchmarks/survival_experiment.py [--resamples 1000] [--render-only]``
(needs the bench extras: pymc-marketing for Pareto/NBD). Writes
``benchmarks/results/survival_cdnow.json`` and renders ``docs/ablation-survival.md`` from
it (``--render-only``: only the page). Nothing in ``src/churnguard`` uses this file.

Question: churnguard scores a long window W by chaining a 21-day LightGBM model over
"calibration-only" snapshots advanced in time (:mod:`churnguard.horizon`). Would one
person-period (discrete-time hazard) LightGBM do better?

Measured only on the three CDNOW pseudo-splits ``benchmarks/tuning.py`` uses for its
choices (as of 1997-04-30 + 153 d, 1997-05-31 + 122 d, 1997-06-30 + 92 d; every outcome
window ends before 1997-10-01), never on a reported window.

The hazard model at as-of date A, step s = the plan's base horizon (21 days):

- labelled cutoffs c every 7 days (the plan's base step) from A − s back while c is after
  the first day of data (and within the plan's span); features = the snapshot at c (the
  pipeline's feature SQL: only lines dated ≤ c) plus ``elapsed_days = k·s``;
- one row per (customer, c, k), k = 0..K−1, with c + (k+1)·s ≤ A, only while the customer
  is at risk (no purchase day in (c, c + k·s]); target = no purchase day in
  (c + k·s, c + (k+1)·s] (the pipeline's ``churned`` label, so the model gives 1 − h_k);
  the labels are the feature SQL's own (``churned`` at horizon k·s and (k+1)·s);
- LightGBM with the CDNOW preset's tree parameters (``configs/cdnow.yaml`` through
  :func:`churnguard.fitting.lgb_params`, the model features of
  :func:`churnguard.fitting.model_features` + ``elapsed_days``), early-stopped out of time:
  training rows are those whose step window ends by v = A − s − 7 (the plan's validation
  cutoff), validation rows those whose step window ends in (v, A]; then refitted on every
  row with the selected number of rounds (as ``train.refit`` does);
- prediction at A for the window W: P(no purchase in W) = Π_k (1 − h_k)^(w_k) from the
  snapshot at A with elapsed_days = k·s (:func:`churnguard.horizon.chain_no_purchase`:
  w_k = 1, a final partial step r/s).

Two hazard variants, both reported: ``hazard`` (the booster's probabilities as they are:
binary log-loss) and ``hazard_calibrated`` (the per-step probability calibrated as the
pipeline calibrates its base model, ``train.calibration`` auto, on the validation rows'
predictions of the early-stopped fit, then applied to the refit's steps). A calibration of
the final W-window probability on realised W outcomes is impossible here: no W window
ending by A starts after the first day of data (as for the pipeline's chain calibration).

Compared on the same customers (active at A) with the defaults' shipped model
(:func:`churnguard.backtest_run.evaluate_date` with the preset, as ``tuning.py``'s
``defaults`` variant) and Pareto/NBD (P(no purchase in W); expected purchases for
ROC-AUC too), paired bootstrap over customers per split
(:func:`churnguard.stats.paired_bootstrap_ci`) and pooled as the mean over the splits
(:func:`churnguard.backtest.compare_variants`, the same resamples).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnguard import backtest as B
from churnguard import backtest_run as R
from churnguard.calibration import fit_calibrator
from churnguard.config import Params
from churnguard.engines.duckdb import data_range, snapshot_frame
from churnguard.fitting import lgb_params, model_features
from churnguard.horizon import chain_no_purchase, chain_steps, chained_cutoffs
from churnguard.io import write_json_atomic, write_text_atomic
from churnguard.stats import paired_bootstrap_ci

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tuning import REPORTED_FROM, SPLITS, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "benchmarks" / "results" / "survival_cdnow.json"
SENSITIVITY = ROOT / "benchmarks" / "results" / "survival_cdnow_cutoff.json"
DOC = ROOT / "docs" / "ablation-survival.md"
COMMAND = "python benchmarks/survival_experiment.py --resamples 1000"
ELAPSED = "elapsed_days"
HAZARDS = ("hazard", "hazard_calibrated")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def person_period(
    params: Params, tx: Path, as_of: dt.date, data_min: dt.date
) -> tuple[pd.DataFrame, list[str], int]:
    """The (customer, cutoff, step) rows at risk whose step window ends by ``as_of``."""
    fp = params.features
    s = fp.base_horizon_days
    cutoffs = chained_cutoffs(as_of, data_min, fp)  # the chained plan's grid
    k_max = (as_of - cutoffs[0]).days // s
    lost = fp.lost_after_days
    # churned at horizon j·s = no purchase day in (c, c + j·s] (the pipeline's label SQL)
    snaps = {
        j: snapshot_frame(tx, cutoffs[0], lost, params.engine, j * s, cutoffs)
        for j in range(1, k_max + 1)
    }
    base = snaps[1]
    base = base[base["lapsed"] == 0].reset_index(drop=True)
    features = model_features(params.train, base.columns)
    key = ["cutoff_date", "customer_id"]
    none = {
        j: f.set_index(key)["churned"].reindex(pd.MultiIndex.from_frame(base[key]))
        for j, f in snaps.items()
    }
    parts = []
    for k in range(k_max):
        end = pd.to_datetime(base["cutoff_date"]) + pd.Timedelta(days=(k + 1) * s)
        fits = (end <= pd.Timestamp(as_of)).to_numpy()
        at_risk = np.ones(len(base), bool) if k == 0 else (none[k].to_numpy() == 1)
        keep = fits & at_risk
        part = base.loc[keep, key + features].copy()
        part[ELAPSED] = float(k * s)
        part["churned"] = none[k + 1].to_numpy()[keep].astype(int)
        part["step_end"] = end[keep].dt.date.to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True), features, len(cutoffs)


def fit_hazard(
    params: Params,
    rows: pd.DataFrame,
    features: list[str],
    as_of: dt.date,
    early_stop: str = "step_end",
) -> tuple[lgb.Booster, Any, dict[str, Any]]:
    """Early-stopped on the rows whose step window ends after v = A − s − 7 (``step_end``;
    ``cutoff``: only the rows at the cutoff v, k = 0, as the pipeline's base model), trained
    on the rows whose step ends by v, then refitted on all rows."""
    p = params.train
    s, step = params.features.base_horizon_days, params.features.base_cutoff_step_days
    v = as_of - dt.timedelta(days=s + step)
    cols = [*features, ELAPSED]
    lp = lgb_params(p, cols)
    train = rows[rows["step_end"] <= v]
    valid = (
        rows[rows["step_end"] > v]
        if early_stop == "step_end"
        else rows[(pd.to_datetime(rows["cutoff_date"]).dt.date == v) & (rows[ELAPSED] == 0)]
    )
    x_tr, y_tr = train[cols].astype("float64"), train["churned"].to_numpy()
    x_va, y_va = valid[cols].astype("float64"), valid["churned"].to_numpy()
    dtrain = lgb.Dataset(x_tr, y_tr, feature_name=cols, free_raw_data=False)
    dvalid = lgb.Dataset(x_va, y_va, reference=dtrain)
    booster = lgb.train(
        lp,
        dtrain,
        num_boost_round=p.n_estimators,
        valid_sets=[dvalid],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(p.early_stopping_rounds, first_metric_only=True, verbose=False)
        ],
    )
    best = int(booster.best_iteration or p.n_estimators)
    raw_va = booster.predict(x_va.to_numpy(), num_iteration=best)
    calibrator, cv_brier = fit_calibrator(raw_va, y_va, p.calibration, seed=p.seed)
    refit = lgb.train(
        lp,
        lgb.Dataset(rows[cols].astype("float64"), rows["churned"].to_numpy(), feature_name=cols),
        num_boost_round=best,
    )
    by_k = rows.groupby(ELAPSED)["churned"].agg(["size", "mean"])
    info = {
        "rows": int(len(rows)),
        "train_rows": int(len(train)),
        "valid_rows": int(len(valid)),
        "validation_after": str(v),
        "early_stop": early_stop,
        "best_iteration": best,
        "calibration": calibrator.kind,
        "calibration_cv_brier": cv_brier,
        "rows_by_elapsed_days": {
            str(int(e)): {"rows": int(r["size"]), "no_purchase_rate": round(float(r["mean"]), 6)}
            for e, r in by_k.iterrows()
        },
    }
    return refit, calibrator, info


def predict_window(
    booster: lgb.Booster,
    calibrator: Any,
    snap: pd.DataFrame,
    features: list[str],
    s: int,
    window: int,
) -> dict[str, pd.Series]:
    """P(no purchase in the window) from the snapshot at A with elapsed_days = k·s."""
    x = snap[features].astype("float64")
    raw_steps, cal_steps = [], []
    for k in range(chain_steps(s, window)):
        x[ELAPSED] = float(k * s)
        raw = booster.predict(x.to_numpy())
        raw_steps.append(pd.Series(raw, index=snap.index))
        cal_steps.append(pd.Series(calibrator.predict(raw), index=snap.index))
    return {
        "hazard": chain_no_purchase(raw_steps, s, window),
        "hazard_calibrated": chain_no_purchase(cal_steps, s, window),
    }


def gains(runs: list[B.DateRun], a: str, b: str, resamples: int) -> dict[str, Any]:
    """a − b per split (paired bootstrap) and mean over the splits; made "higher is better"
    (Brier: b − a), so a positive gain means ``a`` is better."""
    out: dict[str, Any] = {}
    metrics = ("roc_auc", "brier") if PROBABILITY[b] else ("roc_auc",)
    for m in metrics:
        sign = -1.0 if m == "brier" else 1.0
        per = []
        for r in runs:
            d, lo, hi = paired_bootstrap_ci(
                r.y, r.scores[a], r.scores[b], m, resamples, B.BOOTSTRAP_SEED
            )
            lo, hi = sorted((sign * lo, sign * hi))
            per.append({"as_of": str(r.as_of), "gain": sign * d, "ci95": [lo, hi]})
        pooled = B.compare_variants(
            {
                b: [
                    B.DateRun(r.as_of, r.window_days, r.customers, r.y, {"model": r.scores[b]}, {})
                    for r in runs
                ],
                a: [
                    B.DateRun(r.as_of, r.window_days, r.customers, r.y, {"model": r.scores[a]}, {})
                    for r in runs
                ],
            },
            b,
            resamples,
        )[a]["gain_vs_reference"][m]
        out[m] = {
            "per_split": per,
            "pooled": {"gain": pooled["mean_gain"], "ci95": pooled["mean_gain_ci"]},
        }
    return out


PROBABILITY = {
    "model": True,
    "pn_no_purchase": True,
    "pn_expected": False,
    **dict.fromkeys(HAZARDS, True),
}


def run(resamples: int, early_stop: str = "step_end") -> dict[str, Any]:
    t0 = time.perf_counter()
    splits = SPLITS["cdnow"]
    for end, days in splits:
        assert end + dt.timedelta(days=days) < REPORTED_FROM["cdnow"], "a split reads a report"
    runs: list[B.DateRun] = []
    info: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churnguard-survival-") as tmp:
        work = Path(tmp)
        params, tx = prepare("cdnow", work)
        from churnguard.db import connect

        con = connect(params.engine)
        try:
            data_min, _, _ = data_range(con, tx)
        finally:
            con.close()
        s = params.features.base_horizon_days
        for as_of, window in splits:
            t1 = time.perf_counter()
            r = R.evaluate_date(params, tx, as_of, window, work / "defaults", with_baselines=True)
            t_def = time.perf_counter() - t1
            t2 = time.perf_counter()
            rows, features, n_cut = person_period(params, tx, as_of, data_min)
            booster, calibrator, fit_info = fit_hazard(params, rows, features, as_of, early_stop)
            snap = snapshot_frame(tx, as_of, params.features.lost_after_days, params.engine)
            snap = snap[snap["lapsed"] == 0].set_index("customer_id").sort_index()
            preds = predict_window(booster, calibrator, snap, features, s, window)
            ids = pd.Index(r.customers)
            if not snap.index.equals(ids):
                raise SystemExit(f"{as_of}: the hazard snapshot scores other customers")
            scores = {
                "model": r.scores["model"],
                "pn_no_purchase": r.scores["pn_no_purchase"],
                "pn_expected": r.scores["pn_expected"],
                **{h: preds[h].reindex(ids).to_numpy(dtype=float) for h in HAZARDS},
            }
            runs.append(B.DateRun(as_of, window, r.customers, r.y, scores, {}))
            point = {
                n: {
                    "roc_auc": B.point_metric("roc_auc", v, r.y),
                    "brier": B.point_metric("brier", v, r.y) if PROBABILITY[n] else None,
                    "mean_prediction": float(np.mean(v)) if PROBABILITY[n] else None,
                }
                for n, v in scores.items()
            }
            info.append(
                {
                    "as_of": str(as_of),
                    "window_days": window,
                    "customers": int(r.y.size),
                    "churn_rate": float(r.y.mean()),
                    "defaults_plan": r.info["plan"],
                    "hazard_cutoffs": n_cut,
                    "hazard_steps": chain_steps(s, window),
                    "hazard_fit": fit_info,
                    "metrics": point,
                    "seconds": {
                        "defaults_with_baselines": t_def,
                        "hazard": time.perf_counter() - t2,
                    },
                }
            )
            say(
                f"{as_of}+{window}d: "
                + ", ".join(
                    f"{n} {m['roc_auc']:.4f}/{m['brier'] if m['brier'] is not None else float('nan'):.4f}"
                    for n, m in point.items()
                )
            )
    comparisons = {}
    for h in HAZARDS:
        comparisons[f"{h}_vs_defaults"] = gains(runs, h, "model", resamples)
        comparisons[f"{h}_vs_paretonbd_no_purchase"] = gains(runs, h, "pn_no_purchase", resamples)
        comparisons[f"{h}_vs_paretonbd_expected"] = gains(runs, h, "pn_expected", resamples)
    comparisons["defaults_vs_paretonbd_no_purchase"] = gains(
        runs, "model", "pn_no_purchase", resamples
    )
    return {
        "experiment": "discrete-time hazard (person-period) LightGBM vs churnguard's chain; "
        "not part of the pipeline (benchmarks/survival_experiment.py)",
        "data": "cdnow",
        "rule": "pseudo-splits inside the calibration period only (every outcome window ends "
        f"before {REPORTED_FROM['cdnow']}); gain > 0: the first named scorer is better "
        "(ROC-AUC: higher, Brier: lower)",
        "splits": [{"as_of": str(a), "window_days": d} for a, d in splits],
        "resamples": resamples,
        "step_days": s,
        "early_stop": early_stop,
        "dates": info,
        "comparisons": comparisons,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _g(g: dict[str, Any]) -> str:
    lo, hi = g["ci95"]
    return f"{g['gain']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


NAMES = {
    "model": "churnguard defaults (chained 21-day model, as shipped)",
    "hazard": "hazard model, uncalibrated",
    "hazard_calibrated": "hazard model, step probability calibrated (auto)",
    "pn_no_purchase": "Pareto/NBD, P(no purchase in the window)",
    "pn_expected": "Pareto/NBD, expected purchases in the window",
}
ROWS = {
    "hazard_vs_defaults": "hazard − defaults",
    "hazard_calibrated_vs_defaults": "hazard calibrated − defaults",
    "hazard_vs_paretonbd_no_purchase": "hazard − Pareto/NBD P(none)",
    "hazard_calibrated_vs_paretonbd_no_purchase": "hazard calibrated − Pareto/NBD P(none)",
    "hazard_vs_paretonbd_expected": "hazard − Pareto/NBD expected",
    "defaults_vs_paretonbd_no_purchase": "defaults − Pareto/NBD P(none) (reference)",
}


def markdown(res: dict[str, Any], sens: dict[str, Any] | None = None) -> str:
    """docs/ablation-survival.md from the results file."""
    splits = [f"{d['as_of']} + {d['window_days']} d" for d in res["dates"]]
    out = [
        "# Experiment: a discrete-time hazard model instead of the chain (CDNOW)",
        "",
        f"Generated by `{COMMAND}` from `benchmarks/results/survival_cdnow.json` — do not edit "
        "by hand. **An experiment, not part of the pipeline**: nothing in `src/churnguard` "
        "uses it. The method is in the script's docstring; in short: one LightGBM (the CDNOW "
        "preset's tree parameters) on person-period rows (customer, weekly cutoff c, step k) "
        f"with the snapshot at c plus `elapsed_days = k·{res['step_days']}`, the target no "
        f"purchase in the k-th {res['step_days']}-day step after c, only rows still at risk and "
        "whose step ends by the as-of date A; early-stopped on the rows whose step ends after "
        f"A − {res['step_days'] + 7} days (the plan's validation cutoff), refitted on all rows "
        "with those rounds; P(no purchase in W) = Π_k (1 − h_k) from the snapshot at A (a "
        "partial last step as h^(r/s)). The calibrated variant calibrates the step probability "
        "as the pipeline calibrates its base model (`train.calibration` auto on the validation "
        "rows); the W-window probability cannot be calibrated on realised W outcomes on these "
        "splits (no W window ending by A starts after the first day of data).",
        "",
        f"Pseudo-splits (the ones `benchmarks/tuning.py` uses, all inside the calibration "
        f"period): {', '.join(splits)}. Same customers (active at A) for every scorer; 95% "
        f"paired bootstrap over customers ({res['resamples']} resamples, "
        "`churnguard.stats.paired_bootstrap_ci`), pooled = mean over the three splits with the "
        "interval of `churnguard.backtest.compare_variants`. Run time: "
        f"{res['seconds'] / 60:.1f} min (the defaults' pipeline and baselines included).",
        "",
        "| scorer | " + " | ".join(f"{s} ROC-AUC / Brier" for s in splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    for name, label in NAMES.items():
        cells = []
        for d in res["dates"]:
            m = d["metrics"][name]
            br = f" / {m['brier']:.4f}" if m["brier"] is not None else ""
            cells.append(f"{m['roc_auc']:.4f}{br}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Differences (gain > 0: the first named is better; Brier gains are the second's Brier "
        "minus the first's):",
        "",
        "| comparison | metric | " + " | ".join(splits) + " | pooled (mean) |",
        "|---|---|" + "---|" * (len(splits) + 1),
    ]
    for key, label in ROWS.items():
        for m, g in res["comparisons"][key].items():
            per = " | ".join(_g(x) for x in g["per_split"])
            metric = "ROC-AUC" if m == "roc_auc" else "Brier"
            out.append(f"| {label} | {metric} | {per} | {_g(g['pooled'])} |")
    if sens is not None:
        out += [
            "",
            "Sensitivity to the early stopping (`--early-stop cutoff`, "
            "`benchmarks/results/survival_cdnow_cutoff.json`): validation = only the k = 0 rows "
            "at the cutoff A − 28 days, as the pipeline's base model early-stops "
            "(best iterations "
            + ", ".join(str(d["hazard_fit"]["best_iteration"]) for d in sens["dates"])
            + " against "
            + ", ".join(str(d["hazard_fit"]["best_iteration"]) for d in res["dates"])
            + " above):",
            "",
            "| comparison | metric | " + " | ".join(splits) + " | pooled (mean) |",
            "|---|---|" + "---|" * (len(splits) + 1),
        ]
        for key in ("hazard_vs_defaults", "hazard_vs_paretonbd_no_purchase"):
            for m, g in sens["comparisons"][key].items():
                per = " | ".join(_g(x) for x in g["per_split"])
                metric = "ROC-AUC" if m == "roc_auc" else "Brier"
                out.append(f"| {ROWS[key]} | {metric} | {per} | {_g(g['pooled'])} |")
    out += ["", *VERDICT, ""]
    return "\n".join(out)


VERDICT: list[str] = [
    "**Verdict: not integrated.** The hazard model's ROC-AUC is below the chained "
    "defaults' at every pseudo-split with either early stopping (5 of the 6 intervals "
    "exclude 0; pooled −0.0049 [−0.0066, −0.0033], and −0.0024 [−0.0038, −0.0008] "
    "early-stopped on the cutoff rows, the better of two looks at the same splits, so "
    "optimistic). Its Brier gain is small (+0.0005 to +0.0006 pooled, about 0.4% of the "
    "Brier score), comes from the 92-day split (the other two are within ±0.0005 and "
    "change sign), and reverses with the step calibration in the main setting "
    "(−0.0006; the auto calibrator picked isotonic there, sigmoid in the sensitivity run). "
    "It beats Pareto/NBD on Brier, but its ROC-AUC lead over Pareto/NBD (+0.0037 and "
    "+0.0063) is at most about 70% of the defaults' "
    "(+0.0087). Extrapolation in `elapsed_days` explains little: the training rows reach "
    "84, 126 and 147 days of elapsed time, so only the first split scores steps beyond "
    "them (105–147 days), and the largest loss is at the third, which is fully covered. A "
    "plausible reason (not measured): the chain feeds the booster the advanced snapshot "
    "(recency, tenure and windowed counts already moved by k·21 days), while the hazard "
    "model has to learn those interactions of `elapsed_days` with the frozen snapshot from "
    "rows a third to a half of which are k = 0.",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--render-only", action="store_true", help="only docs/ablation-survival.md")
    ap.add_argument(
        "--early-stop",
        choices=["step_end", "cutoff"],
        default="step_end",
        help="validation rows: every step ending after A − s − 7 (default), or only the "
        "k = 0 rows at that cutoff (writes survival_cdnow_cutoff.json, a sensitivity check)",
    )
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    if not args.render_only:
        res = B._rounded(run(args.resamples, args.early_stop))
        target = TARGET if args.early_stop == "step_end" else SENSITIVITY
        write_json_atomic(target, res)
        say(f"wrote {target} ({res['seconds']} s)")
    res = json.loads(TARGET.read_text(encoding="utf-8"))
    sens = json.loads(SENSITIVITY.read_text(encoding="utf-8")) if SENSITIVITY.exists() else None
    write_text_atomic(DOC, markdown(res, sens))
    say(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
