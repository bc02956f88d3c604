"""Fit the LightGBM churn model, its calibration and the baseline scorers, in memory.

The features stage plans the dates (:mod:`churnguard.horizon`, recorded in
``cutoffs.json``): the latest labelled cutoff is *test*, the one before it *validation*,
and the training rows come from cutoffs whose label window ends on or before the
validation cutoff, so no training label peeks past it. LightGBM early-stops on
validation. The probability calibrator is fitted on out-of-time predictions at several
calibration dates spread over the year before validation, each made by a model with the
selected number of rounds trained only on labels that end by that date (so one seasonal
date cannot skew every probability); a chained plan also calibrates the chained horizon
on realised outcomes. The evaluated fit is what the gate judges on the test cutoff; with
``train.refit`` the shipped model is refitted on every labelled cutoff with the same
rounds (its metadata records both fits). Baselines are fitted on the same training
rows, calibrated on the validation rows and scored on the same test rows; the two that
can become champion (logistic regression, days since last purchase) are scorers
(:mod:`churnguard.predictors`). Lapsed customers (win-back) are left out of every split.

Nothing here reads or writes a file: boosters are trained and predict on frames in
memory. The train stage (:mod:`churnguard.train`) reads the snapshots and writes what
is fitted here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnguard import baselines
from churnguard.calibration import BtydStack, Calibrator, fit_calibrator
from churnguard.config import FeaturesParams, TrainParams
from churnguard.drift import reference_profile
from churnguard.errors import ConfigError, DataError
from churnguard.feature_defs import BTYD_FEATURES, MODEL_FEATURES, PREDICTION_COLUMNS
from churnguard.horizon import (
    Plan,
    calibration_dates,
    chain_no_purchase,
    cutoffs_needed,
    fold_train_cutoffs,
    split_cutoffs,
)
from churnguard.predictors import LogisticScorer, RecencyScorer

log = logging.getLogger(__name__)

KEEP_COLUMNS = list(PREDICTION_COLUMNS)  # what the evaluate stage reads beside the scores


@dataclass(frozen=True)
class Split:
    train_cutoffs: list[dt.date]
    valid_cutoff: dt.date
    test_cutoff: dt.date
    horizon_days: int


def plan_split(cutoffs: list[dt.date], horizon_days: int, step_hint: int | None = None) -> Split:
    """Test = latest cutoff, validation = the one before; training labels end ≤ validation cutoff."""
    train, valid, test = split_cutoffs(cutoffs, horizon_days)
    if not train:
        need = (
            f": a direct split needs at least {cutoffs_needed(horizon_days, step_hint)} "
            f"cutoffs every {step_hint} days"
            if step_hint
            else ""
        )
        raise DataError(
            f"no training cutoff has its {horizon_days}-day label window end by the validation "
            f"cutoff {valid}{need}. Re-run `churnguard features`: it plans a grid that fits "
            "(features.horizon_mode auto chains a horizon too long for the history)"
        )
    return Split(train, valid, test, horizon_days)


def _check_rows(frame: pd.DataFrame, name: str, min_rows: int) -> None:
    if len(frame) < min_rows:
        raise DataError(
            f"too few {name} rows: {len(frame)} (train.min_rows = {min_rows}); "
            "use more data or more cutoffs (features.n_cutoffs)"
        )
    classes = sorted(frame["churned"].unique().tolist())
    if len(classes) < 2:
        raise DataError(
            f"the {name} rows have a single class (churned = {classes[0]}) — nothing to learn. "
            "Check features.horizon_days (too short or too long a label window) and the input dates"
        )


def lgb_params(p: TrainParams, features: list[str] | None = None) -> dict[str, Any]:
    """LightGBM parameters; ``train.monotone`` becomes a constraint per feature of ``features``
    (1: P(churn) never falls as the feature grows, -1: never rises)."""
    extra: dict[str, Any] = {}
    if p.monotone and features is not None:
        extra["monotone_constraints"] = [int(p.monotone.get(f, 0)) for f in features]
        extra["monotone_constraints_method"] = "advanced"
    return {
        **extra,
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "max_depth": p.max_depth,
        "min_child_samples": p.min_child_samples,
        "bagging_fraction": p.subsample,
        "bagging_freq": 1 if p.subsample < 1 else 0,
        "feature_fraction": p.colsample_bytree,
        "lambda_l2": p.reg_lambda,
        "seed": p.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }


def model_features(p: TrainParams, columns: Iterable[str] = ()) -> list[str]:
    """The features the model is fitted on: every model feature but ``train.exclude_features``,
    and the BTYD features when the snapshots' ``columns`` have them (features.btyd_features)."""
    known = (*MODEL_FEATURES, *BTYD_FEATURES)
    for key, names in (("exclude_features", p.exclude_features), ("monotone", p.monotone)):
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ConfigError(
                f"train.{key} names unknown feature(s) {unknown}; model features are: "
                f"{', '.join(known)}"
            )
    present = set(columns)
    candidates = [*MODEL_FEATURES, *(f for f in BTYD_FEATURES if f in present)]
    used = [f for f in candidates if f not in set(p.exclude_features)]
    if not used:
        raise ConfigError("train.exclude_features leaves no feature to train on")
    return used


