"""A damaged model folder is a ModelError (exit 4) naming the file, never a native abort.

LightGBM aborts the whole process (SIGABRT from a C++ exception inside OpenMP, SIGSEGV,
endless loops) on many damaged booster.txt files, so every corruption here is one that
was seen to abort, crash or silently load before ``ChurnModel.load`` verified the folder.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churnguard import modeling
from churnguard.errors import EXIT_MODEL, ModelError
from churnguard.features import MODEL_FEATURES, SNAPSHOTS_FILE
from churnguard.modeling import (
    BOOSTER_FILE,
    CALIBRATOR_FILE,
    FEATURES_FILE,
    METADATA_FILE,
    Calibrator,
    ChurnModel,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_dir(pipeline, tmp_path: Path) -> Path:
    """A private copy of the session's trained model folder, safe to damage."""
    folder = tmp_path / "model"
    shutil.copytree(pipeline.train.model_dir, folder, ignore=shutil.ignore_patterns("eval"))
    return folder


@pytest.fixture
def snaps(pipeline) -> pd.DataFrame:
    return pd.read_parquet(Path(pipeline.features.output_dir) / SNAPSHOTS_FILE).head(40)


def refused(folder: Path, name: str) -> ModelError:
    """Load ``folder``; assert a ModelError (exit 4) that names ``folder/name``."""
    with pytest.raises(ModelError) as err:
        ChurnModel.load(folder)
    assert err.value.exit_code == EXIT_MODEL == 4
    assert str(folder / name) in str(err.value), str(err.value)
    return err.value


def _lines(text: str, prefix: str) -> list[int]:
    return [i for i, line in enumerate(text.split("\n")) if line.startswith(prefix)]


def _edit_line(
    prefix: str, edit: Callable[[str], str | None], nth: int = 3
) -> Callable[[str], str]:
    """Edit (or delete, when ``edit`` returns None) the ``nth`` line starting with ``prefix``."""

    def apply(text: str) -> str:
        lines = text.split("\n")
        i = _lines(text, prefix)[nth]
        new = edit(lines[i])
        lines[i : i + 1] = [] if new is None else [new]
        return "\n".join(lines)

    return apply


def _token(i: int, value: str) -> Callable[[str], str]:
    def edit(line: str) -> str:
        key, values = line.split("=", 1)
        tokens = values.split(" ")
        tokens[i] = value
        return f"{key}={' '.join(tokens)}"

    return edit


def _resized(change: Callable[[str], str]) -> Callable[[str], str]:
    """Apply ``change``, then rewrite tree_sizes to match: corrupt, yet structurally complete."""

    def apply(text: str) -> str:
        text = change(text)
        start, end = text.index("\nTree=0\n") + 1, text.index("end of trees\n")
        blocks = [b for b in re.split(r"(?m)^(?=Tree=)", text[start:end]) if b]
        sizes = " ".join(str(len(b.encode())) for b in blocks)
        return re.sub(r"(?m)^tree_sizes=.*$", f"tree_sizes={sizes}", text, count=1)

    return apply


def _truncate_at(where: Callable[[str], int]) -> Callable[[str], str]:
    return lambda text: text[: where(text)]


def _tree_part(fraction: float) -> Callable[[str], int]:
    return lambda t: int(
        t.index("\nTree=0\n") + fraction * (t.index("end of trees") - t.index("\nTree=0\n"))
    )


TRUNCATIONS: dict[str, Callable[[str], str]] = {
    "mid-header": _truncate_at(lambda t: t.index("feature_names=") + 40),
    "after the header": _truncate_at(lambda t: t.index("\nTree=0\n") + 1),
    "inside the first tree": _truncate_at(lambda t: t.index("\nTree=0\n") + 200),
    "mid-trees (1/2)": _truncate_at(_tree_part(0.5)),
    "mid-trees (3/4)": _truncate_at(_tree_part(0.75)),
    "inside the last tree": _truncate_at(lambda t: t.index("end of trees") - 30),
    "before end of trees": _truncate_at(lambda t: t.index("end of trees")),
    "in feature importances": _truncate_at(lambda t: t.index("end of trees") + 60),
    "mid-parameters": _truncate_at(lambda t: t.index("parameters:") + 300),
    "last parameter line": _truncate_at(lambda t: t.index("end of parameters") - 10),
    "pandas_categorical line": _truncate_at(lambda t: t.rindex("pandas_categorical:") + 20),
}

