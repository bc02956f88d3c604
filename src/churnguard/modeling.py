"""The churn model as files: LightGBM booster + probability calibrator + feature list.

``models/`` holds ``booster.txt`` (LightGBM text format), ``calibrator.json``,
``features.json`` (names and dtypes, checked at scoring time) and ``metadata.json``
(which also holds the Pareto/NBD stack of a ``train.stack_btyd`` model,
:class:`churnguard.calibration.BtydStack`).
No pickles: every file is text, diffable and byte-stable for the same training data.
The calibrator and the scorer interface in memory are :mod:`churnguard.calibration` and
:mod:`churnguard.predictors`; this module writes, reads and verifies the files.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnguard.calibration import BtydStack, Calibrator
from churnguard.errors import ModelError
from churnguard.horizon import chain_no_purchase, chain_steps
from churnguard.io import dumps_json, write_text_atomic
from churnguard.predictors import (
    FEATURES_FILE,
    METADATA_FILE,
    FeatureScorer,
    _broken,
    _calibrator_from_json,
    _dtype_class,
    _is_number,
)
from churnguard.timing import timed

BOOSTER_FILE = "booster.txt"
CALIBRATOR_FILE = "calibrator.json"
BOOSTER_CHECK_TIMEOUT_S = 60.0


# --- verifying a model folder before use -------------------------------------------------
# LightGBM trusts its model text: a truncated or edited booster.txt makes it read past the
# buffer, throw inside an OpenMP loop (std::terminate → SIGABRT, exit 134) or follow a bad
# child index at predict time (SIGSEGV, endless loop). So booster.txt is checked in Python,
# then parsed and used once in a child process, and only then loaded in-process.

_INT = re.compile(r"-?\d+")
_COUNT = re.compile(r"\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_THRESHOLD = re.compile(rf"{_FLOAT.pattern}|[+-]?inf")
_PARAM_LINE = re.compile(r"\[[A-Za-z0-9_]+: [^\n]*\]")
# tree field → (values beyond num_leaves - 1: 0 per split, 1 per leaf; pattern of one value)
_TREE_ARRAYS: dict[str, tuple[int, re.Pattern[str]]] = {
    "split_feature": (0, _INT),
    "split_gain": (0, _FLOAT),
    "threshold": (0, _THRESHOLD),
    "decision_type": (0, _INT),
    "left_child": (0, _INT),
    "right_child": (0, _INT),
    "internal_value": (0, _FLOAT),
    "internal_weight": (0, _FLOAT),
    "internal_count": (0, _COUNT),
    "leaf_value": (1, _FLOAT),
    "leaf_weight": (1, _FLOAT),
    "leaf_count": (1, _COUNT),
}
_TREE_KEYS = frozenset({*_TREE_ARRAYS, "num_leaves", "num_cat", "is_linear", "shrinkage"})
_DECISION_TYPES = frozenset(
    {0, 2, 4, 6, 8, 10}
)  # numerical split; default-left bit; missing none/zero/NaN
_VERIFIED_BOOSTERS: set[str] = set()  # sha256 of booster texts already verified in this process

# Runs in a child with ctypes only (no `import lightgbm`, which costs ~1.4 s): load, read the
# parameters, predict and explain probe rows — the calls scoring makes in-process.
_NATIVE_CHECK = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
lib.LGBM_GetLastError.restype = ctypes.c_char_p
def ok(rc, what):
    if rc != 0:
        sys.stderr.write("LightGBM error (%s): %s\n" % (what, lib.LGBM_GetLastError().decode("utf-8", "replace")))
        sys.exit(3)
h, n_iter, n_class, n_feat, size = ctypes.c_void_p(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int64()
ok(lib.LGBM_BoosterLoadModelFromString(ctypes.c_char_p(sys.stdin.buffer.read()), ctypes.byref(n_iter), ctypes.byref(h)), "load")
ok(lib.LGBM_BoosterGetNumClasses(h, ctypes.byref(n_class)), "num_class")
buf = ctypes.create_string_buffer(1 << 20)
ok(lib.LGBM_BoosterGetLoadedParam(h, ctypes.c_int64(1 << 20), ctypes.byref(size), buf), "parameters")
if size.value > 1 << 20:
    buf = ctypes.create_string_buffer(size.value)
    ok(lib.LGBM_BoosterGetLoadedParam(h, size, ctypes.byref(size), buf), "parameters")
json.loads(buf.value.decode("utf-8"))
ok(lib.LGBM_BoosterGetNumFeature(h, ctypes.byref(n_feat)), "num_feature")
probes = [0.0, float("nan"), 1.0, -1.0, 1e30, -1e30]
nf = n_feat.value
data = (ctypes.c_double * (len(probes) * nf))(*[v for v in probes for _ in range(nf)])
out = (ctypes.c_double * (len(probes) * (nf + 1) * max(n_class.value, 1)))()
for kind in (0, 3):  # C_API_PREDICT_NORMAL, C_API_PREDICT_CONTRIB
    ok(lib.LGBM_BoosterPredictForMat(h, data, 1, len(probes), nf, 1, kind, 0, -1, b"num_threads=1",
                                     ctypes.byref(size), out), "predict")
print("churnguard-booster-ok")
"""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _broken(path, f"cannot be read as JSON ({exc})") from None