def _xy(frame: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[features].astype("float64"), frame["churned"].to_numpy(dtype=int)


def _default_plan(frame: pd.DataFrame, horizon_days: int, step_hint: int | None) -> Plan:
    """A direct plan from the labelled cutoffs present (snapshots without a recorded plan)."""
    cutoffs = sorted(frame["cutoff_date"].unique())
    split = plan_split(cutoffs, horizon_days, step_hint)
    last = cutoffs[-1]
    return Plan(
        mode="direct",
        as_of=last + dt.timedelta(days=horizon_days),
        target_horizon_days=horizon_days,
        label_horizon_days=horizon_days,
        step_days=step_hint or (cutoffs[-1] - cutoffs[-2]).days,
        cutoffs=cutoffs,
        train_cutoffs=split.train_cutoffs,
        valid_cutoff=split.valid_cutoff,
        test_cutoff=split.test_cutoff,
        calibration_dates=calibration_dates(
            cutoffs,
            horizon_days,
            split.valid_cutoff,
            FeaturesParams().calibration_cutoffs,
            FeaturesParams().calibration_span_days,
        ),
        reason="no plan recorded: direct split of the labelled cutoffs",
    )


def _fit_booster(
    x: pd.DataFrame,
    y: np.ndarray,
    features: list[str],
    p: TrainParams,
    rounds: int,
    valid: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> tuple[lgb.Booster, int]:
    """LightGBM on (x, y): early-stopped on ``valid`` when given, else exactly ``rounds``."""
    dtrain = lgb.Dataset(x, y, feature_name=features, free_raw_data=False)
    if valid is None:
        booster = lgb.train(lgb_params(p, features), dtrain, num_boost_round=rounds)
        return lgb.Booster(model_str=booster.model_to_string()), rounds
    dvalid = lgb.Dataset(valid[0], valid[1], reference=dtrain)
    booster = lgb.train(
        lgb_params(p, features),
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dvalid],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(p.early_stopping_rounds, first_metric_only=True, verbose=False),
        ],
    )
    best = int(booster.best_iteration or rounds)
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), best


def _two_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def out_of_time_predictions(
    frame: pd.DataFrame,
    plan: Plan,
    features: list[str],
    p: TrainParams,
    rounds: int,
) -> tuple[dict[dt.date, lgb.Booster], pd.DataFrame]:
    """For each calibration date d, a model with ``rounds`` rounds trained only on cutoffs
    whose label window ends by d, and its raw predictions at d (``cutoff_date``,
    ``customer_id``, ``raw``, ``churned``). Dates whose earlier rows are too few (below
    ``train.min_rows``) or of one class are skipped."""
    cutoffs = sorted(frame["cutoff_date"].unique())
    boosters: dict[dt.date, lgb.Booster] = {}
    parts = []
    for date in plan.calibration_dates:
        before = fold_train_cutoffs(cutoffs, plan.label_horizon_days, date)
        rows = frame[frame["cutoff_date"].isin(before)]
        at = frame[frame["cutoff_date"] == date]
        x, y = _xy(rows, features)
        if len(rows) < p.min_rows or not _two_classes(y) or at.empty:
            log.info("calibration date %s skipped: %s earlier training rows", date, len(rows))
            continue
        booster, _ = _fit_booster(x, y, features, p, rounds)
        boosters[date] = booster
        parts.append(
            pd.DataFrame(
                {
                    "cutoff_date": at["cutoff_date"].to_numpy(),
                    "customer_id": at["customer_id"].to_numpy(),
                    "raw": booster.predict(at[features].to_numpy(dtype="float64")),
                    "churned": at["churned"].to_numpy(dtype=int),
                }
            )
        )
    cols = ["cutoff_date", "customer_id", "raw", "churned"]
    return boosters, (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols))


