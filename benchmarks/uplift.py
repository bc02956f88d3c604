"""Does ``report uplift`` recover known save rates? The synthetic closed loop at scale.

For each seed: a synthetic world (default 40,000 customers, 2022-01-01..2024-12-31) is
generated and ingested; the model is trained with ``features.as_of`` at the first list
date (it sees nothing later); then :func:`churnguard.simloop.run_loop` scores four lists
four weeks apart with the shipped playbook and the default 10% control group (capacity
200 manual actions per manager, so the manual actions get volume), the world reacts to
each list with the known save rates below, managers' workbooks are imported, and ``report
uplift`` measures every action after the label window. Coverage = the share of judged
intervals (at least 10 churners in each arm) that hold the known rate; at 95% it should be
about 95%.

    .venv/bin/python benchmarks/uplift.py                 # 3 seeds, ~5 minutes on 2 cores
    .venv/bin/python benchmarks/uplift.py --seeds 11 --customers 10000

Writes benchmarks/results/uplift.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine  # noqa: E402

from churnguard.config import (  # noqa: E402
    EngineParams,
    FeaturesParams,
    GenerateParams,
    IngestParams,
    SourceParams,
    TrainParams,
    load_params,
)
from churnguard.features import run_features  # noqa: E402
from churnguard.ingest import run_ingest  # noqa: E402
from churnguard.simloop import run_loop  # noqa: E402
from churnguard.synth import run_generate  # noqa: E402
from churnguard.train import run_train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRUE_RATES = {  # what the simulated world does; params.yaml assumes other values
    "personal_call": 0.40,
    "recognition": 0.25,
    "winback_call": 0.30,
    "winback_survey": 0.08,
    "onboarding_checkin": 0.20,
    "repurchase_reminder": 0.15,
    "reminder": 0.0,
    "overflow_email": 0.10,
}
LIST_DATES = [dt.date(2024, 6, 3) + dt.timedelta(days=28 * k) for k in range(4)]
JUDGED = ("as assumed", "lower than assumed", "higher than assumed")
KEEP = [  # the uplift.csv columns the results file keeps
    "action",
    "list_date",
    "n_treated",
    "n_control",
    "churned_treated",
    "churned_control",
    "save_rate",
    "save_rate_low",
    "save_rate_high",
    "assumed_save_rate",
    "verdict",
    "outcomes_recorded",
    "truth",
    "judged",
    "covered",
]


def one_seed(seed: int, n: int, share: float, capacity: int, root: Path) -> dict:
    started = time.perf_counter()
    engine = EngineParams(temp_directory=str(root / "duck"), threads=2, memory_limit="3GB")
    gp = GenerateParams(
        n_customers=n, seed=seed, start_date=dt.date(2022, 1, 1), end_date=dt.date(2024, 12, 31)
    )
    raw = root / "raw.parquet"
    run_generate(
        gp.model_copy(
            update={
                "format": "parquet",
                "output": str(raw),
                "truth_output": str(root / "t.parquet"),
            }
        )
    )
    run_ingest(
        IngestParams(source=SourceParams(path=str(raw)), output_dir=str(root / "in")), engine
    )
    fp = FeaturesParams(
        input=str(root / "in" / "transactions.parquet"),
        output_dir=str(root / "features"),
        as_of=LIST_DATES[0],
    )
    run_features(fp, engine)
    tp = TrainParams(features_dir=fp.output_dir, model_dir=str(root / "models"))
    run_train(tp)
    trained = time.perf_counter() - started
    sp = load_params(REPO / "params.yaml").score.model_copy(
        update={"control_share": share, "manager_capacity_per_week": capacity, "explain_top": 0}
    )
    loop = run_loop(
        root / "loop",
        gp,
        sp,
        fp.model_copy(update={"as_of": None}),
        engine,
        tp.model_dir,
        LIST_DATES,
        TRUE_RATES,
    )
    table = loop.uplift["table"]
    table = table.assign(truth=table["action"].map(TRUE_RATES))
    table["judged"] = table["verdict"].isin(JUDGED)
    table["covered"] = (table["save_rate_low"] <= table["truth"]) & (
        table["truth"] <= table["save_rate_high"]
    )
    realised = loop.realised.set_index("action")["saved_share"].round(4).to_dict()
    return {
        "seed": seed,
        "seconds_total": round(time.perf_counter() - started, 1),
        "seconds_generate_ingest_train": round(trained, 1),
        "rounds": loop.rounds,
        "realised_saved_share_of_treated_entries": realised,
        "recommendations": loop.uplift["recommendations"],
        "pooled": json.loads(table.loc[table["scope"] == "pooled", KEEP].to_json(orient="records")),
        "per_list": json.loads(table.loc[table["scope"] == "list", KEEP].to_json(orient="records")),
    }


def coverage(runs: list[dict], key: str) -> dict:
    rows = [r for run in runs for r in run[key] if r["judged"] and r["truth"] is not None]
    inside = sum(bool(r["covered"]) for r in rows)
    return {
        "judged": len(rows),
        "covered": inside,
        "share": round(inside / len(rows), 3) if rows else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--customers", type=int, default=40_000)
    ap.add_argument("--control-share", type=float, default=0.1)
    ap.add_argument("--capacity", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "uplift.json")
    args = ap.parse_args()
    started = time.perf_counter()
    runs = []
    for seed in args.seeds:
        root = Path(tempfile.mkdtemp(prefix=f"cg-uplift-{seed}-"))
        try:
            runs.append(one_seed(seed, args.customers, args.control_share, args.capacity, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"seed {seed}: {runs[-1]['seconds_total']} s", file=sys.stderr)
    result = {
        "measured_on": dt.date.today().isoformat(),
        "machine": machine(),
        "customers": args.customers,
        "control_share": args.control_share,
        "manager_capacity_per_week": args.capacity,
        "list_dates": [d.isoformat() for d in LIST_DATES],
        "true_save_rates": TRUE_RATES,
        "confidence": 0.95,
        "coverage_pooled": coverage(runs, "pooled"),
        "coverage_per_list": coverage(runs, "per_list"),
        "seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        "| action | true | "
        + " | ".join(f"seed {r['seed']}: measured [95% CI] (treated / held out)" for r in runs)
        + " |"
    )
    print("|---|---|" + "---|" * len(runs))
    actions = [a for a in TRUE_RATES if any(p["action"] == a for r in runs for p in r["pooled"])]
    for action in actions:
        cells = []
        for r in runs:
            p = next((p for p in r["pooled"] if p["action"] == action), None)
            if (
                p is None
                or p["save_rate_low"] is None
                or math.isnan(p["save_rate_low"] or math.nan)
            ):
                cells.append(
                    "–"
                    if p is None
                    else f"{p['verdict']} ({p['n_treated']:,} / {p['n_control']:,})"
                )
                continue
            mark = "" if p["covered"] else " ✗"
            judged = "" if p["judged"] else " (too few)"
            cells.append(
                f"{p['save_rate']:.2f} [{p['save_rate_low']:.2f}, {p['save_rate_high']:.2f}]{mark}{judged} "
                f"({p['n_treated']:,} / {p['n_control']:,})"
            )
        print(f"| {action} | {TRUE_RATES[action]:.2f} | " + " | ".join(cells) + " |")
    c1, c2 = result["coverage_pooled"], result["coverage_per_list"]
    print(
        f"\ncoverage of the 95% intervals: pooled {c1['covered']}/{c1['judged']}, "
        f"per list date {c2['covered']}/{c2['judged']}; {result['seconds']} s → {args.out}"
    )


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
