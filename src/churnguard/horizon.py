"""How a churn horizon is trained: the cutoff plan, the time split and the chain.

Pure functions on dates and arrays (no disk, engine or model), shared by the features
stage (which builds the snapshots the plan asks for), train (which follows the plan
recorded in ``cutoffs.json``), scoring and ``churnguard backtest``.

**Direct.** Every labelled cutoff carries the target label: no purchase in
(c, c + H]. The latest labelled cutoff is *test* (as_of − H), the one before it
*validation* (test − step), and training cutoffs are those whose H-day window ends by the
validation cutoff. So the latest training cutoff is as_of − 2H − step, and a direct model
needs ``ceil(H / step) + 2`` cutoffs, the first of them after the first day of data.

**Chained.** When that does not fit (a 26-week target on a year of history), a model is
trained on a short base horizon h (cutoffs every ``base_cutoff_step_days``) and chained::

    P(no purchase in (c, c+H]) = prod_k P(no purchase in (c+kh, c+(k+1)h] | none in (c, c+kh])

Each factor is the h-day model applied to the snapshot at c+kh built from the
transactions up to c only — exactly the customer's snapshot there if they do not buy in
between — so the product is the chain rule, not a guess. A final partial step of r < h
days contributes p^(r/h) (constant hazard within a step). The chained probability is
then calibrated on realised H-day outcomes at the calibration dates whose H-day window
ends by the as-of date (:func:`plan_training`, ``chain_origins``).

**Calibration dates.** The calibrator is fitted on out-of-time predictions at several
cutoffs spread over the year before the validation cutoff (each predicted by a model
trained only on labels that end by that date), not on the validation cutoff, which only
decides early stopping.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnguard.config import FeaturesParams
from churnguard.errors import DataError

Mode = Literal["direct", "chained"]
P_FLOOR = 1e-9  # per-step probabilities are clipped here before the log
CALIBRATION_SPAN_DAYS = 365  # calibration dates are spread over this many days before validation


@dataclass(frozen=True)
class Plan:
    """Every date one training run uses, decided once (features) and followed (train)."""

    mode: Mode
    as_of: dt.date
    target_horizon_days: int  # H: what P(churn) in the lists means
    label_horizon_days: int  # the label of the snapshots: H (direct) or the base h (chained)
    step_days: int
    cutoffs: list[dt.date]  # labelled cutoffs, oldest first
    train_cutoffs: list[dt.date]
    valid_cutoff: dt.date
    test_cutoff: dt.date
    calibration_dates: list[dt.date] = field(default_factory=list)  # [] = validation only
    chain_origins: list[dt.date] = field(default_factory=list)  # chained: realised H windows
    reason: str = ""

    @property
    def chain_steps(self) -> int:
        return chain_steps(self.label_horizon_days, self.target_horizon_days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "as_of": str(self.as_of),
            "target_horizon_days": self.target_horizon_days,
            "label_horizon_days": self.label_horizon_days,
            "step_days": self.step_days,
            "train_cutoffs": [str(c) for c in self.train_cutoffs],
            "valid_cutoff": str(self.valid_cutoff),
            "test_cutoff": str(self.test_cutoff),
            "calibration_dates": [str(c) for c in self.calibration_dates],
            "chain_origins": [str(c) for c in self.chain_origins],
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], cutoffs: Sequence[dt.date]) -> Plan:
        day = dt.date.fromisoformat
        return cls(
            mode=d["mode"],
            as_of=day(d["as_of"]),
            target_horizon_days=int(d["target_horizon_days"]),
            label_horizon_days=int(d["label_horizon_days"]),
            step_days=int(d["step_days"]),
            cutoffs=sorted(cutoffs),
            train_cutoffs=[day(c) for c in d["train_cutoffs"]],
            valid_cutoff=day(d["valid_cutoff"]),
            test_cutoff=day(d["test_cutoff"]),
            calibration_dates=[day(c) for c in d.get("calibration_dates", [])],
            chain_origins=[day(c) for c in d.get("chain_origins", [])],
            reason=d.get("reason", ""),
        )


# --------------------------------------------------------------------------- split


def split_cutoffs(
    cutoffs: Sequence[dt.date], label_horizon_days: int
) -> tuple[list[dt.date], dt.date, dt.date]:
    """(training cutoffs, validation, test): test = latest, validation = the one before,
    training = cutoffs whose label window ends by the validation cutoff (may be empty)."""
    cuts = sorted(set(cutoffs))
    if len(cuts) < 3:
        raise DataError(
            f"too few cutoffs to split by time: {len(cuts)} labelled cutoff(s), need at least 3 "
            "(train, validation, test); raise features.n_cutoffs"
        )
    test, valid = cuts[-1], cuts[-2]
    horizon = dt.timedelta(days=label_horizon_days)
    return [c for c in cuts[:-2] if c + horizon <= valid], valid, test


def cutoffs_needed(horizon_days: int, step_days: int) -> int:
    """Labelled cutoffs a direct split needs: one training cutoff whose window ends by the
    validation cutoff, which is one step before test: ceil(h / step) + 2."""
    return math.ceil(horizon_days / step_days) + 2


def _fit(data_min: dt.date, last: dt.date, step_days: int) -> int:
    """How many cutoffs last, last − step, … lie strictly after the first day of data."""
    return ((last - data_min).days - 1) // step_days + 1 if last > data_min else 0


def longest_direct_horizon(data_min: dt.date, as_of: dt.date, step_days: int) -> int:
    """The longest horizon a direct split fits on this history (0 if none)."""
    best = 0
    for h in range(1, (as_of - data_min).days):
        if _fit(data_min, as_of - dt.timedelta(days=h), step_days) >= cutoffs_needed(h, step_days):
            best = h
    return best


def _direct_problem(data_min: dt.date, as_of: dt.date, fp: FeaturesParams) -> str | None:
    """Why the direct grid of ``fp`` does not fit, as one consistent instruction (None: fits)."""
    h, step, n = fp.horizon_days, fp.cutoff_step_days, fp.n_cutoffs
    last = as_of - dt.timedelta(days=h)
    fit, need = _fit(data_min, last, step), cutoffs_needed(h, step)
    span = (as_of - data_min).days
    if fit >= need:
        if n < need:
            return (
                f"a direct {h}-day model with cutoffs every {step} days needs at least {need} "
                f"labelled cutoffs (one for training whose window ends by validation, then "
                f"validation and test); set features.n_cutoffs between {need} and {fit} (what "
                f"the data from {data_min} holds)"
            )
        if n > fit:
            return (
                f"the cutoff grid starts at {last - dt.timedelta(days=(n - 1) * step)}, but "
                f"transactions start on {data_min}: no history before the first cutoff. With "
                f"horizon_days={h} and cutoff_step_days={step} at most {fit} cutoff(s) fit (set "
                f"features.n_cutoffs ≤ {fit}; the time split needs at least {need})"
            )
        return None
    longest = longest_direct_horizon(data_min, as_of, step)
    lower = (
        f"lower features.horizon_days to {longest} or less" if longest else "use a longer history"
    )
    return (
        f"a direct {h}-day model does not fit the history: with cutoffs every {step} days it "
        f"needs {need} labelled cutoffs after the first day of data, the last at as-of − "
        f"{h} days, i.e. {2 * h + step + 1} days or more from {data_min} to the as-of date "
        f"{as_of} (the data spans {span} days, where {fit} cutoff(s) fit). Set "
        f"features.horizon_mode: chained (or auto) to train a "
        f"{fp.base_horizon_days}-day model and chain it over {h} days, or {lower}"
    )


def plan_training(data_min: dt.date, data_max: dt.date, fp: FeaturesParams) -> Plan:
    """The plan for ``fp`` on data from ``data_min`` to ``data_max``; :class:`DataError`
    with one instruction that fits every constraint at once when nothing fits.

    ``horizon_mode`` auto: direct when the direct grid of ``n_cutoffs`` fits (history and
    split), else chained. Chained: cutoffs every ``base_cutoff_step_days`` over the same
    span as the direct grid ((n_cutoffs − 1) × cutoff_step_days before the latest one),
    as many as fit after the first day of data.
    """
    as_of = fp.as_of or data_max
    if as_of < data_min:
        raise DataError(
            f"features.as_of {as_of} is before the first transaction ({data_min}); "
            f"set features.as_of between {data_min} and {data_max}"
        )
    H = fp.horizon_days
    span = (as_of - data_min).days
    problem = _direct_problem(data_min, as_of, fp)
    if span <= H:  # no direct label window fits at all
        problem = (
            f"features.horizon_days must be below {span} days for a direct model (it is {H}): "
            f"the data spans {data_min}..{as_of}, and every label window must end by the "
            "as-of date after at least one day of history. Set features.horizon_mode: chained "
            "(or auto) to chain a shorter model over it"
        )
    chain_ok = fp.base_horizon_days < H
    if fp.horizon_mode == "direct" or (fp.horizon_mode == "auto" and problem is None):
        if problem is not None:
            if chain_ok:
                raise DataError(problem)
            raise DataError(problem.split(". Set features.horizon_mode")[0] + ".")
        last = as_of - dt.timedelta(days=H)
        step = fp.cutoff_step_days
        cutoffs = [last - i * dt.timedelta(days=step) for i in range(fp.n_cutoffs)][::-1]
        return _finish("direct", as_of, H, H, step, cutoffs, fp, "features.horizon_mode")
    if not chain_ok:
        if fp.horizon_mode == "chained":
            raise DataError(
                f"features.base_horizon_days ({fp.base_horizon_days}) must be below "
                f"features.horizon_days ({H}) to chain it; lower base_horizon_days"
            )
        raise DataError(problem or "the direct split does not fit")
    h, step = fp.base_horizon_days, fp.base_cutoff_step_days
    cutoffs = chained_cutoffs(as_of, data_min, fp)
    last = as_of - dt.timedelta(days=h)
    need = cutoffs_needed(h, step)
    if len(cutoffs) < need:
        raise DataError(
            f"a chained {H}-day horizon trains a {h}-day model on cutoffs every {step} days; "
            f"it needs {need} cutoffs after the first day of data ({data_min}), the last at "
            f"as-of − {h} days ({last}), i.e. {2 * h + step + 1} days of history or more before "
            f"the as-of date {as_of}, and {len(cutoffs)} fit. Use a longer history, or lower "
            "features.base_horizon_days / features.base_cutoff_step_days"
        )
    why = (
        "features.horizon_mode: chained"
        if fp.horizon_mode == "chained"
        else f"auto: {problem}"
        if problem
        else "auto"
    )
    return _finish("chained", as_of, H, h, step, cutoffs, fp, why)


def chained_cutoffs(as_of: dt.date, data_min: dt.date, fp: FeaturesParams) -> list[dt.date]:
    """A chained plan's labelled cutoffs, oldest first: every ``base_cutoff_step_days``
    back from as-of − ``base_horizon_days``, after the first day of data and within the
    span the direct grid would cover (``n_cutoffs`` × ``cutoff_step_days``)."""
    step = dt.timedelta(days=fp.base_cutoff_step_days)
    last = as_of - dt.timedelta(days=fp.base_horizon_days)
    earliest = last - dt.timedelta(days=(fp.n_cutoffs - 1) * fp.cutoff_step_days)
    cutoffs = []
    c = last
    while c > data_min and c >= earliest:
        cutoffs.append(c)
        c -= step
    return cutoffs[::-1]


def _finish(
    mode: Mode,
    as_of: dt.date,
    target: int,
    label: int,
    step: int,
    cutoffs: list[dt.date],
    fp: FeaturesParams,
    reason: str,
) -> Plan:
    train, valid, test = split_cutoffs(cutoffs, label)
    dates = calibration_dates(
        cutoffs, label, valid, fp.calibration_cutoffs, fp.calibration_span_days
    )
    origins = (
        [c for c in dates if c + dt.timedelta(days=target) <= as_of] if mode == "chained" else []
    )
    return Plan(
        mode, as_of, target, label, step, cutoffs, train, valid, test, dates, origins, reason
    )


def calibration_dates(
    cutoffs: Sequence[dt.date],
    label_horizon_days: int,
    valid: dt.date,
    k: int,
    span_days: int = CALIBRATION_SPAN_DAYS,
) -> list[dt.date]:
    """Up to ``k`` cutoffs before ``valid`` (within ``span_days`` of it) spread evenly over the
    eligible ones: those with at least one earlier cutoff whose label window ends by them
    (so a model trained only on earlier labels can predict them). [] when k ≤ 1 or none
    is eligible: the calibrator then uses the validation cutoff."""
    if k <= 1:
        return []
    cuts = sorted(set(cutoffs))
    h = dt.timedelta(days=label_horizon_days)
    start = valid - dt.timedelta(days=span_days)
    eligible = [c for c in cuts if start <= c < valid and any(o + h <= c for o in cuts if o < c)]
    if len(eligible) <= k:
        return eligible
    idx = np.unique(np.round(np.linspace(0, len(eligible) - 1, k)).astype(int))
    return [eligible[i] for i in idx]


def fold_train_cutoffs(
    cutoffs: Sequence[dt.date], label_horizon_days: int, date: dt.date
) -> list[dt.date]:
    """The cutoffs a model predicting ``date`` out of time may train on: label windows
    that end by ``date``."""
    h = dt.timedelta(days=label_horizon_days)
    return [c for c in sorted(cutoffs) if c + h <= date]


# --------------------------------------------------------------------------- chaining


def chain_steps(base_days: int, horizon_days: int) -> int:
    """How many base steps cover the horizon (the last may be partial)."""
    if base_days < 1 or horizon_days < 1:
        raise ValueError(f"base and horizon must be >= 1 day, got {base_days}, {horizon_days}")
    return math.ceil(horizon_days / base_days - 1e-9)


def chain_cutoffs(as_of: dt.date, base_days: int, horizon_days: int) -> list[dt.date]:
    """Snapshot dates as_of + k·base for every chain step k (all built from data up to as_of)."""
    steps = chain_steps(base_days, horizon_days)
    return [as_of + dt.timedelta(days=k * base_days) for k in range(steps)]


def chain_step_weights(base_days: int, horizon_days: int) -> list[float]:
    """Exponent of each step's probability: 1 for full steps, r/h for a final partial step."""
    steps = chain_steps(base_days, horizon_days)
    return [min(1.0, (horizon_days - k * base_days) / base_days) for k in range(steps)]