def chain_probabilities(
    step_frames: list[pd.DataFrame],
    predict: Any,
    label_horizon_days: int,
    target_horizon_days: int,
) -> pd.Series:
    """P(no purchase in the target horizon) per customer from the base model ``predict``
    applied to the chain's step snapshots (one frame per step, same customers)."""
    steps = []
    for part in step_frames:
        part = part.set_index("customer_id").sort_index()
        steps.append(pd.Series(predict(part), index=part.index))
    return chain_no_purchase(steps, label_horizon_days, target_horizon_days)


def paretonbd_no_purchase_at(
    frame: pd.DataFrame, keys: pd.DataFrame, horizon_days: int
) -> tuple[np.ndarray, dict[dt.date, dict[str, float]]]:
    """Pareto/NBD P(no purchase in the next ``horizon_days``) for the rows ``keys``
    (``cutoff_date``, ``customer_id``), the model fitted at each cutoff on that cutoff's
    rows of ``frame`` only (history up to it, no labels); and the parameters by cutoff."""
    from churnguard.paretonbd import fit_snapshot, snapshot_no_purchase

    out = np.full(len(keys), np.nan)
    fitted: dict[dt.date, dict[str, float]] = {}
    dates = keys["cutoff_date"].to_numpy()
    for cutoff in sorted(set(dates)):
        at = frame[frame["cutoff_date"] == cutoff]
        fitted[cutoff] = fit_snapshot(at)
        p_none = pd.Series(
            snapshot_no_purchase(at, horizon_days, fitted[cutoff]),
            index=at["customer_id"].to_numpy(),
        )
        mask = dates == cutoff
        out[mask] = p_none.reindex(keys["customer_id"].to_numpy()[mask]).to_numpy()
    if np.isnan(out).any():
        raise DataError(f"{int(np.isnan(out).sum())} row(s) have no Pareto/NBD probability")
    return out, fitted


def fit_chain_calibrator(
    chain: pd.DataFrame,
    boosters: dict[dt.date, lgb.Booster],
    calibrator: Calibrator,
    plan: Plan,
    features: list[str],
    stack: BtydStack | None = None,
    frame: pd.DataFrame | None = None,
) -> tuple[Calibrator | None, dict[str, Any]]:
    """The chained horizon's own calibration: a sigmoid on logit(P chained) fitted on the
    realised target outcomes at the chain origins, each chained with the calibration-date
    model trained only on labels that end by its origin (out of time). With ``stack``
    (``train.stack_btyd``) the steps are the stacked probabilities, Pareto/NBD fitted on
    ``frame``'s rows at the origin."""
    from churnguard.paretonbd import fit_snapshot

    p_all, y_all, used = [], [], []
    for origin in plan.chain_origins:
        booster = boosters.get(origin)
        part = chain[chain["chain_origin"] == origin]
        if booster is None or part.empty:
            continue
        frames = [g for _, g in part.groupby("chain_step", sort=True)]
        at_origin = None
        if stack is not None and frame is not None:
            at = frame[frame["cutoff_date"] == origin]
            at_origin = dataclasses.replace(stack, params=fit_snapshot(at))

        def predict(
            x: pd.DataFrame, b: lgb.Booster = booster, s: BtydStack | None = at_origin
        ) -> np.ndarray:
            raw = b.predict(x[features].to_numpy(dtype="float64"))
            return s.predict(raw, x) if s is not None else calibrator.predict(raw)

        p_chain = chain_probabilities(
            frames, predict, plan.label_horizon_days, plan.target_horizon_days
        )
        y = frames[0].set_index("customer_id").sort_index()["churned_target"]
        p_all.append(p_chain.to_numpy())
        y_all.append(y.reindex(p_chain.index).to_numpy(dtype=int))
        used.append(str(origin))
    info: dict[str, Any] = {"origins": used, "kind": None}
    if not used:
        info["note"] = (
            "no calibration date has its target window inside the data: the chained "
            "probability is the product of calibrated step probabilities"
        )
        return None, info
    p, y = np.concatenate(p_all), np.concatenate(y_all)
    info.update(rows=int(y.size), churn_rate=round(float(y.mean()), 6))
    if not _two_classes(y):
        info["note"] = "realised target outcomes have a single class: not calibrated"
        return None, info
    cal, _ = fit_calibrator(p, y, "sigmoid")
    info.update(
        kind=cal.kind,
        brier_before=round(float(np.mean((p - y) ** 2)), 6),
        brier_after=round(float(np.mean((cal.predict(p) - y) ** 2)), 6),
        mean_predicted=round(float(p.mean()), 6),
    )
    return cal, info