CORRUPTIONS: dict[str, Callable[[str], str]] = {
    "deleted tree line": _edit_line("threshold=", lambda line: None),
    "deleted tree line, sizes fixed": _resized(_edit_line("leaf_value=", lambda line: None)),
    "deleted optional line, sizes fixed": _resized(
        _edit_line("internal_value=", lambda line: None)
    ),
    "deleted header line": _edit_line("feature_infos=", lambda line: None, nth=0),
    "garbage number": _edit_line("threshold=", _token(2, "abc")),
    "garbage number, sizes fixed": _resized(_edit_line("threshold=", _token(2, "abc"))),
    "NaN leaf value, sizes fixed": _resized(_edit_line("leaf_value=", _token(1, "nan"))),
    "split on a feature that does not exist": _resized(
        _edit_line("split_feature=", _token(0, "999"))
    ),
    "child index out of range": _resized(_edit_line("left_child=", _token(0, "999"))),
    "child cycle (endless loop)": _resized(_edit_line("right_child=", _token(0, "0"))),
    "categorical decision type": _edit_line("decision_type=", _token(0, "1")),
    "num_leaves off by one": _edit_line("num_leaves=", lambda line: "num_leaves=16"),
    "blank line inside a tree": _resized(_edit_line("threshold=", lambda line: line + "\n")),
    "wrong tree_sizes": _edit_line("tree_sizes=", _token(0, "1000"), nth=0),
    "tree_sizes past the end": _edit_line("tree_sizes=", _token(0, "99999999"), nth=0),
    "num_tree_per_iteration=0 (SIGFPE)": _edit_line(
        "num_tree_per_iteration=", lambda line: "num_tree_per_iteration=0", nth=0
    ),
    "parameter line without colon (SIGSEGV)": lambda t: t.replace(
        "[max_bin: 255]", "[max_bin 255]", 1
    ),
    "Windows line endings": lambda t: t.replace("\n", "\r\n"),
    "empty file": lambda t: "",
    "JSON instead of a booster": lambda t: '{"trees": []}',
}


@pytest.mark.parametrize("corrupt", list(TRUNCATIONS.values()), ids=list(TRUNCATIONS))
def test_truncated_booster_is_a_model_error(model_dir, corrupt):
    path = model_dir / BOOSTER_FILE
    path.write_text(corrupt(path.read_text(encoding="utf-8")), encoding="utf-8")
    assert "not a valid LightGBM model" in str(refused(model_dir, BOOSTER_FILE))


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_corrupted_booster_is_a_model_error(model_dir, corrupt):
    path = model_dir / BOOSTER_FILE
    path.write_text(corrupt(path.read_text(encoding="utf-8")), encoding="utf-8")
    message = str(refused(model_dir, BOOSTER_FILE))
    assert "retrain" in message and "--model" in message


def test_binary_junk_booster_is_a_model_error(model_dir):
    (model_dir / BOOSTER_FILE).write_bytes(bytes(range(256)) * 64)
    refused(model_dir, BOOSTER_FILE)


@pytest.mark.parametrize(
    "corrupt",
    [_truncate_at(_tree_part(0.5)), _resized(_edit_line("leaf_value=", lambda line: None))],
    ids=["truncated mid-tree", "deleted leaf_value, sizes fixed"],
)
def test_the_child_process_alone_survives_a_native_abort(model_dir, corrupt, monkeypatch):
    """With the Python check off, LightGBM aborts — in the child, which becomes a ModelError."""
    monkeypatch.setattr(modeling, "_check_booster_text", lambda data, path: None)
    path = model_dir / BOOSTER_FILE
    path.write_text(corrupt(path.read_text(encoding="utf-8")), encoding="utf-8")
    message = str(refused(model_dir, BOOSTER_FILE))
    assert "checking child process" in message and re.search(r"SIGABRT|SIGSEGV", message)


def test_a_verified_booster_is_not_checked_again(model_dir, monkeypatch):
    monkeypatch.setattr(modeling, "_VERIFIED_BOOSTERS", set())
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args, **kwargs):
        runs.append(args)
        return real_run(args, **kwargs)

    monkeypatch.setattr(modeling.subprocess, "run", counting_run)
    first = ChurnModel.load(model_dir)
    second = ChurnModel.load(model_dir)
    assert len(runs) == 1 and runs[0][0] == sys.executable
    assert first.features == second.features == list(MODEL_FEATURES)
    assert first.folder == model_dir


