"""Evaluation: metrics against sklearn and hand cases, profit, slices, plot tables, the stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from churnguard import evaluate as E
from churnguard import metrics as M
from churnguard.config import EvaluateParams
from churnguard.errors import ConfigError, DataError

# --------------------------------------------------------------------------- binary_metrics


def test_binary_metrics_agree_with_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(11)
    y = rng.binomial(1, 0.3, 500)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, y.size), 0, 1)
    p[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # exercise the log-loss clip
    m = M.binary_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)), abs=1e-9)
    assert m["n"] == 500 and m["positives"] == int(y.sum())
    assert m["base_rate"] == pytest.approx(y.mean())


def test_perfect_scorer_has_auc_one_and_reversed_scorer_zero() -> None:
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.7])
    assert M.binary_metrics(y, p)["roc_auc"] == 1.0
    assert M.binary_metrics(y, p)["pr_auc"] == 1.0
    assert M.binary_metrics(y, 1 - p)["roc_auc"] == 0.0


@pytest.mark.parametrize(
    ("positives", "expected_lift"),
    [
        pytest.param(4, 5.0, id="enough churners to fill the top decile: lift is 1/base_rate"),
        pytest.param(1, 10.0, id="one churner in a top decile of two: lift is capped at n/k"),
    ],
)
def test_lift_of_a_perfect_scorer(positives: int, expected_lift: float) -> None:
    y = np.zeros(20, dtype=int)
    y[:positives] = 1
    p = np.where(y == 1, 0.9, 0.1)
    assert M.top_k_size(20) == 2
    assert M.binary_metrics(y, p)["lift_top10"] == pytest.approx(expected_lift)


def test_ece_is_zero_for_perfectly_calibrated_bins_and_the_gap_otherwise() -> None:
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.25] * 4 + [0.75] * 4)
    assert M.binary_metrics(y, p, bins=10)["ece"] == pytest.approx(0.0)
    # all predicted 0.9, none churn: the gap is 0.9 in the only occupied bin
    assert M.expected_calibration_error(np.zeros(5), np.full(5, 0.9)) == pytest.approx(0.9)
    # two bins, each weighted by its count: (3 × |0.1 − 0| + 1 × |0.9 − 0|) / 4
    y2, p2 = np.array([0, 0, 0, 0]), np.array([0.1, 0.1, 0.1, 0.9])
    assert M.expected_calibration_error(y2, p2, bins=2) == pytest.approx(0.3)


def test_single_class_gives_null_aucs_and_no_lift_without_churners() -> None:
    m = M.binary_metrics([0, 0, 0], [0.1, 0.5, 0.2])
    assert m["roc_auc"] is None and m["pr_auc"] is None and m["lift_top10"] is None
    assert m["brier"] == pytest.approx((0.01 + 0.25 + 0.04) / 3)


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        M.binary_metrics([0, 1], [0.2, 1.5])
    with pytest.raises(ValueError, match="0/1"):
        M.binary_metrics([0, 2], [0.2, 0.5])
    with pytest.raises(ValueError, match="y has 2"):
        M.binary_metrics([0, 1], [0.2])


# --------------------------------------------------------------------------- ranking at a cut


def test_precision_at_k_hand_case_with_k_capped_at_n() -> None:
    y = [1, 0, 1, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert M.precision_at_k(y, p, [1, 2, 3, 10]) == pytest.approx(
        {1: 1.0, 2: 0.5, 3: 2 / 3, 10: 2 / 5}
    )


def test_ties_at_the_cut_count_in_expectation_whatever_the_row_order() -> None:
    # two customers tied at the top, one churned: a list of one catches half a churner
    assert M.precision_at_k([1, 0, 0, 0], [0.6, 0.6, 0.1, 0.1], [1]) == {1: 0.5}
    assert M.precision_at_k([0, 1, 0, 0], [0.6, 0.6, 0.1, 0.1], [1]) == {1: 0.5}
    rng = np.random.default_rng(5)
    y = rng.binomial(1, 0.3, 300)
    rule = rng.binomial(1, 0.4, 300) * 0.5 + 0.2  # a 0/1 rule, calibrated: massive ties
    order = rng.permutation(300)
    m1, m2 = M.binary_metrics(y, rule), M.binary_metrics(y[order], rule[order])
    assert m1["lift_top10"] == pytest.approx(m2["lift_top10"], abs=1e-12)
    assert M.precision_at_k(y, rule, [50]) == pytest.approx(
        M.precision_at_k(y[order], rule[order], [50])
    )


# --------------------------------------------------------------------------- profit

# p ranks customers A > B > C > D; B did not churn (saving nobody), D is worth little
PROFIT_CASE = {
    "y": [1, 0, 1, 1],
    "p": [0.9, 0.7, 0.4, 0.1],
    "value": [100.0, 50.0, 200.0, 10.0],
    "cost": 10.0,
    "save_rate": 0.5,
}


def test_profit_curve_hand_case() -> None:
    curve = M.profit_curve(**PROFIT_CASE)
    assert list(curve.columns) == ["k", "profit"]
    assert curve["k"].tolist() == [0, 1, 2, 3, 4]
    # k=1: 0.5×100 − 10; k=2: 50 − 20; k=3: 0.5×300 − 30; k=4: 0.5×310 − 40
    assert curve["profit"].tolist() == pytest.approx([0.0, 40.0, 30.0, 120.0, 115.0])
    assert M.best_profit(**PROFIT_CASE) == pytest.approx(
        {"k": 3, "profit": 120.0, "share_contacted": 0.75}
    )


def test_profit_curve_on_a_grid_keeps_the_best_list_size() -> None:
    rng = np.random.default_rng(2)
    n = 1_000
    y = rng.binomial(1, 0.3, n)
    p = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1)
    value = rng.gamma(2.0, 100.0, n)
    best = M.best_profit(y, p, value, cost=20.0, save_rate=0.3)
    grid = M.profit_curve(y, p, value, cost=20.0, save_rate=0.3, grid_points=50)
    full = M.profit_curve(y, p, value, cost=20.0, save_rate=0.3)
    assert len(grid) <= 51 and best["k"] in set(grid["k"])
    assert grid["profit"].max() == pytest.approx(best["profit"])
    assert full["profit"].max() == pytest.approx(best["profit"])
    assert 0 < best["k"] < n


def test_profit_with_nobody_worth_contacting_is_an_empty_list() -> None:
    best = M.best_profit([0, 0, 1], [0.9, 0.5, 0.1], [10.0, 10.0, 10.0], cost=50.0, save_rate=0.5)
    assert best == {"k": 0, "profit": 0.0, "share_contacted": 0.0}


# --------------------------------------------------------------------------- slices


def test_tenure_bands_label_and_assign() -> None:
    bands = [90, 365, 730]
    assert M.tenure_band_labels(bands) == ["<90d", "90–365d", "365–730d", "≥730d"]
    got = M.tenure_band([0, 89, 90, 364, 365, 729, 730, 5000, np.nan], bands)
    assert got.tolist() == [
        "<90d", "<90d", "90–365d", "90–365d", "365–730d", "365–730d", "≥730d", "≥730d", "unknown"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="tenure_bands_days"):
        M.tenure_band_labels([365, 90])


def test_slices_report_single_class_and_empty_slices_without_aucs() -> None:
    y = np.array([1, 0, 1, 0, 1, 1])
    scores = {"model": np.array([0.9, 0.1, 0.8, 0.2, 0.6, 0.7])}
    groups = ["Champions", "Champions", "Champions", "Champions", "Lost", "Lost"]
    out = M.slice_metrics(y, scores, groups, order=["Lost", "New"])
    assert list(out) == ["Lost", "New", "Champions"]
    champions = out["Champions"]
    assert champions["n"] == 4 and champions["base_rate"] == 0.5
    assert champions["scorers"]["model"]["roc_auc"] == 1.0
    lost = out["Lost"]
    assert lost["n"] == 2 and lost["base_rate"] == 1.0
    assert lost["scorers"]["model"]["roc_auc"] is None
    assert lost["scorers"]["model"]["pr_auc"] is None
    assert lost["scorers"]["model"]["brier"] == pytest.approx((0.16 + 0.09) / 2)
    assert out["New"] == {
        "n": 0,
        "base_rate": None,
        "scorers": {"model": {"roc_auc": None, "pr_auc": None, "brier": None}},
    }


# --------------------------------------------------------------------------- plot tables


def random_scores(n: int = 400, seed: int = 4) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, n)
    good = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1)
    rule = np.where(rng.random(n) < 0.5, 0.45, 0.2)
    return y, {"model": good, "recency_rule": rule}


def test_roc_table_integrates_to_the_auc_and_tables_have_the_fixed_grid() -> None:
    y, scores = random_scores()
    roc = M.roc_table(y, scores)
    assert len(roc) == 101 and roc["fpr"].iloc[0] == 0.0 and roc["fpr"].iloc[-1] == 1.0
    for name, p in scores.items():
        tpr = roc[f"tpr_{name}"].to_numpy()
        assert np.all(np.diff(tpr) >= -1e-12)
        area = np.sum((tpr[1:] + tpr[:-1]) / 2 * np.diff(roc["fpr"].to_numpy()))
        assert area == pytest.approx(roc_auc_score(y, p), abs=0.01)
    pr = M.pr_table(y, scores)
    assert np.all(np.diff(pr["precision_model"].to_numpy()) <= 1e-12)  # interpolated: monotone
    assert pr["precision_model"].iloc[-1] >= y.mean()
    gain = M.gain_table(y, scores)
    assert gain["gain_model"].iloc[0] == 0.0 and gain["gain_model"].iloc[-1] == pytest.approx(1.0)
    assert gain["lift_model"].iloc[-1] == pytest.approx(1.0)
    # the rule's tied block is spread evenly: gain grows linearly inside it
    assert np.allclose(np.diff(gain["gain_recency_rule"].to_numpy()[5:45], n=2), 0, atol=1e-12)


def test_calibration_table_leaves_empty_bins_empty() -> None:
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    table = M.calibration_table(y, {"model": np.array([0.25] * 4 + [0.75] * 4)}, bins=4)
    assert table["bin_mid"].tolist() == [0.125, 0.375, 0.625, 0.875]
    assert table["perfect"].tolist() == table["bin_mid"].tolist()
    observed = table["observed_model"]
    assert observed.isna().tolist() == [True, False, True, False]
    assert observed.iloc[[1, 3]].tolist() == [0.25, 0.75]
    lines = E.table_to_csv(table).splitlines()
    assert lines[:3] == [
        "bin_mid,perfect,observed_model",
        "0.125000,0.125000,",
        "0.375000,0.375000,0.250000",
    ]


def test_pr_table_hand_case_takes_the_best_precision_at_or_beyond_each_recall() -> None:
    # thresholds 0.9 → (recall 0.5, precision 1); 0.8 → (0.5, 0.5); 0.7 → (1, 2/3)
    pr = M.pr_table([1, 0, 1, 0], {"model": [0.9, 0.8, 0.7, 0.6]}).set_index("recall")
    assert pr.loc[0.0, "precision_model"] == 1.0
    assert pr.loc[0.5, "precision_model"] == 1.0
    assert pr.loc[0.51, "precision_model"] == pytest.approx(2 / 3)
    assert pr.loc[1.0, "precision_model"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- the stage


def write_predictions(model_dir: Path, n: int = 600, seed: int = 9) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for split, cutoff in (("valid", "2025-03-31"), ("test", "2025-04-30")):
        y = rng.binomial(1, 0.3, n)
        recency = rng.integers(0, 400, n)
        tenure = recency + rng.integers(0, 1200, n)
        logit = 2.0 * y - 1.0 + rng.normal(0, 1.0, n)
        p_model = 1 / (1 + np.exp(-logit))
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "cutoff_date": pd.Timestamp(cutoff),
                    "customer_id": [f"C{i:04d}" for i in range(n)],
                    "churned": y,
                    "rfm_segment": rng.choice(["Champions", "At risk", "Lost"], n),
                    "tenure_days": tenure,
                    "recency_days": recency,
                    "monetary_total": rng.gamma(2.0, 150.0, n).round(2),
                    "purchase_days": 1 + rng.poisson(tenure / 60),
                    "p_model": p_model,
                    "p_model_raw": np.clip(p_model * 1.2, 0, 1),
                    "p_recency_rule": np.where(recency > 180, 0.45, 0.25),
                    "p_recency_rank": np.clip(recency / 500, 0, 1),
                    "p_rfm": rng.uniform(0.1, 0.5, n),
                    "p_logreg": 1 / (1 + np.exp(-(logit * 0.5 + rng.normal(0, 1, n)))),
                }
            )
        )
    # make one slice single-class on the test cutoff
    test = frames[1]
    test.loc[test.index[:15], "rfm_segment"] = "New"
    test.loc[test.index[:15], "churned"] = 0
    (model_dir / "eval").mkdir(parents=True)
    pd.concat(frames, ignore_index=True).to_parquet(model_dir / "eval" / "predictions.parquet")


def refuse_nan(token: str) -> None:
    raise AssertionError(f"metrics.json contains {token}")


def test_run_evaluate_end_to_end_is_complete_and_byte_stable(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    write_predictions(model_dir)
    params = EvaluateParams(model_dir=str(model_dir), list_sizes=[50, 100, 1000])
    eval_dir = model_dir / "eval"
    files = ["metrics.json"] + [f"plots/{name}.csv" for name in M.PLOT_FILES]

    metrics = E.run_evaluate(params)
    first = {f: (eval_dir / f).read_bytes() for f in files}
    assert E.run_evaluate(params) == metrics
    second = {f: (eval_dir / f).read_bytes() for f in files}
    assert first == second

    on_disk = json.loads(first["metrics.json"], parse_constant=refuse_nan)
    assert on_disk == metrics
    assert on_disk["test_cutoff"] == "2025-04-30" and on_disk["n_test"] == 600
    scorers = on_disk["scorers"]
    assert set(scorers) == {"model", "model_raw", "recency_rule", "recency_rank", "rfm", "logreg"}
    model = scorers["model"]
    assert model["roc_auc"] > scorers["rfm"]["roc_auc"]
    assert set(model["precision_at"]) == {"50", "100", "1000"}
    assert model["precision_at"]["1000"] == pytest.approx(on_disk["base_rate"], abs=1e-6)
    assert set(model["best_profit"]) == {"k", "profit", "share_contacted"}
    assert on_disk["calibration"]["model_brier"] == model["brier"]
    assert on_disk["calibration"]["model_raw_brier"] == scorers["model_raw"]["brier"]
    new = on_disk["slices"]["rfm_segment"]["New"]
    assert new["n"] == 15 and new["base_rate"] == 0.0
    assert new["scorers"]["model"]["roc_auc"] is None
    bands = on_disk["slices"]["tenure_band"]
    assert set(bands) == {"<90d", "90–365d", "365–730d", "≥730d"}
    assert sum(b["n"] for b in bands.values()) == 600

    # every column named in the DVC plot definitions exists in the written tables
    names = list(scorers)
    for spec in M.plot_specs(names):
        header = (eval_dir / "plots" / spec.file).read_text().splitlines()[0].split(",")
        assert spec.x in header and set(spec.y) <= set(header), spec.id
    for png in E.png_paths(model_dir):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dvc_plot_entries_use_the_top_level_plots_syntax() -> None:
    entries = M.dvc_plots(M.plot_specs(["model", "logreg"]), folder="models/eval/plots")
    roc = next(e["ROC"] for e in entries if isinstance(e, dict) and "ROC" in e)
    assert roc["x"] == "fpr" and roc["template"] == "linear"
    assert roc["y"] == {"models/eval/plots/roc.csv": ["tpr_model", "tpr_logreg"]}
    assert {"title", "x_label", "y_label"} <= set(roc)


def test_dvc_plots_declare_the_png_folder_as_an_image_plot() -> None:
    # a bare path is a DVC image plot: every image in the folder (PNGs from write_pngs)
    entries = M.dvc_plots(M.plot_specs(), folder="models/eval/plots")
    assert [e for e in entries if isinstance(e, str)] == ["models/eval/png"]
    assert M.dvc_plots([], folder="out/m/eval/plots/") == ["out/m/eval/png"]
    assert M.dvc_plots([], folder="m/eval/plots", images="figs/") == ["figs"]


RANKING_PLOTS = ("ROC", "Precision-recall", "Cumulative gain", "Lift", "Profit")


def test_ranking_plots_leave_out_the_uncalibrated_duplicate() -> None:
    specs = {spec.id: spec for spec in M.plot_specs()}
    assert set(specs) == {*RANKING_PLOTS, "Calibration", "Value backtest"}
    for plot_id in RANKING_PLOTS:
        ys = specs[plot_id].y
        assert not any(y.endswith("_model_raw") for y in ys), plot_id
        assert any(y.endswith("_model") for y in ys), plot_id
    # calibration is where the raw booster output differs: it stays there
    assert "observed_model_raw" in specs["Calibration"].y
    assert "observed_model" in specs["Calibration"].y
    # a raw scorer without its calibrated twin is not a duplicate and stays
    assert M.ranking_scorers(["model_raw", "logreg"]) == ["model_raw", "logreg"]
    assert M.ranking_scorers(["model", "model_raw", "x_raw"]) == ["model", "x_raw"]


def test_ranking_pngs_leave_out_the_uncalibrated_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    labels: dict[str, list[str]] = {}

    def record(fig: Figure, fname: object, **kwargs: object) -> None:
        ax = fig.axes[0]
        labels[ax.get_title()] = [line.get_label() for line in ax.get_lines()]
        Path(str(fname)).write_bytes(b"")

    monkeypatch.setattr(Figure, "savefig", record)
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    p = np.linspace(0.1, 0.9, y.size)
    scores = {"model": p, "model_raw": p**2, "logreg": p[::-1]}
    tables = {
        "roc": M.roc_table(y, scores),
        "pr": M.pr_table(y, scores),
        "calibration": M.calibration_table(y, scores, 5),
        "gain": M.gain_table(y, scores),
        "profit": M.profit_table(y, scores, np.ones(y.size), 0.1, 0.5),
    }
    written = E.write_pngs(tables, list(scores), tmp_path)
    assert [w.name for w in written] == [f"{n}.png" for n in M.PLOT_FILES]
    assert len(labels) == len(M.PLOT_FILES)
    for title, drawn in labels.items():
        if title.startswith("Calibration"):
            assert {"model", "model_raw", "logreg"} <= set(drawn), title
        else:
            assert {"model", "logreg"} <= set(drawn) and "model_raw" not in drawn, title


def test_run_evaluate_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run the train stage"):
        E.run_evaluate(EvaluateParams(model_dir=str(tmp_path / "nowhere")))
    frame = pd.DataFrame({"split": ["test"], "churned": [1], "p_model": [0.5]})
    with pytest.raises(DataError, match="rfm_segment"):
        M.evaluate_predictions(frame, EvaluateParams())


# --------------------------------------------------------------------------- value backtest


def test_without_transactions_the_value_check_says_why(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    write_predictions(model_dir)
    metrics = E.run_evaluate(EvaluateParams(model_dir=str(model_dir)))
    assert metrics["value_backtest"] == {
        "checked": False,
        "reason": "evaluate.transactions is not set: no realised spend to compare with",
    }
    header = (model_dir / "eval" / "plots" / "value_calibration.csv").read_text().splitlines()
    assert header[0].startswith("decile,perfect,ratio_nbd_shrunk") and len(header) == 1
    assert M.headline(metrics)["value_total_ratio"] is None


def test_value_check_compares_predicted_with_realised_spend_of_retained_customers() -> None:
    test = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(40)],
            "churned": [0] * 30 + [1] * 10,
            "monetary_total": [200.0] * 40,
            "tenure_days": [400] * 40,
            "purchase_days": [5] * 40,
        }
    )
    from churnguard.value import fit_value_prior, value_if_retained

    prior = fit_value_prior(test)
    exact = value_if_retained(test, 90, 90, prior)
    test["realised_spend"] = np.where(test["churned"] == 0, exact * 2, 0.0)
    out, table = M.value_check(test, 90, prior)
    mine = out["nbd_shrunk"]
    assert out["checked"] and out["window_days"] == 90
    assert mine["customers_retained"] == 30 and mine["total_ratio"] == pytest.approx(0.5)
    assert mine["realised_total"] == pytest.approx(round(2 * exact[:30].sum(), 2))
    assert out["own_rate"]["predicted_total"] == pytest.approx(30 * 200 / 400 * 90)
    assert table["ratio_nbd_shrunk"].dropna().round(3).eq(0.5).all()


def test_value_backtest_on_the_real_pipeline(pipeline, tmp_path: Path) -> None:
    """Value if retained over the label window against what the test cutoff's retained
    customers really spent in it: within 20% in total, and better than the own spend rate."""
    import shutil

    model_dir = tmp_path / "models"
    (model_dir / "eval").mkdir(parents=True)
    src = Path(pipeline.train.model_dir)
    shutil.copy(src / "eval" / "predictions.parquet", model_dir / "eval")
    shutil.copy(src / "metadata.json", model_dir)
    params = EvaluateParams(model_dir=str(model_dir), transactions=str(pipeline.transactions))
    metrics = E.run_evaluate(params)
    check = metrics["value_backtest"]
    assert check["checked"] and check["window_days"] == pipeline.features.horizon_days
    mine, before = check["nbd_shrunk"], check["own_rate"]
    assert mine["customers_retained"] == round(metrics["n_test"] * (1 - metrics["base_rate"]))
    assert 0.8 <= mine["total_ratio"] <= 1.2, mine
    assert mine["mean_abs_log_ratio"] < before["mean_abs_log_ratio"]
    assert len(mine["deciles"]) == 10
    assert M.headline(metrics)["value_total_ratio"] == mine["total_ratio"]
    table = pd.read_csv(model_dir / "eval" / "plots" / "value_calibration.csv")
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["customers_nbd_shrunk"].sum() == mine["customers_retained"]
    assert metrics["value"]["churn_horizon_days"] == pipeline.features.horizon_days
