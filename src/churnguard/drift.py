"""Population stability index (PSI) of model features: training snapshots vs a scoring snapshot.

Formula
-------
For one feature, the training rows define a set of bins plus a separate *missing* bin. With
``ref_i`` the share of training rows in bin ``i`` and ``cur_i`` the share of scoring rows in the
same bin (the missing bin included)::

    PSI = sum_i (cur_i - ref_i) * ln(cur_i / ref_i)

Every term is >= 0, so PSI is 0 only when both distributions put the same share in every bin.
A bin that is empty on one side would make the logarithm infinite, so before the sum **each share
is floored at ``epsilon``** (``max(share, epsilon)``, default ``1e-4``; the floored shares are not
renormalised). A bin empty on both sides then contributes exactly 0, and a bin empty on one side
contributes a large but finite term. Rule of thumb (:func:`psi_level`): below 0.1 stable,
0.1 to 0.25 moderate shift, 0.25 and above major shift.

Bin rule
--------
A profile stores only the *interior* edges ``e_1 < e_2 < ... < e_k`` of a feature. The ``k + 1``
bins are **closed on the right**::

    (-inf, e_1], (e_1, e_2], ..., (e_{k-1}, e_k], (e_k, +inf)

so a value equal to an edge belongs to the bin whose upper bound it is. Both
:func:`reference_profile` and :func:`population_stability` assign values with
``np.searchsorted(edges, values, side="left")``, which implements exactly this rule.

Edges are the ``1/bins, 2/bins, ..., (bins-1)/bins`` quantiles of the non-missing training
values (``inverted_cdf`` method, so every edge is an observed value), rounded to 10 significant
digits (so the JSON is stable) and deduplicated. Any edge that would leave a training bin empty
(for example an edge equal to the maximum, as happens with ties) is dropped, merging that bin into
its neighbour; hence every training bin holds at least one row, a binary 0/1 feature gets two
bins and a constant feature gets a single bin ``(-inf, +inf)``. A constant feature can therefore
only drift through its missing share.

Missing means NaN, None, pd.NA or +/-inf; missing values never enter a value bin, they are
counted in the missing bin. All shares are fractions of *all* rows, so the value-bin shares plus
the missing share sum to 1.

The module is pure: no file I/O, inputs are never modified, outputs are deterministic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_BINS",
    "PSI_MAJOR",
    "PSI_MODERATE",
    "drift_summary",
    "population_stability",
    "psi_level",
    "reference_profile",
]

DEFAULT_BINS = 10
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25

_EDGE_DIGITS = 10
_COLUMNS = ["feature", "psi", "reference_missing_share", "current_missing_share", "top_bin"]


# --------------------------------------------------------------------------------------------
# helpers


def _round_sig(value: float) -> float:
    """``value`` rounded to 10 significant digits, as a plain float (``-0.0`` becomes ``0.0``)."""
    return float(f"{value:.{_EDGE_DIGITS}g}") + 0.0


def _column(frame: pd.DataFrame, feature: str) -> np.ndarray:
    """The feature as a float array; missing values (NaN/None/NA/+-inf) stay non-finite."""
    column = frame[feature]
    if isinstance(column, pd.DataFrame):
        raise ValueError(f"feature {feature!r} appears more than once in the frame")
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        raise ValueError(f"feature {feature!r} is not numeric (dtype {column.dtype})")
    try:
        numeric = pd.to_numeric(column, errors="raise")
        values = numeric.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"feature {feature!r} is not numeric: {exc}") from exc
    return np.asarray(values, dtype=float)


def _bin_counts(edges: Sequence[float], finite: np.ndarray) -> np.ndarray:
    """Counts of ``finite`` values per right-closed bin defined by the interior ``edges``."""
    index = np.searchsorted(np.asarray(edges, dtype=float), finite, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def _edges(finite: np.ndarray, bins: int) -> list[float]:
    """Interior quantile edges of ``finite`` (rounded, deduplicated, no empty bins)."""
    if finite.size == 0 or bins == 1:
        return []
    levels = np.arange(1, bins) / bins
    quantiles = np.quantile(finite, levels, method="inverted_cdf")
    rounded = {_round_sig(float(q)) for q in quantiles}
    edges = sorted(e for e in rounded if math.isfinite(e))
    # Drop edges that leave a bin empty: an empty bin (e_{i-1}, e_i] is merged upwards by dropping
    # e_i; an empty last bin (e_k, +inf) is merged downwards by dropping e_k.
    while edges:
        empty = np.flatnonzero(_bin_counts(edges, finite) == 0)
        if empty.size == 0:
            break
        del edges[min(int(empty[0]), len(edges) - 1)]
    return edges


def _require_features(frame: pd.DataFrame, features: Sequence[str]) -> None:
    absent = [f for f in features if f not in frame.columns]
    if absent:
        names = ", ".join(repr(f) for f in absent)
        raise ValueError(f"feature(s) missing from the frame: {names}")


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def _interval(edges: Sequence[float], index: int) -> str:
    """Human text of bin ``index``, e.g. ``(12.5, 30]``; the missing bin is ``missing``."""
    k = len(edges)
    if index > k:
        return "missing"
    if k == 0:
        return "(-inf, +inf)"
    if index == 0:
        return f"(-inf, {_number(edges[0], 4)}]"
    if index == k:
        return f"({_number(edges[-1], 4)}, +inf)"
    low, high = edges[index - 1], edges[index]
    for digits in range(4, _EDGE_DIGITS + 1):  # shortest text that keeps the bounds apart
        low_text, high_text = _number(low, digits), _number(high, digits)
        if low_text != high_text:
            break
    return f"({low_text}, {high_text}]"


def _percent(share: float) -> str:
    if share == 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    if share < 0.01:
        return f"{share:.1%}"
    return f"{share:.0%}"


def _checked_entry(feature: str, entry: Any) -> tuple[list[float], np.ndarray]:
    """Edges and reference shares (value bins + missing bin) of one profile entry, validated."""
    try:
        edges = [float(e) for e in entry["edges"]]
        shares = [float(s) for s in entry["shares"]]
        missing = float(entry["missing_share"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed profile entry for feature {feature!r}: {exc!r}") from exc
    if len(shares) != len(edges) + 1:
        raise ValueError(
            f"malformed profile entry for feature {feature!r}: "
            f"{len(edges)} edges need {len(edges) + 1} shares, got {len(shares)}"
        )
    if not all(math.isfinite(e) for e in edges) or any(
        a >= b for a, b in itertools.pairwise(edges)
    ):
        raise ValueError(f"profile edges of feature {feature!r} must be finite and increasing")
    reference = np.asarray([*shares, missing], dtype=float)
    if not np.all(np.isfinite(reference)) or np.any(reference < 0):
        raise ValueError(f"profile shares of feature {feature!r} must be finite and >= 0")
    return edges, reference


# --------------------------------------------------------------------------------------------
# public API


def reference_profile(
    frame: pd.DataFrame, features: Sequence[str], bins: int = DEFAULT_BINS
) -> dict:
    """Bin edges and shares of each feature in the training rows ``frame``.

    Returns a JSON-serialisable dict (plain dicts, lists, floats and ints only)::

        {"bins": bins, "rows": n,
         "features": {name: {"edges": [e_1, ..., e_k],          # interior edges, increasing
                             "shares": [s_0, ..., s_k],         # share of rows per value bin
                             "missing_share": m}}}              # share of NaN/None/+-inf

    Features are keyed in sorted order. Bins are closed on the right: ``(-inf, e_1]``,
    ``(e_1, e_2]``, ..., ``(e_k, +inf)`` (see the module docstring for how edges are chosen).
    ``sum(shares) + missing_share == 1`` up to float rounding. The result depends only on the
    values, not on row or column order.

    Raises ``ValueError`` if ``frame`` is empty, ``features`` is empty, a feature is absent or
    not numeric, or ``bins`` is not an integer >= 1.
    """
    if isinstance(features, str):
        raise ValueError("features must be a sequence of column names, not a single string")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    names = sorted(set(features))
    if not names:
        raise ValueError("no features to profile")
    _require_features(frame, names)
    rows = len(frame)
    if rows == 0:
        raise ValueError("cannot build a reference profile from an empty frame")

    profiled: dict[str, dict] = {}
    for name in names:
        values = _column(frame, name)
        finite = values[np.isfinite(values)]
        edges = _edges(finite, int(bins))
        counts = _bin_counts(edges, finite)
        profiled[name] = {
            "edges": [float(e) for e in edges],
            "shares": [int(c) / rows for c in counts],
            "missing_share": (rows - int(finite.size)) / rows,
        }
    return {"bins": int(bins), "rows": int(rows), "features": profiled}


def population_stability(profile: dict, frame: pd.DataFrame, epsilon: float = 1e-4) -> pd.DataFrame:
    """PSI of every profiled feature in the scoring rows ``frame`` against the ``profile``.

    ``profile`` is the output of :func:`reference_profile` (or its JSON round-trip). Values are
    binned with the profile's edges using the same right-closed rule; missing values
    (NaN/None/NA/+-inf) form their own bin. ``PSI = sum (cur - ref) * ln(cur / ref)`` over all
    bins, missing bin included, where both shares are first floored at ``epsilon``
    (``max(share, epsilon)``, not renormalised) so that empty bins give a finite PSI.

    Returns one row per profiled feature, columns ``feature``, ``psi``,
    ``reference_missing_share``, ``current_missing_share`` and ``top_bin`` -- the bin whose share
    moved most (unfloored shares; ties go to the missing bin, then the lowest bin), e.g.
    ``"(12.5, 30] : 8% → 31%"`` or ``"missing : 0% → 20%"``, or ``""`` when no share moved. Sorted by ``psi`` descending, then ``feature``. Columns of
    ``frame`` not in the profile are ignored.

    Raises ``ValueError`` if ``frame`` is empty, a profiled feature is absent from ``frame``
    (the message names it), a feature is not numeric, ``epsilon`` is not in (0, 1), or the
    profile is malformed.
    """
    if not (isinstance(epsilon, int | float) and 0 < epsilon < 1):
        raise ValueError(f"epsilon must be a number in (0, 1), got {epsilon!r}")
    features = profile.get("features") if isinstance(profile, dict) else None
    if not isinstance(features, dict):
        raise ValueError("profile must be a dict with a 'features' mapping (see reference_profile)")
    names = sorted(features)
    _require_features(frame, names)
    rows = len(frame)
    if rows == 0:
        raise ValueError("cannot compute population stability on an empty frame")

    records = []
    for name in names:
        edges, reference = _checked_entry(name, features[name])
        values = _column(frame, name)
        finite = values[np.isfinite(values)]
        counts = _bin_counts(edges, finite)
        current = np.append(counts, rows - finite.size) / rows

        ref_floor = np.maximum(reference, epsilon)
        cur_floor = np.maximum(current, epsilon)
        psi = float(np.sum((cur_floor - ref_floor) * np.log(cur_floor / ref_floor)))

        # Rounded so float noise cannot decide ties. Ties go to the missing bin, then to the lowest
        # value bin (a missing share that grows shrinks the value bins by as much).
        moved = np.round(np.abs(current - reference), 12)
        order = np.r_[moved.size - 1, np.arange(moved.size - 1)]
        top = int(order[np.argmax(moved[order])])
        top_bin = (
            f"{_interval(edges, top)} : {_percent(reference[top])} → {_percent(current[top])}"
            if moved[top] > 0
            else ""
        )
        records.append(
            {
                "feature": name,
                "psi": psi,
                "reference_missing_share": float(reference[-1]),
                "current_missing_share": float(current[-1]),
                "top_bin": top_bin,
            }
        )

    table = pd.DataFrame.from_records(records, columns=_COLUMNS)
    table = table.astype(
        {"psi": float, "reference_missing_share": float, "current_missing_share": float}
    )
    table = table.sort_values(
        ["psi", "feature"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)
    return table


def psi_level(psi: float) -> str:
    """Rule-of-thumb reading of a PSI value.

    ``"stable"`` below :data:`PSI_MODERATE` (0.1), ``"moderate"`` from 0.1 up to (excluding)
    :data:`PSI_MAJOR` (0.25), ``"major"`` from 0.25. Raises ``ValueError`` for NaN or a negative
    value (PSI is never negative).
    """
    value = float(psi)
    if math.isnan(value) or value < 0:
        raise ValueError(f"PSI must be a number >= 0, got {psi!r}")
    if value >= PSI_MAJOR:
        return "major"
    if value >= PSI_MODERATE:
        return "moderate"
    return "stable"


def drift_summary(table: pd.DataFrame, threshold: float, top: int = 3) -> dict:
    """JSON-ready digest of a :func:`population_stability` table.

    Returns ``{"max_psi": float, "threshold": threshold, "features_over": [...], "top": [...]}``:
    ``features_over`` lists the features with ``psi >= threshold`` (largest PSI first, ties by
    name); ``top`` holds ``{"feature", "psi", "level", "top_bin"}`` for the ``top`` largest PSI.
    PSI values are rounded to 4 decimals (``level`` and ``features_over`` use the unrounded
    value). An empty table gives ``max_psi`` 0.0 and empty lists.

    Raises ``ValueError`` if a needed column is absent, ``threshold`` is not finite or ``top``
    is negative.
    """
    needed = ["feature", "psi", "top_bin"]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise ValueError(f"drift table lacks column(s): {', '.join(absent)}")
    if not math.isfinite(float(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 0:
        raise ValueError(f"top must be an integer >= 0, got {top!r}")

    ordered = table.sort_values(["psi", "feature"], ascending=[False, True], kind="mergesort")
    psi = ordered["psi"].astype(float)
    over = ordered.loc[psi >= float(threshold), "feature"]
    return {
        "max_psi": round(float(psi.max()), 4) if len(ordered) else 0.0,
        "threshold": threshold,
        "features_over": [str(f) for f in over],
        "top": [
            {
                "feature": str(row.feature),
                "psi": round(float(row.psi), 4),
                "level": psi_level(float(row.psi)),
                "top_bin": str(row.top_bin),
            }
            for row in ordered.head(int(top)).itertuples(index=False)
        ],
    }