def _json_edit(name: str, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_text(
            json.dumps(edit(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8"
        )

    return apply


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text, encoding="utf-8")


def _swap_first_two(d: dict) -> dict:
    d["features"][0], d["features"][1] = d["features"][1], d["features"][0]
    return d


# a valid isotonic calibrator, damaged below (training may have chosen a sigmoid)
ISOTONIC = {"kind": "isotonic", "x": [0.1, 0.4, 0.8], "y": [0.05, 0.3, 0.9], "a": 1.0, "b": 0.0}
JSON_DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "calibrator: bad JSON": (
        CALIBRATOR_FILE,
        _write(CALIBRATOR_FILE, '{"kind": "isotonic", "x": [0.1,'),
    ),
    "features: bad JSON": (FEATURES_FILE, _write(FEATURES_FILE, "{features: oops}")),
    "metadata: bad JSON": (METADATA_FILE, _write(METADATA_FILE, "")),
    "calibrator: a list": (CALIBRATOR_FILE, _write(CALIBRATOR_FILE, "[1, 2]")),
    "calibrator: unknown kind": (
        CALIBRATOR_FILE,
        _json_edit(CALIBRATOR_FILE, lambda d: {**d, "kind": "platt"}),
    ),
    "calibrator: no kind": (CALIBRATOR_FILE, _json_edit(CALIBRATOR_FILE, lambda d: {"x": d["x"]})),
    "calibrator: NaN in isotonic": (
        CALIBRATOR_FILE,
        _json_edit(
            CALIBRATOR_FILE, lambda _: {**ISOTONIC, "y": [float("nan"), *ISOTONIC["y"][1:]]}
        ),
    ),
    "calibrator: x and y lengths differ": (
        CALIBRATOR_FILE,
        _json_edit(CALIBRATOR_FILE, lambda _: {**ISOTONIC, "y": ISOTONIC["y"][:-1]}),
    ),
    "calibrator: x decreasing": (
        CALIBRATOR_FILE,
        _json_edit(CALIBRATOR_FILE, lambda _: {**ISOTONIC, "x": ISOTONIC["x"][::-1]}),
    ),
    "calibrator: y above 1": (
        CALIBRATOR_FILE,
        _json_edit(CALIBRATOR_FILE, lambda _: {**ISOTONIC, "y": [*ISOTONIC["y"][:-1], 1.5]}),
    ),
    "calibrator: empty isotonic": (
        CALIBRATOR_FILE,
        _json_edit(CALIBRATOR_FILE, lambda _: {**ISOTONIC, "x": [], "y": []}),
    ),
    "calibrator: sigmoid a is text": (
        CALIBRATOR_FILE,
        _write(CALIBRATOR_FILE, '{"kind": "sigmoid", "a": "1.2", "b": 0.1}'),
    ),
    "features: not a list": (
        FEATURES_FILE,
        _json_edit(FEATURES_FILE, lambda d: {**d, "features": "recency_days"}),
    ),
    "features: empty": (
        FEATURES_FILE,
        _json_edit(FEATURES_FILE, lambda d: {"features": [], "dtypes": {}}),
    ),
    "features: no dtypes": (
        FEATURES_FILE,
        _json_edit(FEATURES_FILE, lambda d: {"features": d["features"]}),
    ),
    "features: text dtype": (
        FEATURES_FILE,
        _json_edit(
            FEATURES_FILE, lambda d: {**d, "dtypes": {**d["dtypes"], d["features"][0]: "object"}}
        ),
    ),
    "features: order differs from booster": (
        FEATURES_FILE,
        _json_edit(FEATURES_FILE, _swap_first_two),
    ),
    "features: one renamed": (
        FEATURES_FILE,
        _json_edit(
            FEATURES_FILE,
            lambda d: {
                "features": ["recency", *d["features"][1:]],
                "dtypes": {"recency": "float64", **{f: "float64" for f in d["features"][1:]}},
            },
        ),
    ),
    "features: one dropped": (
        FEATURES_FILE,
        _json_edit(
            FEATURES_FILE,
            lambda d: {
                "features": d["features"][:-1],
                "dtypes": {f: "float64" for f in d["features"][:-1]},
            },
        ),
    ),
    "metadata: a list": (METADATA_FILE, _write(METADATA_FILE, "[]")),
    "metadata: horizon is text": (
        METADATA_FILE,
        _json_edit(METADATA_FILE, lambda d: {**d, "horizon_days": "90"}),
    ),
}


@pytest.mark.parametrize("case", list(JSON_DAMAGE.values()), ids=list(JSON_DAMAGE))
def test_damaged_json_is_a_model_error(model_dir, case):
    name, damage = case
    damage(model_dir)
    refused(model_dir, name)


@pytest.mark.parametrize("name", [BOOSTER_FILE, CALIBRATOR_FILE, FEATURES_FILE])
def test_missing_file_is_a_model_error(model_dir, name):
    (model_dir / name).unlink()
    with pytest.raises(ModelError, match="not a churnguard model folder") as err:
        ChurnModel.load(model_dir)
    assert err.value.exit_code == 4 and name in str(err.value) and str(model_dir) in str(err.value)


def test_unknown_calibrator_kind_is_refused_not_identity():
    with pytest.raises(ModelError, match="unknown calibrator kind 'platt'"):
        Calibrator("platt").predict(np.array([0.2, 0.7]))
    np.testing.assert_allclose(Calibrator("identity").predict(np.array([0.2, 1.7])), [0.2, 1.0])


def test_text_and_category_feature_columns_are_refused(model_dir, snaps):
    model = ChurnModel.load(model_dir)
    text = snaps.assign(
        recency_days=snaps["recency_days"].astype(str), orders=snaps["orders"].astype("category")
    )
    with pytest.raises(ModelError) as err:
        model.predict(text)
    message = str(err.value)
    assert err.value.exit_code == 4 and str(model_dir / FEATURES_FILE) in message
    assert "recency_days is str" in message or "recency_days is object" in message
    assert "orders is category" in message
    with pytest.raises(ModelError, match="recency_days"):
        model.contributions(text)


def test_int_float_and_nullable_feature_columns_score_alike(model_dir, snaps):
    model = ChurnModel.load(model_dir)
    expected = model.predict(snaps)
    as_float = snaps.astype({f: "float64" for f in MODEL_FEATURES})
    nullable = snaps.astype({"orders": "Int64", "one_time_buyer": "Float64"})
    np.testing.assert_array_equal(model.predict(as_float), expected)
    np.testing.assert_array_equal(model.predict(nullable), expected)
    with_na = nullable.copy()
    with_na.loc[with_na.index[0], "orders"] = pd.NA
    assert np.isnan(model.matrix(with_na)[0, list(MODEL_FEATURES).index("orders")])
    assert np.isfinite(model.predict(with_na)).all()


def test_a_number_where_a_bool_was_trained_is_refused(model_dir, snaps):
    model = ChurnModel.load(model_dir)
    as_bool = dataclasses.replace(model, dtypes={**model.dtypes, "one_time_buyer": "bool"})
    with pytest.raises(ModelError, match="one_time_buyer is"):
        as_bool.check_features(snaps)
    as_bool.check_features(snaps.astype({"one_time_buyer": "bool"}))
    model.check_features(snaps.astype({"one_time_buyer": "bool"}))  # a bool reads as 0/1


def test_horizon_must_match_training(model_dir):
    model = ChurnModel.load(model_dir)
    model.check_horizon(90)
    with pytest.raises(ModelError) as err:
        model.check_horizon(5000)
    assert err.value.exit_code == 4
    assert str(model_dir / METADATA_FILE) in str(err.value)
    assert (
        "model trained for a 90-day horizon, features.horizon_days is 5000: "
        "set features.horizon_days: 90 in params.yaml or retrain"
    ) in str(err.value)


def test_a_model_without_a_recorded_horizon_is_refused(model_dir):
    (model_dir / METADATA_FILE).unlink()
    model = ChurnModel.load(model_dir)  # loads: metadata.json is optional for loading...
    with pytest.raises(ModelError, match="horizon_days") as err:
        model.check_horizon(90)  # ...but scoring needs the horizon
    assert str(model_dir / METADATA_FILE) in str(err.value)


def test_cli_score_with_a_truncated_booster_exits_4_not_134(model_dir, pipeline, tmp_path):
    path = model_dir / BOOSTER_FILE
    path.write_text(
        TRUNCATIONS["mid-trees (1/2)"](path.read_text(encoding="utf-8")), encoding="utf-8"
    )
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["engine"]["temp_directory"] = str(tmp_path / "duck")
    data["features"].update(
        input=str(pipeline.transactions), output_dir=pipeline.features.output_dir
    )
    data["score"].update(
        transactions=str(pipeline.transactions), output_root=str(tmp_path / "scores")
    )
    data["outcomes"]["ledger"] = str(tmp_path / "ledger")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "churnguard",
            "score",
            "--params",
            str(params),
            "--model",
            str(model_dir),
            "--as-of",
            "2024-12-31",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 4, (result.returncode, result.stderr[-2000:])
    assert str(path) in result.stderr and "retrain" in result.stderr
    assert "Traceback" not in result.stderr
