"""Population stability index: profiles, hand-computed PSI, missing values and the summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from churnguard import drift as D


def _profile(edges: list[float], shares: list[float], missing: float = 0.0) -> dict:
    """A one-feature profile ``x`` built by hand."""
    rows = 100
    return {
        "bins": len(shares),
        "rows": rows,
        "features": {"x": {"edges": edges, "shares": shares, "missing_share": missing}},
    }


def _normal_frame(seed: int, loc: float = 0.0, n: int = 5_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(loc, 1.0, n)})


# --- hand-computed PSI -------------------------------------------------------------------------


def test_two_bins_fifty_fifty_against_eighty_twenty_matches_the_formula() -> None:
    profile = _profile([0.0], [0.5, 0.5])
    current = pd.DataFrame({"x": [-1.0] * 8 + [1.0] * 2})
    table = D.population_stability(profile, current)
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert expected == pytest.approx(0.3 * math.log(4.0))
    assert table.loc[0, "psi"] == pytest.approx(expected, rel=1e-12)
    assert table.loc[0, "top_bin"] == "(-inf, 0] : 50% → 80%"


def test_bins_are_closed_on_the_right_in_both_functions() -> None:
    # A value equal to an edge belongs to the bin that edge closes: (-inf, 0] here.
    profile = _profile([0.0], [0.5, 0.5])
    on_edge = pd.DataFrame({"x": [0.0] * 8 + [1.0] * 2})
    below = pd.DataFrame({"x": [-1.0] * 8 + [1.0] * 2})
    psi_on_edge = D.population_stability(profile, on_edge).loc[0, "psi"]
    assert psi_on_edge == D.population_stability(profile, below).loc[0, "psi"]

    built = D.reference_profile(pd.DataFrame({"x": [1.0, 2.0, 2.0, 3.0]}), ["x"], bins=2)
    entry = built["features"]["x"]
    assert entry["edges"] == [2.0]
    assert entry["shares"] == [0.75, 0.25]  # 1, 2, 2 in (-inf, 2]; 3 in (2, +inf)


def test_top_bin_names_the_interior_bin_that_moved_most() -> None:
    profile = _profile([12.5, 30.0], [0.5, 0.08, 0.42])
    current = pd.DataFrame({"x": [0.0] * 30 + [20.0] * 31 + [40.0] * 39})
    row = D.population_stability(profile, current).iloc[0]
    assert row["top_bin"] == "(12.5, 30] : 8% → 31%"
    expected = sum((c - r) * math.log(c / r) for r, c in [(0.5, 0.30), (0.08, 0.31), (0.42, 0.39)])
    assert row["psi"] == pytest.approx(expected, rel=1e-12)


def test_empty_bins_are_floored_at_epsilon() -> None:
    # Reference has no row above 10; 10% of the current rows are there.
    profile = _profile([10.0], [1.0, 0.0])
    current = pd.DataFrame({"x": [1.0] * 9 + [11.0]})
    eps = 1e-4
    expected = (0.9 - 1.0) * math.log(0.9 / 1.0) + (0.1 - eps) * math.log(0.1 / eps)
    table = D.population_stability(profile, current, epsilon=eps)
    assert table.loc[0, "psi"] == pytest.approx(expected, rel=1e-12)
    # A larger floor shrinks the penalty for the empty reference bin.
    assert D.population_stability(profile, current, epsilon=1e-2).loc[0, "psi"] < expected
    assert table.loc[0, "top_bin"] == "(-inf, 10] : 100% → 90%"  # ties go to the lowest bin


# --- reference profile -------------------------------------------------------------------------


def test_identical_sample_gives_zero_psi_and_same_distribution_a_small_one() -> None:
    reference = _normal_frame(1)
    profile = D.reference_profile(reference, ["x"])
    same = D.population_stability(profile, reference)
    assert same.loc[0, "psi"] < 1e-9
    assert same.loc[0, "top_bin"] == ""
    fresh = D.population_stability(profile, _normal_frame(2))
    assert fresh.loc[0, "psi"] < D.PSI_MODERATE


def test_larger_shift_gives_larger_psi() -> None:
    profile = D.reference_profile(_normal_frame(1), ["x"])
    slight = D.population_stability(profile, _normal_frame(2, loc=0.1)).loc[0, "psi"]
    large = D.population_stability(profile, _normal_frame(3, loc=1.0)).loc[0, "psi"]
    assert 0 < slight < large
    assert D.psi_level(slight) == "stable"
    assert D.psi_level(large) == "major"


def test_profile_has_quantile_edges_and_shares_that_sum_to_one() -> None:
    profile = D.reference_profile(_normal_frame(1), ["x"], bins=10)
    assert profile["bins"] == 10
    assert profile["rows"] == 5_000
    entry = profile["features"]["x"]
    assert len(entry["edges"]) == 9
    assert entry["edges"] == sorted(entry["edges"])
    assert len(entry["shares"]) == 10
    assert all(s == pytest.approx(0.1, abs=0.002) for s in entry["shares"])
    assert sum(entry["shares"]) + entry["missing_share"] == pytest.approx(1.0)
    # Edges are plain floats with at most 10 significant digits.
    assert all(type(e) is float and float(f"{e:.10g}") == e for e in entry["edges"])


def test_constant_feature_gets_one_bin_and_only_drifts_through_missing_values() -> None:
    profile = D.reference_profile(pd.DataFrame({"x": [3.0] * 50}), ["x"])
    assert profile["features"]["x"] == {"edges": [], "shares": [1.0], "missing_share": 0.0}
    assert D.population_stability(profile, pd.DataFrame({"x": [3.0] * 7})).loc[0, "psi"] == 0
    # With a single bin, a different constant is not a shift in the value bins...
    assert D.population_stability(profile, pd.DataFrame({"x": [9.0] * 7})).loc[0, "psi"] == 0
    # ...but missing values are.
    row = D.population_stability(profile, pd.DataFrame({"x": [3.0] * 8 + [np.nan] * 2})).iloc[0]
    assert row["psi"] > D.PSI_MAJOR
    assert row["current_missing_share"] == pytest.approx(0.2)
    assert row["top_bin"] == "missing : 0% → 20%"


def test_ties_never_leave_a_reference_bin_empty() -> None:
    binary = pd.DataFrame({"x": [0] * 30 + [1] * 70})
    entry = D.reference_profile(binary, ["x"])["features"]["x"]
    assert entry == {"edges": [0.0], "shares": [0.3, 0.7], "missing_share": 0.0}

    zero_inflated = pd.DataFrame({"x": [0.0] * 60 + list(np.arange(1.0, 41.0))})
    entry = D.reference_profile(zero_inflated, ["x"], bins=5)["features"]["x"]
    assert entry["edges"][0] == 0.0
    assert entry["shares"][0] == pytest.approx(0.6)
    assert all(s > 0 for s in entry["shares"])


def test_nan_none_and_infinities_count_as_missing() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.nan, None, np.inf, -np.inf]})
    entry = D.reference_profile(frame, ["x"], bins=2)["features"]["x"]
    assert entry["missing_share"] == pytest.approx(0.5)
    assert entry["edges"] == [2.0]
    assert entry["shares"] == [0.25, 0.25]
    nullable = pd.DataFrame({"x": pd.array([1, 2, 3, 4, None, None, None, None], dtype="Int64")})
    assert D.reference_profile(nullable, ["x"], bins=2)["features"]["x"] == entry

    profile = D.reference_profile(frame, ["x"], bins=2)
    table = D.population_stability(profile, frame)
    assert table.loc[0, "psi"] == 0
    assert table.loc[0, "reference_missing_share"] == pytest.approx(0.5)
    assert table.loc[0, "current_missing_share"] == pytest.approx(0.5)


def test_all_missing_reference_feature_flags_any_values() -> None:
    profile = D.reference_profile(pd.DataFrame({"x": [np.nan, np.inf, None]}), ["x"])
    assert profile["features"]["x"] == {"edges": [], "shares": [0.0], "missing_share": 1.0}
    table = D.population_stability(profile, pd.DataFrame({"x": [1.0, 2.0]}))
    assert table.loc[0, "psi"] > D.PSI_MAJOR
    assert table.loc[0, "top_bin"] == "missing : 100% → 0%"


def test_missing_values_appearing_in_the_scoring_data_raise_psi() -> None:
    reference = _normal_frame(1)
    profile = D.reference_profile(reference, ["x"])
    current = _normal_frame(2)
    baseline = D.population_stability(profile, current).iloc[0]
    holes = current.copy()
    holes.loc[: len(holes) // 5 - 1, "x"] = np.nan  # 20% missing
    with_holes = D.population_stability(profile, holes).iloc[0]
    assert baseline["current_missing_share"] == 0
    assert with_holes["reference_missing_share"] == 0
    assert with_holes["current_missing_share"] == pytest.approx(0.2)
    assert with_holes["psi"] > baseline["psi"] + D.PSI_MAJOR
    assert with_holes["top_bin"] == "missing : 0% → 20%"


def test_profile_json_round_trip_gives_the_same_table() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, 2_000) / 3.0,
            "visits": rng.poisson(2.0, 2_000),
            "flag": rng.integers(0, 2, 2_000),
        }
    )
    reference.loc[::17, "amount"] = np.nan
    current = reference.sample(frac=0.5, random_state=3).assign(amount=lambda f: f.amount * 1.3)
    profile = D.reference_profile(reference, ["visits", "amount", "flag"])
    text = json.dumps(profile, allow_nan=False)
    assert json.dumps(json.loads(text), allow_nan=False) == text
    pd.testing.assert_frame_equal(
        D.population_stability(json.loads(text), current),
        D.population_stability(profile, current),
    )


def test_profile_is_deterministic_sorted_and_independent_of_row_and_feature_order() -> None:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"b": rng.normal(size=500), "a": rng.exponential(size=500)})
    first = D.reference_profile(frame, ["b", "a"])
    second = D.reference_profile(frame, ["b", "a"])
    assert first == second
    assert json.dumps(first) == json.dumps(second)
    assert list(first["features"]) == ["a", "b"]
    shuffled = frame.sample(frac=1.0, random_state=5)[["a", "b"]]
    assert json.dumps(D.reference_profile(shuffled, ["a", "b"])) == json.dumps(first)


def test_table_is_sorted_by_psi_then_feature_and_ignores_extra_columns() -> None:
    reference = pd.DataFrame({"z": [1.0, 2.0] * 50, "a": [1.0, 2.0] * 50, "m": [1.0, 2.0] * 50})
    profile = D.reference_profile(reference, ["z", "a", "m"], bins=2)
    current = pd.DataFrame(
        {"z": [1.0] * 100, "a": [1.0, 2.0] * 50, "m": [1.0, 2.0] * 50, "extra": ["x"] * 100}
    )
    table = D.population_stability(profile, current)
    assert list(table.columns) == [
        "feature",
        "psi",
        "reference_missing_share",
        "current_missing_share",
        "top_bin",
    ]
    assert list(table["feature"]) == ["z", "a", "m"]
    assert table.loc[0, "psi"] > 0
    assert list(table["psi"])[1:] == [0.0, 0.0]


# --- errors ------------------------------------------------------------------------------------


def test_feature_missing_from_the_scoring_frame_is_named() -> None:
    profile = D.reference_profile(
        pd.DataFrame({"x": [1.0, 2.0], "tenure": [3, 4]}), ["x", "tenure"]
    )
    with pytest.raises(ValueError, match="'tenure'"):
        D.population_stability(profile, pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match="'recency'"):
        D.reference_profile(pd.DataFrame({"x": [1.0]}), ["x", "recency"])


def test_empty_frames_and_bad_arguments_are_rejected() -> None:
    profile = _profile([0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="empty"):
        D.population_stability(profile, pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(ValueError, match="empty"):
        D.reference_profile(pd.DataFrame({"x": pd.Series([], dtype=float)}), ["x"])
    with pytest.raises(ValueError, match="bins"):
        D.reference_profile(pd.DataFrame({"x": [1.0]}), ["x"], bins=0)
    with pytest.raises(ValueError, match="epsilon"):
        D.population_stability(profile, pd.DataFrame({"x": [1.0]}), epsilon=0.0)
    with pytest.raises(ValueError, match="not numeric"):
        D.reference_profile(pd.DataFrame({"x": ["1", "two"]}), ["x"])
    with pytest.raises(ValueError, match="shares"):
        D.population_stability(_profile([0.0], [1.0]), pd.DataFrame({"x": [1.0]}))


# --- levels and summary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("psi", "level"),
    [
        (0.0, "stable"),
        (0.0999, "stable"),
        (D.PSI_MODERATE, "moderate"),
        (0.2499, "moderate"),
        (D.PSI_MAJOR, "major"),
        (3.0, "major"),
    ],
)
def test_psi_level_thresholds(psi: float, level: str) -> None:
    assert D.psi_level(psi) == level


def test_psi_level_rejects_nan_and_negative_values() -> None:
    for bad in (math.nan, -0.1):
        with pytest.raises(ValueError):
            D.psi_level(bad)


def test_drift_summary_orders_rounds_and_lists_features_over_the_threshold() -> None:
    table = pd.DataFrame(
        {
            "feature": ["c", "a", "b", "d"],
            "psi": [0.05, 0.3123456, 0.2, 0.2],
            "reference_missing_share": [0.0] * 4,
            "current_missing_share": [0.0] * 4,
            "top_bin": ["c-bin", "a-bin", "b-bin", "d-bin"],
        }
    )
    summary = D.drift_summary(table, threshold=0.2, top=3)
    assert summary == {
        "max_psi": 0.3123,
        "threshold": 0.2,
        "features_over": ["a", "b", "d"],  # psi >= threshold, ties by name
        "top": [
            {"feature": "a", "psi": 0.3123, "level": "major", "top_bin": "a-bin"},
            {"feature": "b", "psi": 0.2, "level": "moderate", "top_bin": "b-bin"},
            {"feature": "d", "psi": 0.2, "level": "moderate", "top_bin": "d-bin"},
        ],
    }
    assert json.loads(json.dumps(summary)) == summary
    assert D.drift_summary(table, threshold=0.5, top=1)["features_over"] == []
    assert [t["feature"] for t in D.drift_summary(table, 0.2, top=10)["top"]] == list("abdc")


def test_drift_summary_of_a_real_table_and_of_an_empty_one() -> None:
    profile = D.reference_profile(_normal_frame(1).assign(y=lambda f: f.x * 2), ["x", "y"])
    current = _normal_frame(3, loc=1.0).assign(y=_normal_frame(4)["x"] * 2)
    summary = D.drift_summary(D.population_stability(profile, current), threshold=D.PSI_MAJOR)
    assert summary["features_over"] == ["x"]
    assert [t["feature"] for t in summary["top"]] == ["x", "y"]
    assert summary["top"][0]["level"] == "major"
    assert summary["max_psi"] == summary["top"][0]["psi"]

    empty = D.population_stability(
        {"bins": 10, "rows": 1, "features": {}}, pd.DataFrame({"x": [1]})
    )
    assert D.drift_summary(empty, threshold=0.1) == {
        "max_psi": 0.0,
        "threshold": 0.1,
        "features_over": [],
        "top": [],
    }
