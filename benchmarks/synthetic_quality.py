"""Model quality on the synthetic default against the generator's latent truth (not a test).

Run after `make run` (or `dvc repro`) in the project folder:

    .venv/bin/python benchmarks/synthetic_quality.py

Reads the test-cutoff predictions (models/eval/predictions.parquet) and the generator's
truth file, and compares the model and the baselines with two oracles that know what no
model can see:

- *dropout oracle*: 1 if the customer had already dropped out at the cutoff (latent
  state), else P(no purchase in the horizon) of a constant-rate Pareto/NBD customer,
  μ/(λ+μ)·(1 − e^{−(λ+μ)h}) + e^{−(λ+μ)h}, from the customer's own λ and μ;
- *state-only oracle*: just the dead/alive flag at the cutoff.

Writes benchmarks/results/synthetic_quality.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churnguard.config import load_params


def oracle_scores(
    frame: pd.DataFrame, truth: pd.DataFrame, cutoff: dt.date, horizon: int
) -> pd.DataFrame:
    t = truth.set_index("customer_id").reindex(frame["customer_id"])
    dropout = pd.to_datetime(t["dropout_date"].astype(str), errors="coerce").dt.date
    dead = np.array([d is not pd.NaT and d is not None and d <= cutoff for d in dropout])
    lam = t["purchase_rate_per_day"].to_numpy(dtype=float)
    mu = t["dropout_rate_per_day"].to_numpy(dtype=float)
    s = lam + mu
    p_none_alive = mu / s * (1 - np.exp(-s * horizon)) + np.exp(-s * horizon)
    return pd.DataFrame(
        {"p_oracle": np.where(dead, 1.0, p_none_alive), "p_state_oracle": dead.astype(float)},
        index=frame.index,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="benchmarks/results/synthetic_quality.json")
    args = ap.parse_args()
    params = load_params(args.params)
    preds = pd.read_parquet(Path(params.evaluate.model_dir) / "eval" / "predictions.parquet")
    test = preds[preds["split"] == "test"].reset_index(drop=True)
    meta = json.loads(
        (Path(params.features.output_dir) / "cutoffs.json").read_text(encoding="utf-8")
    )
    cutoff = dt.date.fromisoformat(str(test["cutoff_date"].iloc[0]))
    truth = pd.read_parquet(params.generate.truth_output)
    test = pd.concat([test, oracle_scores(test, truth, cutoff, int(meta["horizon_days"]))], axis=1)
    y = test["churned"].to_numpy(dtype=int)
    rows = {}
    for col in [c for c in test.columns if c.startswith("p_")]:
        p = test[col].to_numpy(dtype=float)
        rows[col.removeprefix("p_")] = {
            "roc_auc": round(float(roc_auc_score(y, p)), 4),
            "pr_auc": round(float(average_precision_score(y, p)), 4),
            "brier": round(float(brier_score_loss(y, np.clip(p, 0, 1))), 4),
        }
    result = {
        "test_cutoff": str(cutoff),
        "horizon_days": int(meta["horizon_days"]),
        "n": int(len(test)),
        "churn_rate": round(float(y.mean()), 4),
        "scorers": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"test cutoff {cutoff}, {len(test):,} active customers, churn rate {y.mean():.1%}")
    print(f"{'scorer':<16}{'ROC-AUC':>9}{'PR-AUC':>9}{'Brier':>9}")
    for name, m in sorted(rows.items(), key=lambda kv: -kv[1]["roc_auc"]):
        print(f"{name:<16}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['brier']:>9.4f}")


if __name__ == "__main__":
    main()
