"""CDNOW head-to-head through ``churnguard backtest``: the classic split and other as-of dates.

Usage: ``python benchmarks/cdnow.py [--data PATH] [--bootstrap 1000] [--no-docs]``
(``make bench-cdnow``; needs the bench extras for BG/NBD and Pareto/NBD: pymc-marketing).

It ingests CDNOW with the preset ``configs/cdnow.yaml`` (the normal ingest, into a
temporary folder) and runs :func:`churnguard.backtest.run_backtest` — what
``churnguard backtest --params configs/cdnow.yaml`` runs — three times:

- the classic split, as of 1997-09-30, with the 39-week (273-day) holdout to 1998-06-30;
- the same date with the 13-week (92-day) holdout to 1997-12-31;
- five other as-of dates, 1997-11-30 .. 1998-03-31 (month ends), each with a 91-day window
  (the last ends on 1998-06-30, the last day of data).

Each date runs the whole pipeline on the transactions up to it (the features stage hides
every later line; nothing is re-ingested), with the preset's parameters, whose defaults
were chosen on pseudo-splits that end by 1997-09-30 (``benchmarks/tuning.py``,
``docs/ablation.md``), never on a reported window. Writes ``benchmarks/results/cdnow.json``,
the "## CDNOW (real data)" section of ``docs/benchmarks.md`` and the CDNOW table of the
README (between its ``cdnow-table`` markers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from churnguard import backtest as B
from churnguard import backtest_run as R
from churnguard.config import Params, load_params
from churnguard.ingest import run_ingest
from churnguard.io import file_sha256, write_json_atomic, write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_docs_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "cdnow.yaml"
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
SECTION = "## CDNOW (real data)"
MARK_START, MARK_END = "<!-- cdnow-table:start -->", "<!-- cdnow-table:end -->"
DATA_SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"

CAL_END = dt.date(1997, 9, 30)
CLASSIC = {"39w": 273, "13w": 92}  # to 1998-06-30 and to 1997-12-31
OTHER_DATES = [
    dt.date(1997, 11, 30),
    dt.date(1997, 12, 31),
    dt.date(1998, 1, 31),
    dt.date(1998, 2, 28),
    dt.date(1998, 3, 31),
]
OTHER_WINDOW = 91
REFERENCE = {  # ../shared/data/cdnow/README.md (classic split)
    "best_baseline_roc_auc": {"39w": 0.769, "13w": 0.774},
    "lightgbm_roc_auc": {"39w": 0.770, "13w": 0.778},
    "lightgbm_brier": {"39w": 0.160, "13w": 0.116},
}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def load_preset(data: Path | None, work: Path) -> tuple[Params, Path]:
    """The CDNOW preset with the data path resolved and every output in ``work``."""
    params = load_params(PRESET)
    src = params.ingest.source
    path = Path(data) if data else Path(src.path)
    if not path.is_absolute():
        path = (ROOT / path) if data is None else path.resolve()
    engine = params.engine.model_copy(update={"temp_directory": str(work / "duckdb")})
    ingest = params.ingest.model_copy(
        update={
            "source": src.model_copy(update={"path": str(path)}),
            "output_dir": str(work / "interim"),
        }
    )
    features = params.features.model_copy(
        update={"input": str(work / "interim" / "transactions.parquet")}
    )
    return params.model_copy(
        update={"engine": engine, "ingest": ingest, "features": features}
    ), path


def run(data: Path | None, n_boot: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="churnguard-cdnow-") as tmp:
        work = Path(tmp)
        params, path = load_preset(data, work)
        if not path.is_file():
            raise SystemExit(f"CDNOW file not found: {path} (pass --data PATH)")
        digest = file_sha256(path)
        if digest != DATA_SHA256:
            say(f"warning: {path} sha256 {digest} differs from the published {DATA_SHA256}")
        report = run_ingest(params.ingest, params.engine)
        say(f"ingest: {report['rows_clean']:,} rows, {report['customers']:,} customers")
        runs: dict[str, Any] = {}
        phases: dict[str, float] = {}
        for name, window in CLASSIC.items():
            t1 = time.perf_counter()
            say(f"classic split {name}: as of {CAL_END}, {window}-day holdout")
            runs[name] = R.run_backtest(
                params, [CAL_END], window, work / f"out_{name}", log_mlflow=False,
                resamples=n_boot, work_dir=work,
            )  # fmt: skip
            phases[name] = round(time.perf_counter() - t1, 1)
        t1 = time.perf_counter()
        say(f"other as-of dates {', '.join(map(str, OTHER_DATES))}: {OTHER_WINDOW}-day windows")
        runs["other"] = R.run_backtest(
            params, OTHER_DATES, OTHER_WINDOW, work / "out_other", log_mlflow=False,
            resamples=n_boot, work_dir=work,
        )  # fmt: skip
        phases["other"] = round(time.perf_counter() - t1, 1)
    return {
        "benchmark": "cdnow",
        "command": "churnguard backtest --params configs/cdnow.yaml (run_backtest), see below",
        "data": {
            "file": "CDNOW_master.txt",
            "sha256": digest,
            "rows": report["rows_clean"],
            "customers": report["customers"],
        },
        "settings": settings(params),
        "classic": {name: runs[name] for name in CLASSIC},
        "other_dates": runs["other"],
        "reference": REFERENCE,
        "targets": targets(runs),
        "runtime": {
            "load_average_start": round(load_start, 2),
            "seconds": round(time.perf_counter() - t0, 1),
            "phases_seconds": phases,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        },
    }


def settings(params: Params) -> dict[str, Any]:
    """The preset's model choices (how each was chosen: docs/ablation.md)."""
    f, t = params.features, params.train
    return {  # sorted, as the JSON file stores it
        "features.btyd_features": f.btyd_features,
        "features.calibration_cutoffs": f.calibration_cutoffs,
        "features.horizon_mode": f.horizon_mode,
        "train.chain_calibration": t.chain_calibration,
        "train.exclude_features": list(t.exclude_features),
        "train.min_child_samples": t.min_child_samples,
        "train.monotone": dict(t.monotone),
        "train.num_leaves": t.num_leaves,
        "train.refit": t.refit,
    }


