"""Every list says how fresh its data is, and stale or future-dated data is said loudly:
in summary.json and the report, not only in a log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from churnguard.config import ReportParams, load_params
from churnguard.errors import DataError
from churnguard.score import run_score
from churnguard.scoring import data_freshness

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2024, 12, 31)  # the fixture's data ends here


def run(pipeline, root: Path, tx: Path | None = None, **kw):
    sp = load_params(REPO / "params.yaml").score.model_copy(update={"output_root": str(root)})
    return run_score(
        sp,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=pipeline.train.model_dir,
        transactions=tx or pipeline.transactions,
        **kw,
    )


@pytest.mark.parametrize(
    ("as_of", "warned"),
    [
        (LAST, None),
        (LAST + dt.timedelta(days=7), None),
        (LAST + dt.timedelta(days=30), "somewhat overstated"),
        (LAST + dt.timedelta(days=365), "more than the 90-day churn horizon"),
    ],
    ids=["on the last day", "a week later", "a month later", "a year later"],
)
def test_freshness_is_reported_and_stale_data_warned(as_of, warned):
    got = data_freshness(dt.date(2022, 1, 1), LAST, as_of, 90)
    assert got["last_transaction"] == "2024-12-31"
    assert got["days_from_last_transaction_to_as_of"] == (as_of - LAST).days
    if warned is None:
        assert got["warnings"] == []
    else:
        assert len(got["warnings"]) == 1 and warned in got["warnings"][0]


def test_scoring_a_year_after_the_data_says_so_in_summary_and_report(pipeline, tmp_path):
    as_of = LAST + dt.timedelta(days=365)
    with pytest.raises(DataError, match="--allow-stale") as err:
        run(pipeline, tmp_path, as_of=as_of)
    assert err.value.exit_code == 3 and "365 days before" in str(err.value)
    assert not (tmp_path / as_of.isoformat()).exists()
    summary = run(pipeline, tmp_path, as_of=as_of, allow_stale=True)
    assert summary["data_freshness"]["days_from_last_transaction_to_as_of"] == 365
    assert any("365 days before the as-of date" in w for w in summary["warnings"])
    out = tmp_path / as_of.isoformat()
    assert (
        json.loads((out / "summary.json").read_text(encoding="utf-8"))["warnings"]
        == summary["warnings"]
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('class="warn"') == len(summary["warnings"]) >= 1
    assert "365 days before the as-of date" in html


def test_a_line_dated_in_the_future_cannot_move_the_default_as_of(pipeline, tmp_path):
    tx = pd.read_parquet(pipeline.transactions)
    tx.loc[tx.index[0], "ts"] = pd.Timestamp("2099-01-01")
    path = tmp_path / "future.parquet"
    tx.to_parquet(path, index=False)
    with pytest.raises(DataError, match="1 transaction line") as err:
        run(pipeline, tmp_path / "scores", tx=path)
    assert (
        err.value.exit_code == 3 and "2099-01-01" in str(err.value) and "--as-of" in str(err.value)
    )
    assert not (tmp_path / "scores").exists()
    # an explicit as-of is the operator's decision: scored, with the future line unseen
    assert run(pipeline, tmp_path / "scores", tx=path, as_of=LAST)["status"] == "written"


def test_lists_say_how_good_the_model_is(pipeline, tmp_path):
    """The fixture's model folder has no evaluation: the lists say so. After
    `churnguard evaluate` writes eval/metrics.json beside it, they carry the figures."""
    import shutil

    from churnguard.config import EvaluateParams
    from churnguard.evaluate import run_evaluate

    model_dir = tmp_path / "model"  # the model files only: other tests may evaluate the fixture's
    shutil.copytree(pipeline.train.model_dir, model_dir, ignore=shutil.ignore_patterns("eval"))
    sp = load_params(REPO / "params.yaml").score
    kw = {"model": str(model_dir), "transactions": pipeline.transactions, "as_of": LAST}
    a = sp.model_copy(update={"output_root": str(tmp_path / "a")})
    summary = run_score(a, pipeline.features, ReportParams(), pipeline.engine, **kw)
    assert summary["model_quality"]["evaluated"] is False
    assert any("no evaluation" in w for w in summary["warnings"])

    (model_dir / "eval").mkdir()
    shutil.copy(Path(pipeline.train.model_dir) / "eval" / "predictions.parquet", model_dir / "eval")
    run_evaluate(EvaluateParams(model_dir=str(model_dir)))
    sp = sp.model_copy(update={"output_root": str(tmp_path / "b")})
    summary = run_score(
        sp,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=str(model_dir),
        transactions=pipeline.transactions,
        as_of=LAST,
    )
    q = summary["model_quality"]
    assert (
        q["evaluated"] and 0.5 < q["roc_auc"] <= 1 and q["best_baseline"] in q["baselines_roc_auc"]
    )
    assert not any("no evaluation" in w for w in summary["warnings"])
    html = (tmp_path / "b" / LAST.isoformat() / "report.html").read_text(encoding="utf-8")
    assert f"ROC-AUC {q['roc_auc']:.3f}" in html and "lead" in html


def test_the_cli_refuses_stale_data_with_exit_3_and_names_the_flag(pipeline, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from churnguard.cli import app

    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["engine"]["temp_directory"] = str(tmp_path / "duck")
    data["score"].update(transactions=str(pipeline.transactions), output_root=str(tmp_path / "s"))
    data["outcomes"]["ledger"] = str(tmp_path / "ledger")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    args = [
        "score",
        "--params",
        str(params),
        "--model",
        pipeline.train.model_dir,
        "--as-of",
        "2025-03-01",
    ]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 3 and "--allow-stale" in refused.output
    allowed = CliRunner().invoke(app, [*args, "--allow-stale", "--json"])
    assert allowed.exit_code == 0, allowed.output
    summary = json.loads(allowed.stdout.strip().splitlines()[-1])
    assert any("60 days before the as-of date" in w for w in summary["warnings"])