def _features_from_json(d: Any, path: Path) -> tuple[list[str], dict[str, str]]:
    """features.json: ``{"features": [name, ...], "dtypes": {name: numeric dtype}}``."""
    feats = d.get("features") if isinstance(d, dict) else None
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) and f for f in feats):
        raise _broken(path, '"features" must be a non-empty list of column names')
    if len(set(feats)) != len(feats):
        raise _broken(path, '"features" lists a column more than once')
    dtypes = d.get("dtypes")
    if not isinstance(dtypes, dict) or set(dtypes) != set(feats):
        raise _broken(path, '"dtypes" must map every feature, and nothing else, to its dtype')
    odd = {k: v for k, v in dtypes.items() if not isinstance(v, str) or _dtype_class(v) is None}
    if odd:
        raise _broken(path, f'"dtypes" must be numeric or bool dtypes, found {odd}')
    return feats, dict(dtypes)


def _metadata_from_json(d: Any, path: Path) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise _broken(path, "must hold a JSON object")
    for key in ("horizon_days", "label_horizon_days"):
        h = d.get(key)
        if h is not None and not (isinstance(h, int) and not isinstance(h, bool) and h > 0):
            raise _broken(path, f'"{key}" is {h!r}, expected a positive whole number of days')
    if d.get("horizon_mode") not in (None, "direct", "chained"):
        raise _broken(path, f'"horizon_mode" is {d["horizon_mode"]!r}, expected direct or chained')
    if d.get("horizon_mode") == "chained":
        if d.get("label_horizon_days") is None or d.get("horizon_days") is None:
            raise _broken(path, "a chained model needs horizon_days and label_horizon_days")
        if d.get("chain_calibrator") is not None:
            _calibrator_from_json(d["chain_calibrator"], path)
    stack = d.get("stack_btyd")
    if stack is not None:
        prm = stack.get("params") if isinstance(stack, dict) else None
        numbers = [stack.get(k) for k in ("horizon_days", "a", "c", "b")] if prm else []
        if not (
            isinstance(prm, dict)
            and set(prm) == {"r", "alpha", "s", "beta"}
            and all(_is_number(v) and v > 0 for v in prm.values())
            and all(_is_number(v) for v in numbers)
        ):
            raise _broken(
                path, '"stack_btyd" must hold positive Pareto/NBD params and finite a, c, b'
            )
    return d


def is_chained(scorer: Any) -> bool:
    """Whether ``scorer`` (any kind) predicts a base horizon that scoring chains."""
    return (getattr(scorer, "metadata", None) or {}).get("horizon_mode") == "chained"


