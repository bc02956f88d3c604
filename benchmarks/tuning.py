"""How each default was chosen: backtests on pseudo-splits inside the training period only.

Usage: ``python benchmarks/tuning.py --data cdnow|synthetic`` (both: ``--data all``).
Writes ``benchmarks/results/tuning_<data>.json`` and regenerates ``docs/ablation.md``
from every results file present.

Never tuned on a reported window: every pseudo-split's outcome window ends before the
first window the benchmarks report —

- CDNOW: the classic split reports from 1997-10-01 on (calibration ends 1997-09-30), and
  the other as-of dates of ``benchmarks/cdnow.py`` start later still; the pseudo-splits
  end by 1997-09-30.
- synthetic: README's quality table is the test cutoff 2025-04-01 (+90 days); the
  pseudo-splits end by 2025-03-31.

Each variant runs the whole pipeline through :func:`churnguard.backtest.evaluate_date`
with one change to the params; it is compared with the defaults on the same customers and
bootstrap resamples at every pseudo-split, and the gains are averaged over the splits
(:func:`churnguard.backtest.compare_variants`). The refit is measured inside the defaults'
own run: ``model`` (refit, shipped) against ``model_evaluated`` (the same run's fit before
the refit, i.e. what ``train.refit: false`` ships).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churnguard import backtest as B
from churnguard import backtest_run as R
from churnguard.config import Params, load_params
from churnguard.feature_defs import BTYD_FEATURES
from churnguard.io import write_json_atomic, write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "ablation.md"
D = dt.date

# feature groups added this round (kept only when the backtest shows they help)
GROUPS: dict[str, list[str]] = {
    "basket": [
        "units_total",
        "units_per_order",
        "avg_unit_price",
        "max_order_units",
        "last_day_units",
    ],
    "first_purchase": ["first_day_spend", "first_day_units"],
    "tenure_rates": ["purchase_days_per_30d", "spend_per_30d", "recency_to_tenure"],
}
RANKS = ["r_score", "f_score", "m_score", "rfm_score"]  # within-cutoff ranks (older features)
SPLITS: dict[str, list[tuple[dt.date, int]]] = {
    "cdnow": [(D(1997, 4, 30), 153), (D(1997, 5, 31), 122), (D(1997, 6, 30), 92)],
    "synthetic": [(D(2024, 6, 30), 90), (D(2024, 9, 30), 90), (D(2024, 12, 31), 90)],
}
REPORTED_FROM = {"cdnow": D(1997, 10, 1), "synthetic": D(2025, 4, 1)}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def variants(base: Params) -> dict[str, Callable[[Params], Params]]:
    """Name → params change. ``defaults`` is the reference."""

    def train(**kw: Any) -> Callable[[Params], Params]:
        return lambda p: p.model_copy(update={"train": p.train.model_copy(update=kw)})

    def features(**kw: Any) -> Callable[[Params], Params]:
        return lambda p: p.model_copy(update={"features": p.features.model_copy(update=kw)})

    excluded = list(base.train.exclude_features)
    out: dict[str, Callable[[Params], Params]] = {"defaults": lambda p: p}
    # each switch is measured from wherever the defaults stand (the other way round)
    if base.features.calibration_cutoffs > 1:
        out["calibration_on_validation_only"] = features(calibration_cutoffs=1)
        out["calibration_dates_recent"] = features(calibration_span_days=120)
    else:
        out["calibration_four_dates"] = features(calibration_cutoffs=4)
    if base.train.chain_calibration:
        out["no_chain_calibration"] = train(chain_calibration=False)
    else:
        out["chain_calibration"] = train(chain_calibration=True)
    if base.train.chain_calibration and base.features.calibration_cutoffs > 1:
        out["calibration_dates_recent_no_chain_calibration"] = lambda p: p.model_copy(
            update={
                "features": p.features.model_copy(update={"calibration_span_days": 120}),
                "train": p.train.model_copy(update={"chain_calibration": False}),
            }
        )
    if base.features.horizon_mode == "auto":
        out["chained_horizon"] = features(horizon_mode="chained")
    # how the horizon is built: weekly cutoffs let a direct model fit shorter histories; a
    # longer chained base horizon needs fewer chain steps
    if base.features.cutoff_step_days != 7:
        out["weekly_cutoffs"] = features(cutoff_step_days=7)
    for days, step in ((14, 7), (28, 7), (42, 14)):
        if base.features.base_horizon_days != days:
            out[f"chain_base_{days}d"] = features(
                base_horizon_days=days, base_cutoff_step_days=step
            )
    for group, names in GROUPS.items():
        out[f"without_{group}"] = train(exclude_features=sorted({*excluded, *names}))
    out["without_ranks"] = train(exclude_features=sorted({*excluded, *RANKS}))
    # a chained horizon scores snapshots whose day counts run past any seen in training (a
    # tree is flat there); the ratios (recency_to_tenure, recency_to_gap) stay in range
    out["without_raw_days"] = train(
        exclude_features=sorted({*excluded, "recency_days", "tenure_days"})
    )
    every_new = [f for names in GROUPS.values() for f in names]
    out["previous_features"] = train(exclude_features=sorted({*excluded, *every_new}))
    if base.features.btyd_features:
        out["without_btyd"] = train(exclude_features=sorted({*excluded, *BTYD_FEATURES}))
    else:
        out["with_btyd"] = features(btyd_features=True)
    # a more regularised LightGBM (fewer, larger leaves): small data, few strong signals
    if base.train.num_leaves > 7:
        out["regularised_trees"] = train(num_leaves=7, min_child_samples=200)
    else:
        out["general_trees"] = train(num_leaves=15, min_child_samples=40)
        out["regularised_more"] = train(num_leaves=4, min_child_samples=400)
    # monotone constraints: churn never less likely as silence grows (and with more purchases)
    if not base.train.monotone:
        out["monotone_recency"] = train(monotone={"recency_days": 1})
        out["monotone_recency_frequency"] = train(monotone={"recency_days": 1, "purchase_days": -1})
    else:
        out["no_monotone"] = train(monotone={})
    # a strictly monotone calibrator (Platt) keeps the booster's ranking: isotonic steps tie
    # customers, and a chained plan multiplies those ties over every step
    if base.train.calibration == "auto":
        out["calibration_sigmoid"] = train(calibration="sigmoid")
    # stack Pareto/NBD: the calibrator on [logit model, logit Pareto/NBD P(none)]
    if not base.train.stack_btyd:
        out["stack_paretonbd"] = train(stack_btyd=True)
        # the stack's weights learned where the model was not early-stopped: out-of-time
        # predictions at 4 calibration dates instead of the validation cutoff
        if base.features.calibration_cutoffs == 1:
            out["stack_paretonbd_four_dates"] = lambda p: p.model_copy(
                update={
                    "features": p.features.model_copy(update={"calibration_cutoffs": 4}),
                    "train": p.train.model_copy(update={"stack_btyd": True}),
                }
            )
    else:
        out["no_stack_paretonbd"] = train(stack_btyd=False)
    return out


def prepare(data: str, work: Path) -> tuple[Params, Path]:
    """Canonical transactions for ``data`` (ingested as the pipeline would) and its params."""
    from churnguard.ingest import run_ingest

    if data == "cdnow":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from cdnow import load_preset

        params, _ = load_preset(None, work)
        run_ingest(params.ingest, params.engine)
        return params, work / "interim" / "transactions.parquet"
    from churnguard.synth import run_generate

    params = load_params(ROOT / "params.yaml")
    gen = params.generate.model_copy(
        update={"output": str(work / "raw.csv"), "truth_output": str(work / "truth.parquet")}
    )
    run_generate(gen)
    engine = params.engine.model_copy(update={"temp_directory": str(work / "duckdb")})
    ingest = params.ingest.model_copy(
        update={
            "source": params.ingest.source.model_copy(update={"path": str(work / "raw.csv")}),
            "output_dir": str(work / "interim"),
        }
    )
    params = params.model_copy(update={"generate": gen, "engine": engine, "ingest": ingest})
    run_ingest(params.ingest, params.engine)
    return params, work / "interim" / "transactions.parquet"


def run(
    data: str, resamples: int, only: list[str] | None, baselines: bool = True
) -> dict[str, Any]:
    t0 = time.perf_counter()
    splits = SPLITS[data]
    for end, days in splits:
        assert end + dt.timedelta(days=days) < REPORTED_FROM[data], "a pseudo-split reads a report"
    with tempfile.TemporaryDirectory(prefix=f"churnguard-tune-{data}-") as tmp:
        work = Path(tmp)
        params, tx = prepare(data, work)
        runs: dict[str, list[B.DateRun]] = {}
        chosen = variants(params)
        for name, change in chosen.items():
            if only and name not in only and name != "defaults":
                continue
            p = change(params)
            runs[name] = []
            for as_of, days in splits:
                t1 = time.perf_counter()
                r = R.evaluate_date(
                    p, tx, as_of, days, work / name, with_baselines=baselines and name == "defaults"
                )
                runs[name].append(r)
                say(
                    f"{data} {name} {as_of}+{days}d: model ROC-AUC "
                    f"{B.point_metric('roc_auc', r.scores['model'], r.y):.4f} Brier "
                    f"{B.point_metric('brier', r.scores['model'], r.y):.4f} "
                    f"({time.perf_counter() - t1:.0f} s)"
                )
        # the refit, inside the defaults' own runs: the evaluated fit is what refit: false ships
        runs["no_refit"] = [
            B.DateRun(
                r.as_of, r.window_days, r.customers, r.y, {"model": r.scores["model_evaluated"]}, {}
            )
            for r in runs["defaults"]
        ]
        table = B.compare_variants(runs, "defaults", resamples)
        versus = []
        for r in runs["defaults"] if baselines else []:
            counts = B.resample_counts(r.y.size, resamples, B.BOOTSTRAP_SEED)
            t, _ = B.compare_date(r, counts, 0.95)
            versus.append(
                {
                    "as_of": t["as_of"],
                    "window_days": t["window_days"],
                    "plan": t["plan"]["mode"],
                    "scorers": {
                        n: {m: row.get(m) for m in B.METRICS} for n, row in t["scorers"].items()
                    },
                }
            )
    return {
        "data": data,
        "rule": (
            "pseudo-splits inside the training period only (every outcome window ends before "
            f"{REPORTED_FROM[data]}, the first reported day); gains are variant − defaults "
            "(Brier: defaults − variant), so a positive gain means the variant is better"
        ),
        "splits": [{"as_of": str(a), "window_days": d} for a, d in splits],
        "resamples": resamples,
        "groups": {**GROUPS, "ranks": RANKS},
        "defaults": {
            "features.btyd_features": params.features.btyd_features,
            "features.calibration_cutoffs": params.features.calibration_cutoffs,
            "features.horizon_mode": params.features.horizon_mode,
            "train.chain_calibration": params.train.chain_calibration,
            "train.refit": params.train.refit,
            "train.exclude_features": list(params.train.exclude_features),
            "train.num_leaves": params.train.num_leaves,
            "train.min_child_samples": params.train.min_child_samples,
            "train.monotone": dict(params.train.monotone),
            "train.stack_btyd": params.train.stack_btyd,
        },
        "variants": table,
        "defaults_vs_baselines": versus,
        "seconds": round(time.perf_counter() - t0, 1),
    }


LABELS = {
    "defaults": "defaults (as listed above the table)",
    "no_refit": "no refit (ship the evaluated fit: train.refit false)",
    "calibration_on_validation_only": "calibrate on the validation cutoff only (calibration_cutoffs 1)",
    "calibration_four_dates": "calibrate on 4 out-of-time dates (calibration_cutoffs 4)",
    "chain_calibration": "calibrate the chained horizon on realised outcomes (train.chain_calibration true)",
    "chained_horizon": "chained horizon even where a direct model fits (horizon_mode chained)",
    "no_chain_calibration": "no calibration of the chained horizon (train.chain_calibration false)",
    "calibration_dates_recent": "calibration dates within 120 days of validation (calibration_span_days 120)",
    "calibration_dates_recent_no_chain_calibration": "calibration dates within 120 days, no chained calibration",
    "weekly_cutoffs": "labelled cutoffs every 7 days (features.cutoff_step_days 7)",
    "chain_base_14d": "chained base horizon 14 days on cutoffs every 7 days",
    "chain_base_28d": "chained base horizon 28 days on cutoffs every 7 days",
    "chain_base_42d": "chained base horizon 42 days on cutoffs every 14 days",
    "without_basket": "without the basket features (quantity)",
    "without_first_purchase": "without the first-purchase features",
    "without_tenure_rates": "without the tenure-normalised rates",
    "without_ranks": "without the within-cutoff RFM ranks",
    "without_raw_days": "without recency_days and tenure_days (ratios and ranks only)",
    "previous_features": "previous feature set (none of the three new groups)",
    "with_btyd": "with the BTYD features (features.btyd_features true: MBG/NBD per cutoff)",
    "without_btyd": "without the BTYD features (features.btyd_features false)",
    "regularised_trees": "more regularised trees (num_leaves 7, min_child_samples 200)",
    "general_trees": "the general default trees (num_leaves 15, min_child_samples 40)",
    "regularised_more": "still more regularised trees (num_leaves 4, min_child_samples 400)",
    "monotone_recency": "P(churn) monotone in recency_days (train.monotone)",
    "monotone_recency_frequency": "P(churn) monotone in recency_days (up) and purchase_days (down)",
    "no_monotone": "no monotone constraints",
    "seed_bagging_5": "seed bagging: mean log-odds of 5 LightGBM fits, seeds 7..11 (train.bagging_models 5, measured on a branch, not kept)",
    "calibration_sigmoid": "always a sigmoid (Platt) calibrator (train.calibration sigmoid, not auto)",
    "stack_paretonbd": "stacked with Pareto/NBD: calibrator on [logit model, logit Pareto/NBD P(none)] (train.stack_btyd)",
    "stack_paretonbd_four_dates": "stacked with Pareto/NBD, weights learned on 4 out-of-time dates (calibration_cutoffs 4)",
    "no_stack_paretonbd": "not stacked with Pareto/NBD (train.stack_btyd false)",
    "blend_logreg": "LightGBM blended with the logistic regression, 0.5 each in log-odds (train.blend_logreg, measured on a branch, not kept)",
}


# batches whose switch is not in the package: said under the batch's heading
NOTES = {
    "cdnow_blend": (
        "The switch `train.blend_logreg` was measured on a branch and not kept (no ROC-AUC "
        "or Brier gain): it is not a churnguard parameter; the row is the record."
    ),
    "cdnow_bagging": (
        "The switch `train.bagging_models` (every fit the mean log-odds of k LightGBM fits "
        "with seeds seed..seed + k − 1, the first deciding the rounds; one merged booster) "
        "was measured at commit 13d59ed of branch issue-17-more and dropped: it lost ROC-AUC "
        "and Brier at 5× the training time. It is not a churnguard parameter."
    ),
}


def _gain(g: dict[str, Any], d: int = 4) -> str:
    lo, hi = g["mean_gain_ci"]
    return f"{g['mean_gain']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def markdown(results: dict[str, dict[str, Any]]) -> str:
    out = [
        "# Ablation and defaults",
        "",
        "Generated by `python benchmarks/tuning.py --data cdnow|synthetic [--only V1,V2 --name "
        "BATCH]` — do not edit by hand; every figure is in `benchmarks/results/tuning_*.json` "
        "(one section per file).",
        "",
        "Every default of this round was chosen on **pseudo-splits inside the training period**: "
        "backtests (`churnguard.backtest.evaluate_date`, the whole pipeline at a past as-of "
        "date) whose outcome windows end before the first day any benchmark or README table "
        "reports. Each variant changes one thing; its gain is measured against the defaults on "
        "the same customers and bootstrap resamples at every pseudo-split and averaged over the "
        "splits (95% paired interval). Gain > 0: the variant is better (ROC-AUC, PR-AUC: higher; "
        "Brier: lower). A feature group is kept when removing it loses ROC-AUC on average "
        "(its `without_…` row is negative) without a Brier gain from removing it; the refit and "
        "the calibration dates likewise.",
        "",
        "Experiments measured on the same CDNOW pseudo-splits by their own scripts (not "
        "switches of the pipeline): a discrete-time hazard model instead of the chained "
        "horizon, [ablation-survival.md](ablation-survival.md) "
        "(`benchmarks/survival_experiment.py`). How much lead over Pareto/NBD the features "
        "allow at all on the classic windows (a diagnostic ceiling trained on the windows' own "
        "outcomes, never used for a choice): [ablation-ceiling.md](ablation-ceiling.md) "
        "(`benchmarks/ceiling.py`).",
        "",
    ]
    for data, res in results.items():
        splits = ", ".join(f"{s['as_of']} + {s['window_days']} days" for s in res["splits"])
        batch = data.partition("_")[2]
        out += [
            f"## {data}",
            "",
            *(
                [
                    f"An earlier batch (`--name {batch}`), kept as the record of how a default "
                    f"was chosen: its own defaults are listed below; the section "
                    f"`{data.partition('_')[0]}` is the run with the final defaults.",
                    "",
                ]
                if batch
                else []
            ),
            *([NOTES[data], ""] if data in NOTES else []),
            f"Pseudo-splits: {splits} ({res['rule']}).",
            "",
            "Defaults: "
            + (
                ", ".join(f"`{k}` {json.dumps(v)}" for k, v in res["defaults"].items())
                if "defaults" in res
                else "every feature, 4 calibration dates, chained calibration, refit"
            )
            + ".",
            "",
            "| variant | ROC-AUC gain | PR-AUC gain | Brier gain | ROC-AUC per split |",
            "|---|---|---|---|---|",
        ]
        for name, v in res["variants"].items():
            g = v["gain_vs_reference"]
            per = ", ".join(f"{row['roc_auc']:.4f}" for row in v["dates"])
            gains = " | ".join(_gain(g[m]) for m in B.METRICS)
            label = LABELS.get(name, name)
            out.append(f"| {label} | {gains if name != 'defaults' else '– | – | –'} | {per} |")
        out += [
            "",
            "Defaults against the baselines on the same pseudo-splits (ROC-AUC / Brier):",
            "",
            "| as of + window | plan | churnguard | logistic regression | Pareto/NBD expected | "
            "Pareto/NBD P(none) | BG/NBD P(none) | RFM | recency |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for b in res["defaults_vs_baselines"]:  # empty for a batch without baselines
            s = b["scorers"]

            def cell(n: str, s: dict = s) -> str:
                if n not in s:
                    return "–"
                br = s[n].get("brier")
                return f"{s[n]['roc_auc']:.4f}" + (f" / {br:.4f}" if br is not None else "")

            out.append(
                f"| {b['as_of']} + {b['window_days']} d | {b['plan']} | {cell('model')} | "
                f"{cell('logreg')} | {cell('pn_expected')} | {cell('pn_no_purchase')} | "
                f"{cell('bg_no_purchase')} | {cell('rfm')} | {cell('recency')} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["cdnow", "synthetic", "all"], default="all")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--only", default=None, help="comma-separated variant names (and defaults)")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--no-baselines", action="store_true", help="skip the baselines (and BTYD)")
    ap.add_argument("--name", default="", help="results/tuning_<data>_<name>.json (a second batch)")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    names = ["cdnow", "synthetic"] if args.data == "all" else [args.data]
    if not args.render_only:
        for data in names:
            only = args.only.split(",") if args.only else None
            res = B._rounded(run(data, args.resamples, only, not args.no_baselines))
            target = RESULTS / f"tuning_{data}{'_' + args.name if args.name else ''}.json"
            write_json_atomic(target, res)
            say(f"wrote {target}")
    found = {}
    for data in ("cdnow", "synthetic"):
        for path in sorted(RESULTS.glob(f"tuning_{data}*.json")):
            found[path.stem.removeprefix("tuning_")] = json.loads(path.read_text(encoding="utf-8"))
    if found:
        write_text_atomic(DOCS, markdown(found))
        say(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
