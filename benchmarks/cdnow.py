"""CDNOW head-to-head: churnguard against recency, RFM and the BTYD models on the classic split.

Usage: ``python benchmarks/cdnow.py [--data PATH] [--bootstrap 1000] [--no-docs]``
(``make bench-cdnow``), and ``python benchmarks/cdnow.py --backtest`` for the design check
that chose the base horizon (see below). Needs the bench extras (``make install-bench``:
pymc-marketing).

The split (../shared/data/cdnow/README.md): calibration 1997-01-01..1997-09-30, holdouts
to 1997-12-31 (13 weeks, 92 days) and to 1998-06-30 (39 weeks, 273 days). Target: no
purchase in the holdout. Population: every customer of the cohort (all 23,570 bought in
Q1 1997, so all are in the snapshot at 1997-09-30).

Everything goes through the package: ``ingest.run_ingest`` with ``configs/cdnow.yaml``,
the transactions cut at 1997-09-30 with one SQL filter, ``features.build_snapshot`` /
``snapshot_frame`` (the same SQL for training, scoring and the holdout labels) and
``train.train_model`` with the preset's train params (the general defaults).

**The horizon does not fit the history, so a documented proxy is used.** ``train_model``
needs a labelled validation cutoff whose window ends by the as-of date and training
windows that end by the validation cutoff, so training cutoffs lie at least two horizons
before 1997-09-30: 273 days cannot fit at all (that is before the data starts), and 92
days leaves training cutoffs only in Jan-Mar 1997, while the cohort is still being
acquired (tenure < 83 days in training against 183-273 days at scoring). The proxy:
train the normal way on a short base horizon h = 21 days (weekly cutoffs, the latest
training cutoff 1997-08-12), then chain it:

    P(no purchase in (c, c+H]) = prod_k P(no purchase in (c+kh, c+(k+1)h] | none in (c, c+kh])

Each factor is the calibrated 21-day model applied to the snapshot at c+kh built from
the transactions up to c (exactly the customer's snapshot at c+kh if they do not buy in
between), with the same feature SQL; a final partial step of r < h days uses p^(r/h)
(constant hazard within a step). Nothing after 1997-09-30 is read before scoring. The
base horizon and cutoff step were chosen by ``--backtest``: pseudo-splits inside the
calibration period (1997-06-30 + 92 days, 1997-05-31 + 122 days), never the holdout.
A direct 92-day model (training cutoffs Jan-Mar) is reported as a secondary row.

BTYD baselines: BG/NBD and Pareto/NBD fitted by MAP with pymc-marketing on the
calibration period (weeks), scored by expected holdout purchases and by P(no purchase
in the holdout), never by 1 - P(alive) (shown once as a warning). pymc-marketing 0.19.2's
BG/NBD ``expected_probability_no_purchase`` is checked against the closed form
P(X(t)=0) = (1 - P(alive)) + P(alive)((alpha+T)/(alpha+T+t))^(r+x) and a simulation of
the fitted model; the closed form is used (it differs for one-time buyers only).

Metrics: ROC-AUC with a bootstrap 95% interval, PR-AUC, Brier (probabilities only),
top-decile lift, and paired-bootstrap differences to the best baseline; vectorised
bootstrap, one set of resamples shared by every scorer. Writes
``benchmarks/results/cdnow.json`` and the "## CDNOW (real data)" section of
``docs/benchmarks.md``.

The modelling logic lives in the package, with unit tests: the split rules, the chain
and the head-to-head comparison in ``churnguard.backtest``, the BTYD closed forms, checks
and scorers in ``churnguard.btyd``, the bootstrap in ``churnguard.stats`` and the rule
baselines in ``churnguard.baselines``. This script prepares the data (ingest, cuts,
snapshots), trains, times the phases, calls those functions and writes the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard import backtest as B
from churnguard import baselines, btyd, stats
from churnguard import features as F
from churnguard.config import EngineParams, Params, load_params
from churnguard.db import connect, sql_string
from churnguard.ingest import run_ingest
from churnguard.io import write_json_atomic
from churnguard.modeling import ChurnModel
from churnguard.train import train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_docs_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "cdnow.yaml"
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## CDNOW (real data)"
DATA_SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"

CAL_END = dt.date(1997, 9, 30)
HOLDOUT_END = {"39w": dt.date(1998, 6, 30), "13w": dt.date(1997, 12, 31)}
DATA_START = dt.date(1997, 1, 1)
ACQUISITION_END = dt.date(1997, 3, 31)  # the cohort bought first in Q1 1997
BASE_HORIZON_DAYS = 21  # chosen by --backtest (inside the calibration period)
CUTOFF_STEP_DAYS = 7
DIRECT_HORIZON = "13w"  # the one holdout a direct model can be trained for (badly)
WEEK = btyd.WEEK_DAYS
BOOTSTRAP_SEED = 20250
REFERENCE = {  # ../shared/data/cdnow/README.md
    "best_baseline_roc_auc": {"39w": 0.769, "13w": 0.774},
    "lightgbm_roc_auc": {"39w": 0.770, "13w": 0.778},
    "lightgbm_brier": {"39w": 0.160, "13w": 0.116},
    "base_rate_brier": {"39w": 0.210, "13w": 0.147},
}

log = logging.getLogger("bench.cdnow")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.marks: dict[str, float] = {}
        self._last = self.t0

    def mark(self, name: str) -> float:
        now = time.perf_counter()
        self.marks[name] = round(now - self._last, 1)
        self._last = now
        return self.marks[name]

    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 1)


# --------------------------------------------------------------------------- data


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    return params.model_copy(update={"engine": engine, "ingest": ingest}), path


def cut_transactions(engine: EngineParams, full: Path, end: dt.date, target: Path) -> int:
    """Transactions dated on or before ``end`` (the calibration period), same schema."""
    con = connect(engine)
    try:
        con.execute(
            f"copy (select * from read_parquet({sql_string(str(full))}) "
            f"where cast(ts as date) <= date '{end.isoformat()}' "
            "order by customer_id, ts, source_row) "
            f"to {sql_string(str(target))} (format parquet, compression zstd)"
        )
        row = con.execute(
            f"select count(*) from read_parquet({sql_string(str(target))})"
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def horizon_days(name: str, cal_end: dt.date = CAL_END) -> int:
    return (HOLDOUT_END[name] - cal_end).days


def plan_on(params: Params, tx: Path, as_of: dt.date, horizon: int, step: int) -> B.BacktestSplit:
    """The rolling-snapshot grid with as many cutoffs as fit before ``as_of`` (package rule)."""
    con = connect(params.engine)
    try:
        data_min, _, _ = F.data_range(con, tx)
    finally:
        con.close()
    return B.plan_backtest_split(data_min, as_of, horizon, step)


def train_on(
    params: Params, tx: Path, as_of: dt.date, horizon: int, step: int, work: Path
) -> tuple[ChurnModel, dict[str, Any]]:
    """Normal rolling-snapshot training on transactions up to ``as_of``."""
    plan = plan_on(params, tx, as_of, horizon, step)
    target = work / f"snapshots_{as_of}_{horizon}d_{step}.parquet"
    con = connect(params.engine)
    try:
        F.build_snapshot(con, tx, plan.cutoffs, horizon, params.features.lost_after_days, target)
    finally:
        con.close()
    frame = pd.read_parquet(target)
    trained = train_model(frame, horizon, params.train, step)
    model, summary = trained.model, trained.summary
    return model, summary


def chained_no_purchase(
    model: ChurnModel,
    params: Params,
    tx: Path,
    as_of: dt.date,
    base: int,
    horizon: int,
    work: Path,
) -> pd.Series:
    """P(no purchase in (as_of, as_of + horizon]) from a ``base``-day model, chained.

    Builds the snapshots at as_of + k·base from the transactions up to ``as_of`` only,
    scores each with the model and chains them with ``churnguard.backtest.chain_no_purchase``.
    """
    cutoffs = B.chain_cutoffs(as_of, base, horizon)
    target = work / f"chain_{as_of}_{base}d_{horizon}d.parquet"
    con = connect(params.engine)
    try:
        F.build_snapshot(con, tx, cutoffs, None, params.features.lost_after_days, target)
    finally:
        con.close()
    snap = pd.read_parquet(target)
    step_p = []
    for cutoff in cutoffs:
        part = snap[snap["cutoff_date"] == cutoff].set_index("customer_id").sort_index()
        step_p.append(pd.Series(model.predict(part), index=part.index))
    return B.chain_no_purchase(step_p, base, horizon)


# --------------------------------------------------------------------------- BTYD


def _quiet_pymc() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    logging.getLogger("pytensor").setLevel(logging.ERROR)


def fit_btyd(data: pd.DataFrame, horizons: dict[str, float], seed: int) -> dict[str, Any]:
    """BG/NBD and Pareto/NBD by MAP (timed); scores per holdout and the library checks."""
    _quiet_pymc()
    import pymc_marketing

    out: dict[str, Any] = {"library": f"pymc-marketing {pymc_marketing.__version__}"}
    timer = Timer()
    bg = btyd.fit_bgnbd(data)
    out["bg_params"] = btyd.point_params(bg, btyd.BG_PARAMS)
    out["bg_fit_seconds"] = timer.mark("bg")
    pn = btyd.fit_paretonbd(data)
    out["pn_params"] = btyd.point_params(pn, btyd.PN_PARAMS)
    out["pn_fit_seconds"] = timer.mark("pn")
    scores, checks = btyd.score_btyd(bg, pn, data, horizons, seed)
    out["checks"] = checks
    out["scores"] = scores
    out["one_time_buyers"] = int((data["frequency"].to_numpy() == 0).sum())
    return out


# --------------------------------------------------------------------------- scorers


SCORERS: dict[str, dict[str, Any]] = {
    "churnguard": {
        "label": f"churnguard (LightGBM, {BASE_HORIZON_DAYS}-day model chained to the holdout)",
        "kind": "model",
        "probability": True,
    },
    "churnguard_direct": {
        "label": "churnguard, direct 92-day model (training cutoffs Jan-Mar 1997 only)",
        "kind": "model_variant",
        "probability": True,
    },
    "recency": {"label": "days since last purchase", "kind": "baseline", "probability": False},
    "recency_rule": {"label": f"no purchase in {baselines.RECENCY_RULE_DAYS} days (0/1)", "kind": "baseline", "probability": False},
    "rfm": {"label": "RFM quintile sum (15 − R − F − M)", "kind": "baseline", "probability": False},
    "bg_expected": {"label": "BG/NBD, expected holdout purchases", "kind": "baseline", "probability": False},
    "bg_no_purchase": {"label": "BG/NBD, P(no purchase in holdout) (closed form)", "kind": "baseline", "probability": True},
    "pn_expected": {"label": "Pareto/NBD, expected holdout purchases", "kind": "baseline", "probability": False},
    "pn_no_purchase": {"label": "Pareto/NBD, P(no purchase in holdout)", "kind": "baseline", "probability": True},
    "bg_one_minus_palive": {"label": "BG/NBD, 1 − P(alive) (do not use: constant for one-time buyers)", "kind": "warning", "probability": True},
}  # fmt: skip


def evaluate_horizon(
    y: np.ndarray, scores: dict[str, np.ndarray], counts: list[np.ndarray]
) -> dict[str, Any]:
    """Point metrics, bootstrap intervals and paired differences to the best baseline."""
    res = B.compare_scorers(
        y,
        scores,
        {n: SCORERS[n]["probability"] for n in scores},
        counts,
        baselines=[n for n in scores if SCORERS[n]["kind"] == "baseline"],
        model="churnguard",
    )
    res["scorers"] = {
        n: {"label": SCORERS[n]["label"], "kind": SCORERS[n]["kind"], **row}
        for n, row in res["scorers"].items()
    }
    return res


# --------------------------------------------------------------------------- main run


def run(data: Path | None, n_boot: int, seed: int) -> dict[str, Any]:
    timer = Timer()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="churnguard-cdnow-") as tmp:
        work = Path(tmp)
        params, path = load_preset(data, work)
        if not path.is_file():
            raise SystemExit(f"CDNOW file not found: {path} (pass --data PATH)")
        digest = sha256(path)
        if digest != DATA_SHA256:
            say(f"warning: {path} sha256 {digest} differs from the published {DATA_SHA256}")
        report = run_ingest(params.ingest, params.engine)
        full = work / "interim" / "transactions.parquet"
        cal = work / "calibration.parquet"
        n_cal = cut_transactions(params.engine, full, CAL_END, cal)
        timer.mark("ingest")
        say(
            f"ingest: {report['rows_clean']:,} rows, {report['customers']:,} customers; "
            f"{n_cal:,} rows up to {CAL_END}"
        )

        # population, holdout labels (package SQL) and the scoring snapshot (calibration only)
        current = F.snapshot_frame(cal, CAL_END, params.features.lost_after_days, params.engine)
        current = current.set_index("customer_id").sort_index()
        labels: dict[str, np.ndarray] = {}
        for name in HOLDOUT_END:
            lab = (
                F.snapshot_frame(
                    full,
                    CAL_END,
                    params.features.lost_after_days,
                    params.engine,
                    horizon_days=horizon_days(name),
                )
                .set_index("customer_id")
                .sort_index()
            )
            cols = list(F.MODEL_FEATURES)
            assert lab.index.equals(current.index), "holdout snapshot has other customers"
            assert lab[cols].equals(current[cols]), "features at the cutoff depend on later data"
            labels[name] = lab["churned"].to_numpy(dtype=int)
        assert pd.to_datetime(current["first_purchase_date"]).max().date() <= ACQUISITION_END
        timer.mark("labels")

        # the horizon check, said out loud
        fit_notes = {}
        for name in HOLDOUT_END:
            h = horizon_days(name)
            status, latest = B.horizon_fit(
                CAL_END, h, CUTOFF_STEP_DAYS, DATA_START, ACQUISITION_END
            )
            if status == "no_fit":
                note = (
                    f"{name} ({h} days) does not fit: training cutoffs would have to be on or "
                    f"before {latest}, before the data starts"
                )
            elif status == "acquisition_only":
                note = (
                    f"{name} ({h} days) fits only with training cutoffs on or before {latest}, "
                    "inside the acquisition quarter (tenure < 83 days in training vs 183-273 at "
                    "scoring)"
                )
            else:
                note = f"{name} ({h} days) fits (latest training cutoff {latest})"
            fit_notes[name] = note
            say("horizon: " + note)
        proxy = (
            f"train on a {BASE_HORIZON_DAYS}-day horizon with weekly cutoffs (latest training "
            f"cutoff {B.latest_training_cutoff(CAL_END, BASE_HORIZON_DAYS, CUTOFF_STEP_DAYS)}) and "
            "chain it to the holdout length on snapshots built from calibration data only"
        )
        say("proxy: " + proxy)

        # churnguard: normal training on data up to CAL_END, chained to each holdout
        model, summary = train_on(params, cal, CAL_END, BASE_HORIZON_DAYS, CUTOFF_STEP_DAYS, work)
        timer.mark("train")
        say(
            f"churnguard: {summary['rows']['train']:,} training rows from "
            f"{len(summary['train_cutoffs'])} cutoffs ({summary['train_cutoffs'][0]}.."
            f"{summary['train_cutoffs'][-1]}), validation {summary['valid_cutoff']}, internal test "
            f"{summary['test_cutoff']}; best iteration {summary['best_iteration']}, calibration "
            f"{summary['calibration']} ({timer.marks['train']} s)"
        )
        scores: dict[str, dict[str, np.ndarray]] = {name: {} for name in HOLDOUT_END}
        for name in HOLDOUT_END:
            chained = chained_no_purchase(
                model, params, cal, CAL_END, BASE_HORIZON_DAYS, horizon_days(name), work
            )
            scores[name]["churnguard"] = chained.reindex(current.index).to_numpy()
        direct_model, direct_summary = train_on(
            params, cal, CAL_END, horizon_days(DIRECT_HORIZON), CUTOFF_STEP_DAYS, work
        )
        scores[DIRECT_HORIZON]["churnguard_direct"] = direct_model.predict(current.reset_index())
        timer.mark("score")

        # rule baselines on the same snapshot (the package's, as train uses them)
        for name in HOLDOUT_END:
            scores[name]["recency"] = baselines.recency_rank_score(current)
            scores[name]["recency_rule"] = baselines.recency_rule_score(current)
            scores[name]["rfm"] = baselines.rfm_baseline_score(current)

        # BTYD on the calibration period
        say("BTYD: fitting BG/NBD and Pareto/NBD (MAP, pymc-marketing) ...")
        bt = fit_btyd(
            btyd.btyd_summary(current, WEEK),
            {name: horizon_days(name) / WEEK for name in HOLDOUT_END},
            seed,
        )
        for name in HOLDOUT_END:
            scores[name].update(bt["scores"][name])
        timer.mark("btyd")

        counts = stats.resample_counts(len(current), n_boot, seed)
        results = {
            name: evaluate_horizon(labels[name], scores[name], counts) for name in HOLDOUT_END
        }
        timer.mark("metrics")

    bt.pop("scores")
    return {
        "benchmark": "cdnow",
        "data": {
            "file": "CDNOW_master.txt",
            "sha256": digest,
            "rows": report["rows_clean"],
            "customers": report["customers"],
            "calibration": f"1997-01-01..{CAL_END}",
            "calibration_rows": n_cal,
            "holdouts": {
                n: f"{CAL_END + dt.timedelta(days=1)}..{d}, {horizon_days(n)} days"
                for n, d in HOLDOUT_END.items()
            },
            "target": "no purchase in the holdout",
            "preset": "configs/cdnow.yaml",
        },
        "churnguard": {
            "horizon_check": fit_notes,
            "proxy": proxy,
            "base_horizon_days": BASE_HORIZON_DAYS,
            "cutoff_step_days": CUTOFF_STEP_DAYS,
            "train_cutoffs": [summary["train_cutoffs"][0], summary["train_cutoffs"][-1]],
            "n_train_cutoffs": len(summary["train_cutoffs"]),
            "valid_cutoff": summary["valid_cutoff"],
            "internal_test_cutoff": summary["test_cutoff"],
            "rows": summary["rows"],
            "best_iteration": summary["best_iteration"],
            "calibration": summary["calibration"],
            "train_params": "configs/cdnow.yaml train section (the general defaults)",
            "direct_92d_model": {
                "train_cutoffs": [
                    direct_summary["train_cutoffs"][0],
                    direct_summary["train_cutoffs"][-1],
                ],
                "rows": direct_summary["rows"],
                "best_iteration": direct_summary["best_iteration"],
            },
        },
        "btyd": bt,
        "bootstrap": {"resamples": n_boot, "seed": seed, "paired": True},
        "results": results,
        "reference": REFERENCE,
        "runtime": {
            "load_average_start": load_start,
            "seconds": timer.total(),
            "phases_seconds": timer.marks,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        },
    }


# --------------------------------------------------------------------------- backtest


BACKTEST_SPLITS = ((dt.date(1997, 6, 30), 92), (dt.date(1997, 5, 31), 122))
BACKTEST_BASES = (14, 21, 30, 46)
BACKTEST_STEPS = (7, 14, 30)


def run_backtest(data: Path | None, seed: int) -> dict[str, Any]:
    """Choose the base horizon and cutoff step on pseudo-splits inside the calibration period.

    Only transactions up to 1997-09-30 are read: each pseudo-split trains on data up to
    E' and is scored on (E', E' + H] with E' + H <= 1997-09-30. The variant with the best
    mean ROC-AUC over the pseudo-splits is the benchmark's choice.
    """
    timer = Timer()
    B.check_pseudo_splits(BACKTEST_SPLITS, CAL_END)
    with tempfile.TemporaryDirectory(prefix="churnguard-cdnow-bt-") as tmp:
        work = Path(tmp)
        params, path = load_preset(data, work)
        run_ingest(params.ingest, params.engine)
        full = work / "interim" / "transactions.parquet"
        cal = work / "calibration.parquet"
        cut_transactions(params.engine, full, CAL_END, cal)
        splits = []
        for end, horizon in BACKTEST_SPLITS:
            tx = work / f"upto_{end}.parquet"
            cut_transactions(params.engine, cal, end, tx)
            lab = (
                F.snapshot_frame(
                    cal, end, params.features.lost_after_days, params.engine, horizon_days=horizon
                )
                .set_index("customer_id")
                .sort_index()
            )
            y = lab["churned"].to_numpy(dtype=int)
            rows: dict[str, Any] = {}

            found: dict[str, tuple[np.ndarray, bool]] = {
                "recency": (baselines.recency_rank_score(lab), False),
                "rfm": (baselines.rfm_baseline_score(lab), False),
            }
            bt = fit_btyd(btyd.btyd_summary(lab, WEEK), {"h": horizon / WEEK}, seed)["scores"]["h"]
            found["pn_expected"] = (bt["pn_expected"], False)
            found["pn_no_purchase"] = (bt["pn_no_purchase"], True)
            found["bg_no_purchase"] = (bt["bg_no_purchase"], True)
            for base in BACKTEST_BASES:
                for step in BACKTEST_STEPS:
                    try:
                        model, _ = train_on(params, tx, end, base, step, work)
                    except Exception as exc:  # noqa: BLE001 - a grid point that cannot train
                        say(f"  {end}+{horizon}d base {base} step {step}: {exc}")
                        continue
                    p = chained_no_purchase(model, params, tx, end, base, horizon, work)
                    found[f"chain_{base}d_step{step}"] = (p.reindex(lab.index).to_numpy(), True)
            for name, (score, prob) in found.items():
                rows[name] = B.point_metrics(y, score, prob)
                say(f"  {end} + {horizon} d  {name:24s} {rows[name]}")
            splits.append(
                {
                    "end": str(end),
                    "horizon_days": horizon,
                    "churn_rate": float(y.mean()),
                    "scorers": rows,
                }
            )
    mean_auc, choice = B.select_variant([s["scorers"] for s in splits], prefix="chain_")
    return {
        "benchmark": "cdnow_backtest",
        "rule": "best mean ROC-AUC over the pseudo-splits (calibration data only)",
        "splits": splits,
        "mean_roc_auc": mean_auc,
        "choice": choice,
        "runtime_seconds": timer.total(),
    }


# --------------------------------------------------------------------------- output


def _round(obj: Any, digits: int = 4) -> Any:
    if isinstance(obj, dict):
        return {str(k): _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return None if not math.isfinite(x) else round(x, digits) + 0.0
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _in_order(rows: dict[str, Any]) -> list[tuple[str, Any]]:
    """Scorer rows in SCORERS order (the JSON is written with sorted keys; --render-only)."""
    return sorted(rows.items(), key=lambda kv: list(SCORERS).index(kv[0]))


def markdown(res: dict[str, Any], backtest: dict[str, Any] | None) -> str:
    r = res["results"]
    cg = res["churnguard"]
    bt = res["btyd"]
    out = [
        SECTION,
        "",
        "Generated by `make bench-cdnow` (`benchmarks/cdnow.py`) — do not edit by hand; every "
        "figure is in `benchmarks/results/cdnow.json`.",
        "",
        f"Data: CDNOW ({res['data']['rows']:,} purchases of the {res['data']['customers']:,} "
        "customers who first bought in Q1 1997; `../shared/data/cdnow/README.md`), read through "
        "the normal ingest with the preset `configs/cdnow.yaml`. Classic split: calibration "
        f"{res['data']['calibration']}; holdouts {res['data']['holdouts']['13w']} (13 weeks) and "
        f"{res['data']['holdouts']['39w']} (39 weeks). Target: no purchase in the holdout "
        f"({100 * r['39w']['churn_rate']:.1f}% at 39 weeks, {100 * r['13w']['churn_rate']:.1f}% at "
        "13 weeks). Every customer of the cohort is scored at 1997-09-30 by every method; "
        "higher score = more likely to churn. 95% intervals: "
        f"{res['bootstrap']['resamples']} bootstrap resamples of customers, the same resamples "
        "for every method (paired differences).",
        "",
    ]
    for name, title in (
        ("39w", "39-week holdout (to 1998-06-30)"),
        ("13w", "13-week holdout (to 1997-12-31)"),
    ):
        h = r[name]
        out += [
            f"### {title}",
            "",
            "| method | ROC-AUC [95% CI] | PR-AUC | Brier | top-decile lift |",
            "|---|---|---|---|---|",
        ]
        for key, row in _in_order(h["scorers"]):
            label = f"**{row['label']}**" if key == "churnguard" else row["label"]
            lo, hi = row["roc_auc_ci95"]
            out.append(
                f"| {label} | {_f(row['roc_auc'])} [{_f(lo)}, {_f(hi)}] | {_f(row['pr_auc'])} | "
                f"{_f(row['brier'], 4)} | {_f(row['lift_top10'], 2)} |"
            )
        out += [
            f"| base rate for everyone (uses the holdout rate: a floor, not a method) | 0.500 | "
            f"{_f(h['churn_rate'])} | {_f(h['base_rate_brier_oracle'], 4)} | 1.00 |",
            "",
        ]
    out += [
        "### churnguard against the best baseline (paired bootstrap)",
        "",
        "Best baseline = the best of recency, the 180-day rule, RFM, BG/NBD and Pareto/NBD on "
        "that metric (Brier: among the methods that give probabilities). Difference = "
        "churnguard − baseline (higher is better for ROC-AUC and PR-AUC, lower for Brier).",
        "",
        "| holdout | metric | churnguard | best baseline | difference [95% CI] | resamples where churnguard is better |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("39w", "13w"):
        for metric, label in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier")):
            b = r[name]["vs_best_baseline"][metric]
            lo, hi = b["difference_ci95"]
            base_label = r[name]["scorers"][b["baseline"]]["label"]
            d = 4 if metric == "brier" else 3
            out.append(
                f"| {name} | {label} | {_f(b['churnguard_value'], d)} | {base_label}: "
                f"{_f(b['baseline_value'], d)} | {_signed(b['difference'], d)} "
                f"[{_signed(lo, d)}, {_signed(hi, d)}] "
                f"| {100 * b['share_of_resamples_churnguard_better']:.0f}% |"
            )
    ref = res["reference"]
    out += [
        "",
        "### Against the reference figures (`../shared/data/cdnow/README.md`)",
        "",
        "| holdout | churnguard ROC-AUC | bar: best baseline | gap | plain LightGBM (reference) | gap | churnguard Brier | reference LightGBM Brier | gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("39w", "13w"):
        m = r[name]["scorers"]["churnguard"]
        out.append(
            f"| {name} | {_f(m['roc_auc'], 4)} | {ref['best_baseline_roc_auc'][name]:.3f} | "
            f"{_signed(m['roc_auc'] - ref['best_baseline_roc_auc'][name], 4)} | "
            f"{ref['lightgbm_roc_auc'][name]:.3f} | "
            f"{_signed(m['roc_auc'] - ref['lightgbm_roc_auc'][name], 4)} | "
            f"{_f(m['brier'], 4)} | {ref['lightgbm_brier'][name]:.3f} | "
            f"{_signed(m['brier'] - ref['lightgbm_brier'][name], 4)} |"
        )
    out += [
        "",
        "### How churnguard is trained here (the proxy)",
        "",
        "Only data up to 1997-09-30 is used: the ingested transactions are cut there, the model "
        "is trained by the normal `train_model` on rolling snapshots from `features.build_snapshot` "
        "with the preset's train section (the general defaults: no tuning), and it scores the "
        "snapshot at 1997-09-30. The holdout labels come from the same feature SQL run on the full "
        "data; the benchmark asserts that the features at 1997-09-30 are identical either way.",
        "",
        "The holdouts are longer than this history allows. `train_model` needs a validation cutoff "
        "whose label window ends by 1997-09-30 and training windows that end by the validation "
        "cutoff, so every training cutoff lies at least two horizons back:",
        "",
        *(f"- {cg['horizon_check'][n]}." for n in ("39w", "13w")),
        "",
        f"Proxy: {cg['proxy']}. P(no purchase in (c, c+H]) is the product over k of the "
        f"{cg['base_horizon_days']}-day model's P(no purchase in (c+kh, c+(k+1)h]), each computed on "
        "the snapshot at c+kh built from transactions up to c — which is exactly the customer's "
        "snapshot there if they do not buy in between — so the product is the chain rule, not a "
        "guess; a final partial step of r days contributes p^(r/h). The 39-week holdout is "
        f"{horizon_days('39w') // cg['base_horizon_days']} steps of {cg['base_horizon_days']} days; "
        f"13 weeks is {horizon_days('13w') / cg['base_horizon_days']:.2f} steps. Late steps "
        "extrapolate: a customer silent for a year has no twin in the training snapshots, and the "
        "trees keep the hazard of the longest silence they saw.",
        "",
        f"Training: {cg['rows']['train']:,} rows from {cg['n_train_cutoffs']} weekly cutoffs "
        f"({cg['train_cutoffs'][0]}..{cg['train_cutoffs'][1]}), early stopping and "
        f"{cg['calibration']} calibration on the validation cutoff {cg['valid_cutoff']} "
        f"(best iteration {cg['best_iteration']}); the cutoff {cg['internal_test_cutoff']} is "
        "train_model's own test cutoff and is not used for fitting. The direct 92-day model "
        f"(secondary row, 13 weeks only) trains on {cg['direct_92d_model']['rows']['train']:,} rows "
        f"from cutoffs {cg['direct_92d_model']['train_cutoffs'][0]}.."
        f"{cg['direct_92d_model']['train_cutoffs'][1]}.",
        "",
    ]
    if backtest is not None:
        ms = backtest["mean_roc_auc"]
        best = sorted(ms.items(), key=lambda kv: -kv[1])[:4]
        split_txt = "; ".join(
            f"{s['end']} + {s['horizon_days']} days: Pareto/NBD {s['scorers']['pn_expected']['roc_auc']:.3f}, "
            f"RFM {s['scorers']['rfm']['roc_auc']:.3f}, chosen variant "
            f"{s['scorers'][backtest['choice']]['roc_auc']:.3f}"
            for s in backtest["splits"]
        )
        out += [
            f"Why {cg['base_horizon_days']} days and weekly cutoffs: `python benchmarks/cdnow.py "
            "--backtest` trains the same chain on pseudo-splits inside the calibration period "
            "(never the holdout) for base horizons "
            f"{', '.join(map(str, BACKTEST_BASES))} days × cutoff steps "
            f"{', '.join(map(str, BACKTEST_STEPS))} days and keeps the best mean ROC-AUC "
            f"(`benchmarks/results/cdnow_backtest.json`). Top variants: "
            + ", ".join(f"{k} {v:.4f}" for k, v in best)
            + f". Per pseudo-split (ROC-AUC): {split_txt}.",
            "",
        ]
    out += [
        "### BTYD baselines",
        "",
        f"{bt['library']}, MAP fits on the calibration period in weeks (default priors): BG/NBD "
        + ", ".join(f"{k} = {bt['bg_params'][k]:.3f}" for k in btyd.BG_PARAMS)
        + "; Pareto/NBD "
        + ", ".join(f"{k} = {bt['pn_params'][k]:.3f}" for k in btyd.PN_PARAMS)
        + ". They are scored by expected holdout purchases (fewer = riskier) and by P(no purchase "
        "in the holdout). 1 − P(alive) is shown once as a warning: BG/NBD's P(alive) is exactly 1 "
        f"for the {bt['one_time_buyers']:,} one-time buyers, the heaviest churners, so it ranks "
        "worse than chance.",
        "",
    ]
    chk = bt["checks"]
    rows = []
    for name in ("39w", "13w"):
        c = chk[name]["bg_no_purchase"]
        for group in ("one_time_buyers", "repeat_buyers"):
            g = c[group]
            rows.append(
                f"| {name} | {group.replace('_', ' ').replace('one time', 'one-time')} | {g['library_mean']:.3f} | "
                f"{g['closed_form_mean']:.3f} | {g['simulated_mean_on_sample']:.3f} "
                f"(closed form on the same sample {g['closed_form_mean_on_sample']:.3f}) | "
                f"{g['max_abs_difference']:.2g} |"
            )
    out += [
        "BG/NBD `expected_probability_no_purchase` checked against the closed form "
        "P(X(t)=0) = (1 − P(alive)) + P(alive)·((α+T)/(α+T+t))^(r+x) and a simulation of the "
        "fitted model (400 customers × 4,000 draws):",
        "",
        "| holdout | customers | library mean | closed form mean | simulated mean | max abs difference |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        (
            "The library is wrong for one-time buyers (too high) and exact for repeat buyers, so "
            "the benchmark uses the closed form for BG/NBD's P(no purchase). "
            if all(
                chk[n]["bg_no_purchase"]["library_wrong_for"] == ["one_time_buyers"] for n in chk
            )
            else "The library differs from the closed form for: "
            + "; ".join(f"{n} {chk[n]['bg_no_purchase']['library_wrong_for']}" for n in chk)
            + " — the benchmark uses the closed form for BG/NBD's P(no purchase). "
        )
        + "Pareto/NBD's "
        "`expected_purchase_probability(n_purchases=0)` agrees with a Monte Carlo of the fitted "
        "model (200 customers × 20,000 draws; max abs difference "
        + ", ".join(
            f"{chk[n]['pn_no_purchase']['max_abs_difference']:.3f} at {n}" for n in ("39w", "13w")
        )
        + ") and is used as is."
        if all(chk[n]["pn_no_purchase"]["agrees"] for n in chk)
        else "Pareto/NBD's `expected_purchase_probability(n_purchases=0)` DISAGREES with a Monte "
        "Carlo of the fitted model; see `btyd.checks` in the JSON.",
        "",
        "### Reproduce",
        "",
        "`make bench-cdnow` (installs the bench extras, then runs `benchmarks/cdnow.py`; needs "
        "`../shared/data/cdnow/CDNOW_master.txt` or `--data PATH`). Run time on this machine "
        f"({res['runtime']['machine']['cpus']} shared cores, load average "
        f"{res['runtime'].get('load_average_start', float('nan')):.1f} at the start): "
        f"{res['runtime']['seconds']:.0f} s "
        "("
        + ", ".join(
            f"{k} {res['runtime']['phases_seconds'][k]:.0f} s"
            for k in ("ingest", "labels", "train", "score", "btyd", "metrics")
            if k in res["runtime"]["phases_seconds"]
        )
        + f"), peak RSS {res['runtime']['peak_rss_mb']:.0f} MB. The CLI runs the same preset: "
        "`churnguard ingest --params configs/cdnow.yaml`, then `features`, `train`, `evaluate`, "
        "`score` with the same `--params`. The walkthrough notebook "
        "`notebooks/01-cdnow-walkthrough.ipynb` shows the data, the label, the model against the "
        "simple baselines, calibration and a manager list.",
        "",
    ]
    return "\n".join(out)


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace (or add) the CDNOW section of docs/benchmarks.md, keeping every other section."""
    write_docs_section(section, SECTION, path)