def chain_no_purchase(
    step_p: Sequence[pd.Series | np.ndarray], base_days: int, horizon_days: int
) -> pd.Series:
    """P(no purchase in the horizon) = prod_k p_k^(w_k) from per-step base-horizon probabilities.

    ``step_p[k]`` is the base model's P(no purchase) on the snapshot at step k (see
    :func:`chain_cutoffs`); Series are aligned on their index (customer id), arrays by
    position. Probabilities are clipped to [1e-9, 1] and combined in log space.
    """
    weights = chain_step_weights(base_days, horizon_days)
    if len(step_p) != len(weights):
        raise ValueError(
            f"a {horizon_days}-day horizon in {base_days}-day steps needs {len(weights)} step "
            f"probabilities, got {len(step_p)}"
        )
    log_p: pd.Series | None = None
    for p, weight in zip(step_p, weights, strict=True):
        s = p if isinstance(p, pd.Series) else pd.Series(np.asarray(p, dtype=float))
        term = weight * np.log(s.clip(P_FLOOR, 1.0))
        log_p = term if log_p is None else log_p.add(term, fill_value=np.nan)
    assert log_p is not None
    if log_p.isna().any():
        raise ValueError(
            f"{int(log_p.isna().sum())} customer(s) lack a probability at some chain step "
            "(or have a missing one): every step must score the same customers"
        )
    return np.exp(log_p)