@dataclass(frozen=True)
class BoosterFit:
    """A LightGBM fit in memory: booster, calibrator, the features it was fitted on (in
    order, with dtypes) and its metadata; :class:`churnguard.modeling.ChurnModel` is the
    same as files."""

    booster: lgb.Booster
    calibrator: Calibrator
    features: list[str]
    dtypes: dict[str, str]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Fitted:
    """One training run in memory: the shipped fit, the evaluated fit, baselines,
    predictions, summary.

    ``evaluated`` is the fit judged on the test cutoff (its predictions are in
    ``predictions``); ``model`` is what ships: the same object, or (``train.refit``) the
    refit on every labelled cutoff with the evaluated fit's number of rounds.
    """

    model: BoosterFit
    baselines: dict[str, LogisticScorer | RecencyScorer]
    predictions: pd.DataFrame
    summary: dict[str, Any]
    drift_reference: dict[str, Any]  # feature distributions of the shipped fit's rows (PSI)
    evaluated: BoosterFit


def fit_models(
    frame: pd.DataFrame,
    horizon_days: int,
    p: TrainParams,
    step_hint: int | None = None,
    plan: Plan | None = None,
    chain: pd.DataFrame | None = None,
) -> Fitted:
    """Fit model, calibrator and baseline scorers on one time split (no I/O).

    ``plan`` (recorded by the features stage) says which cutoffs train, validate, test and
    calibrate, and whether the horizon is chained; without one, a direct split of the
    labelled cutoffs. ``horizon_days`` is the snapshots' label horizon.
    """
    features = model_features(p, frame.columns)
    frame = frame[(frame["lapsed"] == 0) & frame["churned"].notna()].copy()
    frame["churned"] = frame["churned"].astype(int)
    if plan is None:
        plan = _default_plan(frame, horizon_days, step_hint)
    elif plan.label_horizon_days != horizon_days:
        raise DataError(
            f"the snapshots are labelled for {horizon_days} days but their plan for "
            f"{plan.label_horizon_days}; re-run `churnguard features`"
        )
    present = set(frame["cutoff_date"].unique())
    missing = [str(c) for c in (*plan.train_cutoffs, plan.valid_cutoff) if c not in present]
    if missing:
        raise DataError(
            f"the snapshots lack planned cutoff(s) {missing}; re-run `churnguard features`"
        )
    tr = frame[frame["cutoff_date"].isin(plan.train_cutoffs)]
    va = frame[frame["cutoff_date"] == plan.valid_cutoff]
    te = frame[frame["cutoff_date"] == plan.test_cutoff]
    for name, part in (("training", tr), ("validation", va), ("test", te)):
        _check_rows(part, name, p.min_rows if name == "training" else 1)
    log.info(
        "%s plan, split by time: train %s rows from %d cutoff(s) %s..%s, validation %s rows "
        "at %s, test %s rows at %s",
        plan.mode,
        f"{len(tr):,}",
        len(plan.train_cutoffs),
        plan.train_cutoffs[0],
        plan.train_cutoffs[-1],
        f"{len(va):,}",
        plan.valid_cutoff,
        f"{len(te):,}",
        plan.test_cutoff,
    )
    x_tr, y_tr = _xy(tr, features)
    x_va, y_va = _xy(va, features)
    x_te, y_te = _xy(te, features)
    booster, best_iter = _fit_booster(x_tr, y_tr, features, p, p.n_estimators, valid=(x_va, y_va))
    raw_va, raw_te = booster.predict(x_va.to_numpy()), booster.predict(x_te.to_numpy())

    # calibration: out-of-time predictions at several dates (early stopping used validation)
    fold_boosters, oot = out_of_time_predictions(frame, plan, features, p, best_iter)
    if oot.empty:
        cal_dates = [plan.valid_cutoff]
        cal_raw, cal_y = raw_va, y_va
        cal_note = "the validation cutoff (no earlier calibration date could be fitted)"
    else:
        cal_dates = sorted(set(oot["cutoff_date"]))
        cal_raw, cal_y = oot["raw"].to_numpy(), oot["churned"].to_numpy(dtype=int)
        cal_note = f"{len(cal_dates)} out-of-time cutoff(s)"
    calibrator, cv_brier = fit_calibrator(cal_raw, cal_y, p.calibration, seed=p.seed)
    log.info(
        "LightGBM: best iteration %d; calibration %s on %s %s (CV Brier %s)",
        best_iter,
        calibrator.kind,
        cal_note,
        ", ".join(map(str, cal_dates)),
        cv_brier,
    )
    stack, stack_inputs = None, None
    scores_va: dict[str, np.ndarray] = {"model_raw": raw_va, "model": calibrator.predict(raw_va)}
    scores_te: dict[str, np.ndarray] = {"model_raw": raw_te, "model": calibrator.predict(raw_te)}
    if p.stack_btyd:
        # Pareto/NBD at each calibration date (its own history), and at test: its parameters
        # are what the evaluated model scores with (the newest history it may see)
        pn_va, _ = paretonbd_no_purchase_at(frame, va, plan.label_horizon_days)
        pn_cal = (  # calibrated on the validation cutoff: the same fit, not a second one
            pn_va if oot.empty else paretonbd_no_purchase_at(frame, oot, plan.label_horizon_days)[0]
        )
        pn_te, at_test = paretonbd_no_purchase_at(frame, te, plan.label_horizon_days)
        stack = BtydStack.fit(
            cal_raw, pn_cal, cal_y, at_test[plan.test_cutoff], plan.label_horizon_days
        )
        stack_inputs = (pn_cal, pn_te)
        scores_va["model"] = stack.combine(raw_va, pn_va)
        scores_te["model"] = stack.combine(raw_te, pn_te)
        log.info("stacked with Pareto/NBD: %s", stack.to_dict())
    chain_cal, chain_info = None, {}
    if plan.mode == "chained" and not p.chain_calibration:
        chain_info = {"origins": [], "kind": None, "note": "train.chain_calibration is false"}
    elif plan.mode == "chained":
        chain_cal, chain_info = fit_chain_calibrator(
            chain if chain is not None else pd.DataFrame(),
            fold_boosters,
            calibrator,
            plan,
            features,
            stack,
            frame,
        )
        log.info("chained %d-day horizon calibration: %s", plan.target_horizon_days, chain_info)

    # the baselines that can become champion are scorers like the model (saved beside it);
    # the rules stay references in the metrics
    horizon_meta: dict[str, Any] = {
        "horizon_days": plan.target_horizon_days,
        "label_horizon_days": plan.label_horizon_days,
        "horizon_mode": plan.mode,
    }
    meta = {**horizon_meta, "test_cutoff": str(plan.test_cutoff), "lapsed": False}
    fitted = baselines.LogisticBaseline().fit(x_tr, y_tr)
    logreg = LogisticScorer.from_fitted(fitted, Calibrator("identity"), {**meta, "kind": "logreg"})
    logreg.calibrator, _ = fit_calibrator(logreg.predict_raw(va), y_va, "isotonic")
    recency_cal, _ = fit_calibrator(baselines.recency_rank_score(va), y_va, "isotonic")
    recency = RecencyScorer(
        recency_cal,
        float(np.nanmedian(va["recency_days"].to_numpy(dtype=float))),
        {**meta, "kind": "recency_rank"},
    )
    baseline_scorers: dict[str, LogisticScorer | RecencyScorer] = {
        "logreg": logreg,
        "recency_rank": recency,
    }
    raw_baselines = {
        "recency_rule": baselines.recency_rule_score,
        "rfm": baselines.rfm_baseline_score,
    }
    for name, fn in raw_baselines.items():
        cal, _ = fit_calibrator(fn(va), y_va, "isotonic")
        scores_va[name], scores_te[name] = cal.predict(fn(va)), cal.predict(fn(te))
    for name, scorer in baseline_scorers.items():
        scores_va[name], scores_te[name] = scorer.predict(va), scorer.predict(te)

    preds = []
    for split_name, part, scores in (("valid", va, scores_va), ("test", te, scores_te)):
        out = part[KEEP_COLUMNS].copy()
        out.insert(0, "split", split_name)
        for name, values in scores.items():
            out[f"p_{name}"] = np.round(values, 8)
        preds.append(out)
    predictions = pd.concat(preds, ignore_index=True).sort_values(
        ["split", "customer_id"], kind="stable"
    )

    importance = dict(
        zip(features, booster.feature_importance("gain").round(4).tolist(), strict=True)
    )
    evaluated_fit = {
        "fit": "evaluated",
        "train_cutoffs": [str(c) for c in plan.train_cutoffs],
        "valid_cutoff": str(plan.valid_cutoff),
        "rows": len(tr),
        "rounds": best_iter,
        "calibration_dates": [str(c) for c in cal_dates],
    }
    summary: dict[str, Any] = {
        "train_cutoffs": [str(c) for c in plan.train_cutoffs],
        "valid_cutoff": str(plan.valid_cutoff),
        "test_cutoff": str(plan.test_cutoff),
        **horizon_meta,
        "plan": plan.to_dict(),
        "rows": {"train": len(tr), "valid": len(va), "test": len(te)},
        "churn_rate": {
            "train": round(float(y_tr.mean()), 6),
            "valid": round(float(y_va.mean()), 6),
            "test": round(float(y_te.mean()), 6),
        },
        "best_iteration": best_iter,
        "calibration": calibrator.kind,
        "calibration_cv_brier": cv_brier,
        "calibration_dates": [str(c) for c in cal_dates],
        "calibration_rows": int(cal_y.size),
        "features_excluded": sorted(p.exclude_features),
        "feature_importance_gain": importance,
        "params": p.model_dump(mode="json"),
    }
    if plan.mode == "chained":
        summary["chain_calibration"] = chain_info
        summary["chain_calibrator"] = chain_cal.to_dict() if chain_cal else None
    if stack is not None:
        summary["stack_btyd"] = stack.to_dict()
    dtypes = {f: "float64" for f in features}
    evaluated = BoosterFit(
        booster,
        calibrator,
        list(features),
        dtypes,
        {
            **summary,
            "fit": "evaluated",
            "evaluated_fit": evaluated_fit,
            "shipped_fit": evaluated_fit,
        },
    )
    if not p.refit:
        return Fitted(
            evaluated,
            baseline_scorers,
            predictions.reset_index(drop=True),
            evaluated.metadata,
            reference_profile(tr, list(features)),
            evaluated,
        )

    # the shipped model has seen the newest labels: every labelled cutoff, the same rounds;
    # its calibrator adds the test cutoff's out-of-time predictions (the evaluated fit's)
    every = frame[frame["cutoff_date"].isin(plan.cutoffs)]
    x_all, y_all = _xy(every, features)
    refit, _ = _fit_booster(x_all, y_all, features, p, best_iter)
    ship_cal, _ = fit_calibrator(
        np.concatenate([cal_raw, raw_te]),
        np.concatenate([cal_y, y_te]),
        calibrator.kind,
        seed=p.seed,
    )
    ship_stack = None
    if stack is not None and stack_inputs is not None:
        ship_stack = BtydStack.fit(
            np.concatenate([cal_raw, raw_te]),
            np.concatenate(stack_inputs),
            np.concatenate([cal_y, y_te]),
            stack.params,
            plan.label_horizon_days,
        )
    shipped_fit = {
        "fit": "refit",
        "train_cutoffs": [str(c) for c in sorted(every["cutoff_date"].unique())],
        "rows": len(every),
        "rounds": best_iter,
        "calibration_dates": [str(c) for c in [*cal_dates, plan.test_cutoff]],
        "calibration": ship_cal.kind,
    }
    shipped_summary = {
        **summary,
        "feature_importance_gain": dict(
            zip(features, refit.feature_importance("gain").round(4).tolist(), strict=True)
        ),
        "evaluated_fit": evaluated_fit,
        "shipped_fit": shipped_fit,
    }
    if ship_stack is not None:
        shipped_summary["stack_btyd"] = ship_stack.to_dict()
    shipped = BoosterFit(
        refit, ship_cal, list(features), dtypes, {**shipped_summary, "fit": "refit"}
    )
    evaluated.metadata["shipped_fit"] = shipped_fit
    log.info(
        "refit on every labelled cutoff: %s rows from %d cutoffs, %d rounds (the shipped model)",
        f"{len(every):,}",
        len(shipped_fit["train_cutoffs"]),
        best_iter,
    )
    return Fitted(
        shipped,
        baseline_scorers,
        predictions.reset_index(drop=True),
        shipped_summary,
        reference_profile(every, list(features)),
        evaluated,
    )