def chained_churn(scorer: Any, steps: pd.DataFrame) -> pd.Series:
    """P(churn over the target horizon) per customer id for a chained ``scorer``.

    ``steps`` holds the snapshots at as_of + k·h built from the lines up to as_of (one
    ``cutoff_date`` per step, oldest first; :func:`churnguard.horizon.chain_cutoffs`). Each
    step is scored with the base-horizon scorer, the steps are chained
    (:func:`churnguard.horizon.chain_no_purchase`) and the chained horizon's calibrator
    (``metadata.json`` → ``chain_calibrator``) maps the product, when training fitted one.
    """
    meta = scorer.metadata
    frames = [g.set_index("customer_id").sort_index() for _, g in steps.groupby("cutoff_date")]
    expected = chain_steps(meta["label_horizon_days"], meta["horizon_days"])
    if len(frames) != expected:
        raise ModelError(
            f"a chained {meta['horizon_days']}-day horizon in {meta['label_horizon_days']}-day "
            f"steps needs {expected} step snapshots, got {len(frames)}"
        )
    p = chain_no_purchase(
        [pd.Series(scorer.predict(f), index=f.index) for f in frames],
        meta["label_horizon_days"],
        meta["horizon_days"],
    )
    if meta.get("chain_calibrator"):
        cal = Calibrator.from_dict(meta["chain_calibrator"])
        p = pd.Series(cal.predict(p.to_numpy()), index=p.index)
    return p