def targets(runs: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets: a ROC-AUC lead over Pareto/NBD whose lower bound is above 0, and
    the best Brier of every method, on both classic holdouts and over the other dates."""
    out: dict[str, Any] = {}
    for name in CLASSIC:
        t = runs[name]["dates"][0]
        lead = t["leads"]["roc_auc"]["pareto_nbd"]
        out[name] = {
            "roc_auc_lead_over_pareto_nbd": lead["lead"],
            "ci": lead["lead_ci"],
            "lead_met": lead["lead_ci"][0] > 0,
            "best_brier_met": bool(t["model_best_brier"]),
        }
    pooled = runs["other"]["pooled"]["leads"]
    per_date = runs["other"]["dates"]
    out["other_dates"] = {
        "mean_roc_auc_lead_over_pareto_nbd": pooled["roc_auc"]["pareto_nbd"]["mean_lead"],
        "ci": pooled["roc_auc"]["pareto_nbd"]["mean_lead_ci"],
        "lead_met": pooled["roc_auc"]["pareto_nbd"]["mean_lead_ci"][0] > 0,
        "dates_with_lead_lower_bound_above_0": sum(
            t["leads"]["roc_auc"]["pareto_nbd"]["lead_ci"][0] > 0 for t in per_date
        ),
        "dates_with_best_brier": sum(bool(t["model_best_brier"]) for t in per_date),
        "dates": len(per_date),
    }
    return out


# --------------------------------------------------------------------------- output


# the same cell formats as churnguard backtest's own tables
_f, _ci, _lead = B._f, B._ci, B._lead


def _target_lead(g: dict[str, Any], key: str) -> str:
    """A target's lead with its interval (``targets()`` keeps the interval under ``ci``)."""
    return f"{g[key]:+.4f} [{g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}]"


def _date_table(t: dict[str, Any]) -> list[str]:
    out = [
        "| method | ROC-AUC [95% CI] | PR-AUC | Brier | top-decile lift |",
        "|---|---|---|---|---|",
    ]
    # the backtest's order (the JSON file sorts its keys): the same table from a run or a render
    names = [n for n in B.LABELS if n in t["scorers"]]
    names += sorted(set(t["scorers"]) - set(names))
    for name in names:
        row = t["scorers"][name]
        label = f"**{row['label']}**" if name == "model" else row["label"]
        out.append(
            f"| {label} | {_ci(row, 'roc_auc')} | {_f(row['pr_auc'])} | "
            f"{_f(row['brier'], 4)} | {_f(row['lift_top10'], 2)} |"
        )
    out += [
        f"| base rate for everyone (the outcome's own rate: a floor, not a method) | 0.500 | "
        f"{_f(t['churn_rate'])} | {_f(t['churn_rate'] * (1 - t['churn_rate']), 4)} | 1.00 |",
        "",
    ]
    return out


def _how(t: dict[str, Any]) -> str:
    plan = t["plan"]
    if plan["mode"] == "chained":
        origins = (t.get("chain_calibration") or {}).get("origins") or []
        cal = (
            f"the chained probability calibrated on realised outcomes at {', '.join(origins)}"
            if origins and (t.get("chain_calibration") or {}).get("kind")
            else "no realised window of this length fits before the date, so the chained "
            "probability is the product of calibrated step probabilities"
        )
        how = (
            f"chained: a {plan['label_horizon_days']}-day model on cutoffs every "
            f"{plan['step_days']} days ({plan['train_cutoffs'][0]}..{plan['test_cutoff']}), "
            f"chained over {plan['target_horizon_days']} days; {cal}"
        )
    else:
        how = (
            f"direct {plan['target_horizon_days']}-day model on cutoffs every "
            f"{plan['step_days']} days ({plan['train_cutoffs'][0]}..{plan['test_cutoff']})"
        )
    return (
        f"{how}. Early stopping on {plan['valid_cutoff']} (best iteration {t['best_iteration']}); "
        f"{t['calibration']} calibration on {', '.join(t['calibration_dates'])}; the shipped "
        f"model is the {t['shipped_fit']}."
    )


def markdown(res: dict[str, Any]) -> str:
    c = res["classic"]
    other = res["other_dates"]
    tg = res["targets"]
    out = [
        SECTION,
        "",
        "Generated by `make bench-cdnow` (`benchmarks/cdnow.py`) — do not edit by hand; every "
        "figure is in `benchmarks/results/cdnow.json`.",
        "",
        f"Data: CDNOW ({res['data']['rows']:,} purchases of the {res['data']['customers']:,} "
        "customers who first bought in Q1 1997; `../shared/data/cdnow/README.md`), read through "
        "the normal ingest with the preset `configs/cdnow.yaml`. Every figure comes from "
        "`churnguard backtest` (`churnguard.backtest.run_backtest`): at each as-of date the whole "
        "pipeline runs on the transactions up to that date (features, plan, model, calibration, "
        "refit, scoring as shipped) and every method scores the customers active then; the "
        "outcome is no purchase in the window after the date. 95% intervals: "
        f"{c['39w']['backtest']['resamples']} bootstrap resamples of customers, the same "
        "resamples for every method (paired differences). The defaults were chosen on "
        "pseudo-splits that end by 1997-09-30 ([ablation.md](ablation.md)), never on a window "
        "reported here."
        + (
            " Preset choices: "
            + ", ".join(f"`{k}` {json.dumps(v)}" for k, v in res["settings"].items())
            + "."
            if "settings" in res
            else ""
        ),
        "",
        "### Targets",
        "",
        "| evaluation | churnguard ROC-AUC lead over Pareto/NBD [95% CI] | lower bound above 0 | "
        "best Brier of all methods |",
        "|---|---|---|---|",
    ]
    for name, label in (("39w", "classic 39 weeks"), ("13w", "classic 13 weeks")):
        g = tg[name]
        out.append(
            f"| {label} | {_target_lead(g, 'roc_auc_lead_over_pareto_nbd')} | "
            f"{'met' if g['lead_met'] else '**not met**'} | "
            f"{'met' if g['best_brier_met'] else '**not met**'} |"
        )
    g = tg["other_dates"]
    out += [
        f"| {g['dates']} other as-of dates, {OTHER_WINDOW}-day windows (mean) | "
        f"{g['mean_roc_auc_lead_over_pareto_nbd']:+.4f} [{g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}] | "
        f"{'met' if g['lead_met'] else '**not met**'} (per date: "
        f"{g['dates_with_lead_lower_bound_above_0']} of {g['dates']}) | "
        f"{g['dates_with_best_brier']} of {g['dates']} dates |",
        "",
        "Pareto/NBD = the better of its two scores (expected purchases, P(no purchase)) on each "
        "metric. How much lead the features allow at all on the two classic windows (a model "
        "trained on the windows' own outcomes, a diagnostic ceiling): "
        "[ablation-ceiling.md](ablation-ceiling.md), `python benchmarks/ceiling.py`.",
        "",
    ]
    for name, title in (
        ("39w", "Classic split, 39-week holdout (1997-10-01..1998-06-30)"),
        ("13w", "Classic split, 13-week holdout (1997-10-01..1997-12-31)"),
    ):
        t = c[name]["dates"][0]
        out += [
            f"### {title}",
            "",
            f"As of {t['as_of']}: {t['n']:,} customers, {100 * t['churn_rate']:.1f}% without a "
            f"purchase in the holdout. churnguard: {_how(t)}",
            "",
            *_date_table(t),
            "| churnguard lead over | ROC-AUC | PR-AUC | Brier (> 0: churnguard lower) |",
            "|---|---|---|---|",
        ]
        for key in ("best_baseline", "pareto_nbd"):
            cells = []
            for metric in B.METRICS:
                lead = t["leads"].get(metric, {}).get(key)
                cells.append(_lead(lead) + (f" ({lead['baseline']})" if lead else ""))
            out.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
        out.append("")
    out += [
        f"### Other as-of dates ({OTHER_WINDOW}-day windows)",
        "",
        "| as of | customers | churn rate | plan | churnguard ROC-AUC | best baseline ROC-AUC | "
        "lead over Pareto/NBD | churnguard Brier | best other Brier |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in other["dates"]:
        s = t["scorers"]
        best = t["leads"]["roc_auc"]["best_baseline"]
        briers = {n: r["brier"] for n, r in s.items() if r.get("brier") is not None}
        other_b = min((b, n) for n, b in briers.items() if n not in ("model", "model_evaluated"))
        out.append(
            f"| {t['as_of']} | {t['n']:,} | {100 * t['churn_rate']:.1f}% | {t['plan']['mode']} | "
            f"{_ci(s['model'], 'roc_auc')} | {s[best['baseline']]['roc_auc']:.3f} "
            f"({best['baseline']}) | {_lead(t['leads']['roc_auc']['pareto_nbd'])} | "
            f"{s['model']['brier']:.4f} | {other_b[0]:.4f} ({other_b[1]}) |"
        )
    pooled = other["pooled"]["leads"]
    out += [
        "",
        "Mean lead over the dates (paired interval):",
        "",
        "| churnguard lead over | ROC-AUC | PR-AUC | Brier |",
        "|---|---|---|---|",
    ]
    for key in ("best_baseline", "pareto_nbd", "logreg", "rfm", "recency"):
        cells = []
        for metric in B.METRICS:
            p = pooled.get(metric, {}).get(key)
            cells.append(
                "–"
                if not p
                else f"{p['mean_lead']:+.4f} [{p['mean_lead_ci'][0]:+.4f}, {p['mean_lead_ci'][1]:+.4f}]"
            )
        out.append(f"| {B.LABELS.get(key, key.replace('_', ' '))} | " + " | ".join(cells) + " |")
    ref = res["reference"]
    out += [
        "",
        "### Against the reference figures (`../shared/data/cdnow/README.md`)",
        "",
        "| holdout | churnguard ROC-AUC | reference best baseline | reference plain LightGBM | "
        "churnguard Brier | reference LightGBM Brier |",
        "|---|---|---|---|---|---|",
    ]
    for name in CLASSIC:
        m = c[name]["dates"][0]["scorers"]["model"]
        out.append(
            f"| {name} | {m['roc_auc']:.4f} | {ref['best_baseline_roc_auc'][name]:.3f} | "
            f"{ref['lightgbm_roc_auc'][name]:.3f} | {m['brier']:.4f} | "
            f"{ref['lightgbm_brier'][name]:.3f} |"
        )
    bt = c["39w"]["dates"][0].get("btyd", {})
    if bt:
        bg, pn = bt["params"]["bg"], bt["params"]["pn"]
        out += [
            "",
            "### BTYD baselines",
            "",
            "pymc-marketing, MAP fits on every customer's history at the as-of date, in weeks "
            "(default priors); at 1997-09-30: BG/NBD "
            + ", ".join(f"{k} = {v:.3f}" for k, v in bg.items())
            + "; Pareto/NBD "
            + ", ".join(f"{k} = {v:.3f}" for k, v in pn.items())
            + ". Scored by expected purchases in the window (fewer = riskier) and by P(no "
            "purchase in the window); BG/NBD's P(no purchase) uses the closed form "
            "(pymc-marketing 0.19.2's is too high for one-time buyers; `churnguard.btyd`), "
            "Pareto/NBD's library value agrees with a Monte Carlo of the fitted model.",
        ]
    rt = res["runtime"]
    out += [
        "",
        "### Reproduce",
        "",
        "`make bench-cdnow` (installs the bench extras, then runs `benchmarks/cdnow.py`; needs "
        "`../shared/data/cdnow/CDNOW_master.txt` or `--data PATH`). One date from the command "
        "line: `churnguard ingest --params configs/cdnow.yaml`, then `churnguard backtest --params "
        "configs/cdnow.yaml --as-of 1997-09-30 --window 39w` (or `--dates "
        "1997-11-30,1997-12-31 --window 91d`). Run time on this machine "
        f"({rt['machine']['cpus']} shared cores, load average {rt['load_average_start']:.1f} at "
        f"the start): {rt['seconds']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in rt["phases_seconds"].items())
        + f"), peak RSS {rt['peak_rss_mb']:.0f} MB.",
        "",
    ]
    return "\n".join(out)


def readme_table(res: dict[str, Any]) -> str:
    """The README's CDNOW table (between the cdnow-table markers)."""
    rows = [
        "| evaluation | churnguard ROC-AUC [95% CI] | Pareto/NBD ROC-AUC | lead [95% CI] | "
        "churnguard Brier | best other Brier |",
        "|---|---|---|---|---|---|",
    ]

    def row(label: str, t: dict[str, Any]) -> str:
        s = t["scorers"]
        lead = t["leads"]["roc_auc"]["pareto_nbd"]
        briers = [
            (r["brier"], B.LABELS[n])
            for n, r in s.items()
            if r.get("brier") is not None and n not in ("model", "model_evaluated")
        ]
        b, who = min(briers)
        return (
            f"| {label} | {_ci(s['model'], 'roc_auc')} | {s[lead['baseline']]['roc_auc']:.3f} | "
            f"{_lead(lead)} | {s['model']['brier']:.4f} | {b:.4f} ({who}) |"
        )

    rows.append(row("classic split, 39-week holdout", res["classic"]["39w"]["dates"][0]))
    rows.append(row("classic split, 13-week holdout", res["classic"]["13w"]["dates"][0]))
    for t in res["other_dates"]["dates"]:
        rows.append(row(f"as of {t['as_of']}, {OTHER_WINDOW}-day window", t))
    rows += ["", targets_sentence(res["targets"])]
    return "\n".join(rows)


def targets_sentence(tg: dict[str, Any]) -> str:
    """The issue's targets in one generated sentence (met or not, never rounded up)."""
    parts = []
    for name, label in (("39w", "39-week"), ("13w", "13-week")):
        g = tg[name]
        parts.append(
            f"{label} holdout: ROC-AUC lead over Pareto/NBD {_target_lead(g, 'roc_auc_lead_over_pareto_nbd')} "
            f"({'lower bound above 0' if g['lead_met'] else 'interval includes 0: **not met**'}), "
            f"best Brier {'met' if g['best_brier_met'] else '**not met**'}"
        )
    o = tg["other_dates"]
    parts.append(
        f"{o['dates']} other dates: mean lead {_target_lead(o, 'mean_roc_auc_lead_over_pareto_nbd')} "
        f"({'lower bound above 0' if o['lead_met'] else '**not met**'}; per date "
        f"{o['dates_with_lead_lower_bound_above_0']} of {o['dates']}), best Brier on "
        f"{o['dates_with_best_brier']} of {o['dates']}"
    )
    return "Targets (generated): " + "; ".join(parts) + "."


def write_readme(res: dict[str, Any], path: Path = README) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: the {MARK_START} / {MARK_END} markers are missing")
    new = text[: start + len(MARK_START)] + "\n" + readme_table(res) + "\n" + text[end:]
    write_text_atomic(path, new)


def console(res: dict[str, Any]) -> str:
    lines = []
    for name in CLASSIC:
        lines.append(f"classic {name}: " + B._console_line(res["classic"][name]["dates"][0]))
    for t in res["other_dates"]["dates"]:
        lines.append("other: " + B._console_line(t))
    lines.append("targets: " + json.dumps(res["targets"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CDNOW_master.txt")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, default=RESULTS / "cdnow.json")
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown file to update")
    parser.add_argument("--no-docs", action="store_true", help="leave docs and README alone")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite docs and README from --out, no run"
    )
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    if args.render_only:
        res = json.loads(args.out.read_text(encoding="utf-8"))
    else:
        R.require_btyd()
        res = run(args.data, args.bootstrap)
        write_json_atomic(args.out, res)
    say(console(res))
    if not args.no_docs:
        write_docs_section(markdown(res), SECTION, args.docs)
        write_readme(res)
        say(f"wrote {args.out}, the '{SECTION}' section of {args.docs} and the README table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
