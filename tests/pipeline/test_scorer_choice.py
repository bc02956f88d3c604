"""When the model cannot beat a simple baseline, the lists are ranked by that baseline and
every output says so; every list carries its health block."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.config import EvaluateParams, ReportParams, load_params
from churnguard.csvsafe import read_excel_csv
from churnguard.evaluate import run_evaluate
from churnguard.score import run_score
from churnguard.scorers import load_scorer, scorer_digest, scorer_folder
from churnguard.scoring import RISK_LIST_SCHEMA
from churnguard.train import run_train

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2024, 12, 31)  # the fixture's data ends here


@pytest.fixture(scope="module")
def recency_only(pipeline, tmp_path_factory):
    """The fixture's snapshots relabelled so that churn depends on recency alone: no
    scorer can do better than days since the last purchase."""
    root = tmp_path_factory.mktemp("recency_only")
    src = Path(pipeline.features.output_dir)
    (root / "features").mkdir()
    shutil.copy(src / "cutoffs.json", root / "features")
    snaps = pd.read_parquet(src / "snapshots.parquet")
    rng = np.random.default_rng(5)
    recency = snaps["recency_days"].to_numpy(dtype=float)
    p = 1 / (1 + np.exp(-(recency - 60) / 25))
    labelled = snaps["churned"].notna()
    draws = (rng.random(len(snaps)) < p).astype(
        snaps["churned"].dtype.numpy_dtype
        if hasattr(snaps["churned"].dtype, "numpy_dtype")
        else snaps["churned"].dtype
    )
    snaps.loc[labelled, "churned"] = draws[labelled.to_numpy()]
    snaps.to_parquet(root / "features" / "snapshots.parquet", index=False)
    tp = pipeline.train.model_copy(
        update={"features_dir": str(root / "features"), "model_dir": str(root / "models")}
    )
    run_train(tp)
    metrics = run_evaluate(EvaluateParams(model_dir=tp.model_dir))
    return tp, metrics


def test_the_model_does_not_beat_recency_so_a_baseline_ranks_the_lists(
    pipeline, recency_only, tmp_path
):
    tp, metrics = recency_only
    choice = metrics["choice"]
    assert choice["scorer"] in ("recency_rank", "logreg"), choice["reasons"]
    assert choice["lead_ci"][0] <= 0 and "does not exclude 0" in choice["reasons"][0]
    headline = json.loads((Path(tp.model_dir) / "eval" / "headline.json").read_text())
    assert headline["chosen"] == choice["scorer"] and headline["model"]["scorer"] == "model"
    assert headline["best_baseline"]["scorer"] == choice["best_baseline"]

    sp = load_params(REPO / "params.yaml").score.model_copy(update={"output_root": str(tmp_path)})
    summary = run_score(
        sp,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=tp.model_dir,  # the folder, as the DVC score stage passes it
        transactions=pipeline.transactions,
        as_of=LAST,
    )
    chosen = choice["scorer"]
    folder = scorer_folder(tp.model_dir, chosen)
    # ranked by the baseline: its digest is the scoring model, its probabilities the list's
    assert summary["inputs"]["model_digest"] == scorer_digest(folder)
    q = summary["model_quality"]
    assert q["scorer"] == chosen and q["evaluated"] and q["model_roc_auc"] is not None
    assert q["selection"] == choice["reasons"]
    assert any("ranked by a simple baseline" in w for w in summary["warnings"])

    out = tmp_path / LAST.isoformat()
    listed = read_excel_csv(out / "risk_list.csv", RISK_LIST_SCHEMA)
    snap = pd.read_parquet(Path(pipeline.features.output_dir) / "current.parquet")
    label = {"recency_rank": "days since last purchase", "logreg": "logistic regression"}[chosen]
    assert set(listed["scored_by"]) == {f"baseline: {label} (from folder)"}  # every row says so
    active = listed[listed["risk_band"] != "lapsed"].head(50)
    rows = snap.set_index("customer_id").loc[active["customer_id"]].reset_index()
    expected = np.round(load_scorer(folder).predict(rows), 6)
    np.testing.assert_allclose(active["p_churn"].to_numpy(dtype=float), expected, atol=1e-6)
    # reasons come from the baseline's own contributions, in the usual words
    manual = listed[(listed["owner"] == "account manager") & (listed["risk_band"] != "lapsed")]
    said = manual["reasons"].str.len() > 0
    assert said.mean() > 0.5 and manual.loc[said, "reasons"].str.contains("No order for").any()
    # a customer without a reason has no feature raising their risk above a typical one's
    quiet = snap.set_index("customer_id").loc[manual.loc[~said, "customer_id"]].reset_index()
    if len(quiet):
        assert (load_scorer(folder).contributions(quiet).max(axis=1) <= 1e-12).all()

    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Ranked by: <strong>" in html and "ranked by a simple baseline" in html
    assert "did not beat it surely" in html


def test_every_list_carries_its_health(pipeline, tmp_path):
    """Scorer, quality, freshness, drift and warnings in summary.json and the --json."""
    model_dir = tmp_path / "models"
    shutil.copytree(pipeline.train.model_dir, model_dir)
    run_evaluate(EvaluateParams(model_dir=str(model_dir)))
    sp = load_params(REPO / "params.yaml").score.model_copy(
        update={"output_root": str(tmp_path / "out"), "drift_psi_threshold": 0.0001}
    )
    summary = run_score(
        sp,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=str(model_dir),
        transactions=pipeline.transactions,
        as_of=LAST,
    )
    q, drift = summary["model_quality"], summary["drift"]
    assert q["scorer"] in ("model", "logreg", "recency_rank") and q["evaluated"]
    assert q["scorer_newest_label"] == "2024-12-31" and q["scorer_age_days"] == 0
    assert summary["data_freshness"]["days_from_last_transaction_to_as_of"] == 0
    assert drift["measured"] and drift["features_over"]  # every shift counts at this threshold
    assert set(drift["psi"]) >= {"recency_days", "tenure_days"}
    assert drift["top"][0]["psi"] == max(drift["psi"].values())
    assert any("PSI" in w and "score.drift_psi_threshold" in w for w in summary["warnings"])
    written = json.loads((tmp_path / "out" / LAST.isoformat() / "summary.json").read_text())
    assert written["drift"] == drift and written["model_quality"] == q

    # a scorer last checked long ago is flagged with what to do
    later = sp.model_copy(
        update={"output_root": str(tmp_path / "later"), "warn_champion_age_days": 1}
    )
    old = run_score(
        later,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=str(model_dir),
        transactions=pipeline.transactions,
        as_of=LAST + dt.timedelta(days=10),
    )
    assert old["model_quality"]["scorer_age_days"] == 10
    assert any("score.warn_champion_age_days" in w for w in old["warnings"])


def test_a_list_written_before_a_column_was_added_still_compares(tmp_path):
    """The next run reads back only the columns `change` needs (PREVIOUS_SCHEMA), so
    adding a column to the lists never turns last week's list into 'first list'."""
    from churnguard.csvsafe import write_excel_csv_atomic
    from churnguard.scoring import PREVIOUS_SCHEMA, RISK_LIST_COLUMNS

    old_columns = [c for c in RISK_LIST_COLUMNS if c != "scored_by"]
    row = {c: "" for c in old_columns}
    row.update(customer_id="C1", rank="1", risk_band="high", p_churn="0.7", recency_days="3")
    row.update(last_purchase_date="2024-12-01", account_manager="Sara Ahmadi")
    path = tmp_path / "risk_list.csv"
    write_excel_csv_atomic(path, pd.DataFrame([row], columns=old_columns))
    back = read_excel_csv(path, PREVIOUS_SCHEMA)
    assert back.loc[0, "customer_id"] == "C1" and back.loc[0, "p_churn"] == 0.7