class ChainedScores:
    """Stands in for a chained scorer inside ``scoring.score_frame``: P(churn) over the
    target horizon was chained from the step snapshots (:func:`chained_churn`); feature
    checks and reasons come from the base scorer on the as-of snapshot (the drivers of the
    first step's risk)."""

    def __init__(self, scorer: Any, p_churn: pd.Series) -> None:
        self.scorer = scorer
        self.p_churn = p_churn  # indexed by customer_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scorer, name)

    def check_features(self, frame: pd.DataFrame) -> None:
        self.scorer.check_features(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.p_churn.reindex(frame["customer_id"].to_numpy())
        if p.isna().any():
            raise ModelError(f"no chained probability for {int(p.isna().sum())} customer(s)")
        return p.to_numpy(dtype=float)

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.scorer.contributions(frame)


def _is_tree(left: list[int], right: list[int], n_leaves: int) -> bool:
    """Every internal node and leaf is reached exactly once from the root: no cycle, no bad index."""
    nodes, leaves, todo = {0}, set(), [0]
    while todo:
        node = todo.pop()
        for child in (left[node], right[node]):
            if child >= 0:
                if child >= n_leaves - 1 or child in nodes:
                    return False
                nodes.add(child)
                todo.append(child)
            elif ~child >= n_leaves or ~child in leaves:
                return False
            else:
                leaves.add(~child)
    return len(nodes) == n_leaves - 1 and len(leaves) == n_leaves


def _tree_problem(block: str, i: int, n_features: int) -> str | None:
    """What is wrong with the ``i``-th tree block (``Tree=i`` … blank lines), or None."""
    body, _, rest = block.partition("\n\n")
    lines = body.split("\n")
    if lines[0] != f"Tree={i}":
        return f"no `Tree={i}` where tree_sizes puts it, found {lines[0][:40]!r} (lines added, removed or edited)"
    if rest.strip("\n") or not block.endswith("\n\n"):
        return f"Tree={i} does not end where tree_sizes says (lines added, removed or edited)"
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if not sep or "=" in value or key not in _TREE_KEYS or key in fields:
            return f"Tree={i} has an unexpected line {line[:40]!r}"
        fields[key] = value
    if absent := sorted(
        _TREE_KEYS - set(fields)
    ):  # LightGBM v4 writes every field, even for stumps
        return f"Tree={i} lacks {', '.join(absent)}"
    n = int(fields["num_leaves"]) if _COUNT.fullmatch(fields["num_leaves"]) else 0
    if n < 1:
        return f"Tree={i} has num_leaves={fields['num_leaves'][:20]!r}"
    if fields["num_cat"] != "0" or fields["is_linear"] != "0":
        return f"Tree={i} uses categorical or linear splits, which churnguard models never do"
    # a stump (one leaf) has only leaf_value and shrinkage; LightGBM reads nothing else of it
    for key, (extra, pattern) in _TREE_ARRAYS.items() if n > 1 else [("leaf_value", (1, _FLOAT))]:
        tokens = fields[key].split(" ") if fields[key] else []
        if len(tokens) != n - 1 + extra or not all(pattern.fullmatch(t) for t in tokens):
            return f"Tree={i}: {key} must hold {n - 1 + extra} numbers for {n} leaves"
    values = [fields["shrinkage"], *fields["leaf_value"].split(" ")]
    if not _FLOAT.fullmatch(fields["shrinkage"]) or not all(
        math.isfinite(float(v)) for v in values
    ):
        return f"Tree={i} has a non-finite leaf_value or shrinkage"
    if n == 1:
        return None
    ints = {
        k: [int(t) for t in fields[k].split(" ")]
        for k in ("split_feature", "decision_type", "left_child", "right_child")
    }
    if not all(0 <= f < n_features for f in ints["split_feature"]):
        return f"Tree={i}: split_feature points outside the {n_features} features"
    if not set(ints["decision_type"]) <= _DECISION_TYPES:
        return f"Tree={i}: decision_type holds values LightGBM does not write for numeric splits"
    if not _is_tree(ints["left_child"], ints["right_child"], n):
        return f"Tree={i}: left_child/right_child do not form a tree of {n} leaves"
    return None


def _check_booster_text(data: bytes, path: Path) -> None:
    """Check LightGBM's text format in Python, so LightGBM never reads a damaged model.

    Header keys, ``tree_sizes`` (byte counts) against the actual ``Tree=N`` blocks,
    every tree's fields, counts, feature and child indices, ``end of trees``, the parameter
    lines and the ``pandas_categorical`` trailer the Python package writes last.
    """

    def bad(problem: str) -> ModelError:
        return _broken(path, f"not a valid LightGBM model: {problem}")

    if not data.strip():
        raise bad("the file is empty")
    if b"\0" in data:
        raise bad("it holds binary data (NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("it is not UTF-8 text") from None
    if "\r" in text:
        raise bad("it has CR (Windows) line endings, which break the byte counts in tree_sizes")
    first_tree = text.find("\nTree=") + 1
    if not text.startswith("tree\n"):
        raise bad("the first line is not `tree`")
    if not first_tree:
        raise bad("there is no `Tree=` block (truncated?)")
    header: dict[str, str] = {}
    for line in text[5:first_tree].split("\n"):
        key, _, value = line.partition("=")
        if line and (key in header or ("=" in value and key != "feature_names")):
            raise bad(f"malformed header line {line[:60]!r}")
        header[key] = value
    if absent := [
        k
        for k in (
            "version",
            "num_class",
            "num_tree_per_iteration",
            "label_index",
            "max_feature_idx",
            "objective",
            "feature_names",
            "feature_infos",
            "tree_sizes",
        )
        if k not in header
    ]:
        raise bad(f"the header lacks {', '.join(absent)} (truncated?)")
    if not re.fullmatch(r"v\d+", header["version"]) or not _COUNT.fullmatch(header["label_index"]):
        raise bad("the header's version or label_index is malformed")
    binary = header["objective"].startswith("binary")
    if header["num_class"] != "1" or header["num_tree_per_iteration"] != "1" or not binary:
        raise bad(
            "it is not a binary classifier (num_class=1, num_tree_per_iteration=1, objective=binary)"
        )
    if not _COUNT.fullmatch(header["max_feature_idx"]):
        raise bad("the header's max_feature_idx is not a number")
    n_features = int(header["max_feature_idx"]) + 1
    names = header["feature_names"].split(" ")
    if (
        len(names) != n_features
        or not all(names)
        or len(header["feature_infos"].split(" ")) != n_features
    ):
        raise bad(
            f"max_feature_idx says {n_features} features, feature_names/feature_infos disagree"
        )
    sizes = header["tree_sizes"].split(" ")
    if not all(re.fullmatch(r"[1-9]\d*", s) for s in sizes):
        raise bad("tree_sizes is not a list of byte counts")
    pos = len(text[:first_tree].encode("utf-8"))
    for i, size in enumerate(int(s) for s in sizes):
        block = data[pos : pos + size]
        pos += size
        if len(block) < size:
            raise bad(f"the file ends inside Tree={i} (truncated)")
        problem = _tree_problem(block.decode("utf-8", "replace"), i, n_features)
        if problem:
            raise bad(problem)
    if not data.startswith(b"end of trees\n", pos):
        raise bad("`end of trees` is not where tree_sizes says the trees end (truncated or edited)")
    tail = data[pos:].decode("utf-8")
    start, end = tail.find("\nparameters:\n"), tail.find("\nend of parameters\n")
    if start < 0 or end < start:
        raise bad("the parameters section is missing or unterminated (truncated?)")
    for line in tail[start + len("\nparameters:\n") : end].split("\n"):
        if line and not _PARAM_LINE.fullmatch(line):
            raise bad(f"malformed parameter line {line[:60]!r}")
    last = tail[end:].rstrip("\n").rsplit("\n", 1)[-1]
    try:
        if not last.startswith("pandas_categorical:"):
            raise ValueError(last)
        json.loads(last[len("pandas_categorical:") :])
    except ValueError:
        raise bad("the final `pandas_categorical:` line is missing or cut (truncated?)") from None


def _check_booster_native(data: bytes, path: Path) -> None:
    """Have LightGBM load, predict and explain with the model in a child process.

    A native abort there (SIGABRT, SIGSEGV) or a hang kills the child, never the caller.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _NATIVE_CHECK, str(lgb.basic._LIB._name)],
            input=data,
            capture_output=True,
            timeout=BOOSTER_CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _broken(
            path, f"LightGBM did not finish reading it in {BOOSTER_CHECK_TIMEOUT_S:.0f} s"
        ) from None
    except OSError as exc:
        raise ModelError(
            f"{path}: cannot start a child process to check the booster safely ({exc})"
        ) from None
    if proc.returncode == 0 and b"churnguard-booster-ok" in proc.stdout:
        return
    try:
        how = (
            f"killed by {signal.Signals(-proc.returncode).name}"
            if proc.returncode < 0
            else f"exit {proc.returncode}"
        )
    except ValueError:
        how = f"exit {proc.returncode}"
    said = [
        ln
        for ln in proc.stderr.decode("utf-8", "replace").splitlines()
        if "Fatal" in ln or "error" in ln
    ]
    detail = f"{said[-1].strip()[:200]}; " if said else ""
    raise _broken(path, f"LightGBM cannot read it ({detail}{how} in a checking child process)")


def _load_booster(path: Path) -> lgb.Booster:
    """booster.txt, verified (Python check, then a child-process parse) before LightGBM reads it here.

    Verified texts are remembered by sha256, so repeated loads in one process spawn no child.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _broken(path, f"cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _VERIFIED_BOOSTERS:
        _check_booster_text(data, path)
        _check_booster_native(data, path)
    try:
        booster = lgb.Booster(model_str=data.decode("utf-8"))
    except (lgb.basic.LightGBMError, ValueError) as exc:
        raise _broken(path, f"LightGBM cannot read it ({exc})") from None
    _VERIFIED_BOOSTERS.add(digest)
    return booster


def _differences(a: list[str], b: list[str]) -> str:
    only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
    if not only_a and not only_b:
        return (
            f"the same {len(a)} names in a different order"
            if len(a) == len(b)
            else "duplicate names"
        )
    return f"only in booster.txt: {only_a}, only in features.json: {only_b}"


@dataclass
class ChurnModel(FeatureScorer):
    """Booster + calibrator + the exact feature list it was trained on."""

    kind: ClassVar[str] = "model"  # its name among the scorers (churnguard.scorers)
    booster: lgb.Booster
    calibrator: Calibrator
    features: list[str]
    dtypes: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None  # where it was loaded from; named in error messages

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.matrix(frame)), dtype=float)

    @timed("predict")
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn within the horizon) (stacked with Pareto/NBD when trained so)."""
        if self.metadata.get("stack_btyd"):
            stack = BtydStack.from_dict(self.metadata["stack_btyd"])
            return stack.predict(self.predict_raw(frame), frame)
        return self.calibrator.predict(self.predict_raw(frame))

    @timed("reasons: SHAP contributions")
    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-feature SHAP contributions (log-odds) from LightGBM's own TreeSHAP."""
        contrib = self.booster.predict(self.matrix(frame), pred_contrib=True)
        return pd.DataFrame(contrib[:, :-1], columns=self.features, index=frame.index)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / BOOSTER_FILE, self.booster.model_to_string())
        write_text_atomic(folder / CALIBRATOR_FILE, dumps_json(self.calibrator.to_dict()))
        write_text_atomic(
            folder / FEATURES_FILE,
            dumps_json({"features": self.features, "dtypes": self.dtypes}),
        )
        write_text_atomic(folder / METADATA_FILE, dumps_json(self.metadata))

    @classmethod
    def load(cls, folder: str | Path) -> ChurnModel:
        """Read and verify a model folder; anything damaged is a :class:`ModelError` naming the file.

        Verified before use because LightGBM aborts the whole process (SIGABRT, SIGSEGV) on
        a damaged booster.txt instead of raising.
        """
        folder = Path(folder)
        needed = [BOOSTER_FILE, CALIBRATOR_FILE, FEATURES_FILE]
        missing = [n for n in needed if not (folder / n).exists()]
        if missing:
            raise ModelError(
                f"{folder}: not a churnguard model folder (missing {missing}); run `churnguard train` "
                "(`dvc repro train`) or pass another --model"
            )
        features, dtypes = _features_from_json(
            _read_json(folder / FEATURES_FILE), folder / FEATURES_FILE
        )
        calibrator = _calibrator_from_json(
            _read_json(folder / CALIBRATOR_FILE), folder / CALIBRATOR_FILE
        )
        meta_path = folder / METADATA_FILE
        meta = _metadata_from_json(_read_json(meta_path), meta_path) if meta_path.exists() else {}
        booster = _load_booster(folder / BOOSTER_FILE)
        names = list(booster.feature_name())
        if names != features or booster.num_feature() != len(features):
            raise _broken(
                folder / FEATURES_FILE,
                f"its features do not match {BOOSTER_FILE} ({_differences(names, features)})",
            )
        return cls(booster, calibrator, features, dtypes, meta, folder)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for scoring, with where it came from (reported in every list)."""

    model: Any  # a scorer: ChurnModel or a baseline (churnguard.scorers)
    ref: str  # the scorer's folder, or the models:/name@alias asked for
    version: str  # registry version or "file"
    digest: str  # md5 over the scorer's defining files (churnguard.scorers.scorer_digest)
    # test-cutoff metrics per scorer ({"model": {"roc_auc": …}, "logreg": {…}, …}) from the
    # folder's eval/metrics.json or the registry version's MLflow run; None when not evaluated
    evaluation: dict[str, Any] | None = None
    scorer: str = "model"  # which scorer ranks the lists: model, logreg or recency_rank
    selection: list[str] = field(default_factory=list)  # why the gate chose it
    registered_at: str | None = None  # when the registry version was created (ISO date)
    drift_reference: dict[str, Any] | None = None  # training feature profile (churnguard.drift)