def console_table(res: dict[str, Any]) -> str:
    lines = []
    for name in ("39w", "13w"):
        lines.append(f"{name}: churn rate {res['results'][name]['churn_rate']:.3f}")
        for _, row in _in_order(res["results"][name]["scorers"]):
            lo, hi = row["roc_auc_ci95"]
            lines.append(
                f"  {row['label'][:62]:62s} AUC {_f(row['roc_auc'])} [{_f(lo)}, {_f(hi)}]  "
                f"PR {_f(row['pr_auc'])}  Brier {_f(row['brier'], 4)}  lift {_f(row['lift_top10'], 2)}"
            )
        for metric, b in res["results"][name]["vs_best_baseline"].items():
            lo, hi = b["difference_ci95"]
            lines.append(
                f"  vs best baseline on {metric}: {b['baseline']} → diff {_signed(b['difference'], 4)} "
                f"[{_signed(lo, 4)}, {_signed(hi, 4)}]"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="CDNOW_master.txt (default: ingest.source.path of configs/cdnow.yaml)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=BOOTSTRAP_SEED)
    parser.add_argument("--out", type=Path, default=RESULTS / "cdnow.json")
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown file to update")
    parser.add_argument("--no-docs", action="store_true", help="do not touch the markdown file")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the markdown section from the existing --out JSON, no run",
    )
    parser.add_argument(
        "--backtest",
        action="store_true",
        help="run the design check (pseudo-splits inside the calibration period)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.backtest:
        res = _round(run_backtest(args.data, args.seed))
        write_json_atomic(RESULTS / "cdnow_backtest.json", res)
        say(json.dumps({"mean_roc_auc": res["mean_roc_auc"], "choice": res["choice"]}, indent=2))
        return 0
    if args.render_only:
        res = json.loads(args.out.read_text(encoding="utf-8"))
    else:
        res = _round(run(args.data, args.bootstrap, args.seed))
        write_json_atomic(args.out, res)
    say(console_table(res))
    backtest_path = RESULTS / "cdnow_backtest.json"
    backtest = (
        json.loads(backtest_path.read_text(encoding="utf-8")) if backtest_path.exists() else None
    )
    if (
        backtest is not None
        and backtest["choice"] != f"chain_{BASE_HORIZON_DAYS}d_step{CUTOFF_STEP_DAYS}"
    ):
        say(
            f"warning: the backtest chose {backtest['choice']}, the benchmark uses "
            f"chain_{BASE_HORIZON_DAYS}d_step{CUTOFF_STEP_DAYS}"
        )
    if not args.no_docs:
        write_docs(markdown(res, backtest), args.docs)
        verb = "read" if args.render_only else "wrote"
        say(f"{verb} {args.out}; wrote the '{SECTION}' section of {args.docs}")
    say(
        f"run time {res['runtime']['seconds']:.0f} s, peak RSS {res['runtime']['peak_rss_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
