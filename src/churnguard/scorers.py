"""The scorers a list can be ranked by: the LightGBM model and two baselines, one interface.

The champion is whichever scorer wins the gate (:mod:`churnguard.gate`), so every
candidate offers what scoring needs: calibrated P(churn) (``predict``), per-feature
contributions in log-odds for the reasons (``contributions``), the feature and horizon
checks, and a folder of plain-text files that the MLflow pyfunc loads.

- ``model``: the LightGBM booster (:class:`churnguard.modeling.ChurnModel`), folder
  ``models/`` with ``booster.txt`` etc.
- ``logreg``: :class:`LogisticScorer`, the logistic regression on the model's features
  (median imputation with missing indicators, standard scaling), calibrated on the same
  validation cutoff. Its contributions are exact: coefficient × standardised value (the
  indicator's term added to its feature), i.e. the log-odds gap to an average customer.
- ``recency_rank``: :class:`RecencyScorer`, days since the last purchase mapped to P(churn)
  by an isotonic calibrator. Its one contribution is on ``recency_days``: the log-odds gap
  between the customer's probability and that of a typical (median) silence.

A baseline folder (``models/baselines/<name>/``) holds ``scorer.json`` (kind, features,
fitted numbers, calibrator) and ``metadata.json`` (training horizon, cutoffs). No pickles.
The scorer objects are in :mod:`churnguard.predictors` (pure); this module holds their
folders: saving, loading, digests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from churnguard.baselines import BASELINE_SCORERS, CANDIDATES, MODEL
from churnguard.errors import ModelError
from churnguard.io import dumps_json, file_md5, write_text_atomic
from churnguard.modeling import (
    BOOSTER_FILE,
    CALIBRATOR_FILE,
    FEATURES_FILE,
    METADATA_FILE,
    ChurnModel,
    _metadata_from_json,
    _read_json,
)
from churnguard.predictors import SCORER_FILE, LogisticScorer, RecencyScorer, _broken

BASELINES_DIR = "baselines"
DRIFT_FILE = "drift_reference.json"  # training feature distributions, beside every scorer
GATE_FILE = "gate.json"  # in <model_dir>/eval: the scorer the gate chose for the lists
EVALUATED_DIR = "eval/evaluated"  # under <model_dir>: the LightGBM fit the gate judges


AnyScorer = ChurnModel | LogisticScorer | RecencyScorer

BASELINE_CLASSES: dict[str, type[LogisticScorer] | type[RecencyScorer]] = {
    "logreg": LogisticScorer,
    "recency_rank": RecencyScorer,
}


def save_scorer(scorer: LogisticScorer | RecencyScorer, folder: str | Path) -> None:
    """Write a baseline scorer folder: ``scorer.json`` + ``metadata.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / SCORER_FILE, dumps_json(scorer.to_dict()))
    write_text_atomic(folder / METADATA_FILE, dumps_json(scorer.metadata))


def load_scorer(folder: str | Path) -> AnyScorer:
    """Any scorer folder: a baseline (``scorer.json``) or the LightGBM model (``booster.txt``)."""
    folder = Path(folder)
    path = folder / SCORER_FILE
    if not path.exists():
        return ChurnModel.load(folder)
    d = _read_json(path)
    kind = d.get("kind") if isinstance(d, dict) else None
    cls = BASELINE_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise _broken(path, f'"kind" is {kind!r}, expected one of {sorted(BASELINE_CLASSES)}')
    meta_path = folder / METADATA_FILE
    meta = _metadata_from_json(_read_json(meta_path), meta_path) if meta_path.exists() else {}
    return cls.from_dict(d, path, meta)


def scorer_files(folder: str | Path) -> list[str]:
    """The files that define the scorer in ``folder`` (what its digest covers)."""
    folder = Path(folder)
    if (folder / SCORER_FILE).exists():
        return [SCORER_FILE]
    return [BOOSTER_FILE, CALIBRATOR_FILE, FEATURES_FILE]


def scorer_digest(folder: str | Path) -> str:
    """md5 over the md5 of each defining file (``booster.txt`` + ``calibrator.json`` +
    ``features.json`` for LightGBM, as before; ``scorer.json`` for a baseline)."""
    folder = Path(folder)
    h = hashlib.md5()
    for name in scorer_files(folder):
        if not (folder / name).exists():
            raise ModelError(f"{folder}: missing {name}; re-run `churnguard train`")
        h.update(file_md5(folder / name).encode())
    return h.hexdigest()


def scorer_folder(model_dir: str | Path, name: str) -> Path:
    """Where the scorer ``name`` of one training run lives under its model folder."""
    if name == MODEL:
        return Path(model_dir)
    if name not in BASELINE_SCORERS:
        raise ModelError(f"unknown scorer {name!r}; expected one of {list(CANDIDATES)}")
    return Path(model_dir) / BASELINES_DIR / name


def evaluated_folder(model_dir: str | Path) -> Path:
    """The LightGBM fit the gate judges on the test cutoff: ``<model_dir>/eval/evaluated``
    (the shipped model in ``<model_dir>`` is a refit of it when ``train.refit``); the model
    folder itself for models trained before refits existed."""
    folder = Path(model_dir) / EVALUATED_DIR
    return folder if (folder / BOOSTER_FILE).exists() else Path(model_dir)


def find_scorer_folder(root: str | Path) -> Path | None:
    """The outermost folder under ``root`` holding a scorer (``booster.txt`` or
    ``scorer.json``): a registered LightGBM model's copy also holds its baselines below it."""
    root = Path(root)
    found = [p.parent for name in (BOOSTER_FILE, SCORER_FILE) for p in root.rglob(name)]
    return min(found, key=lambda p: (len(p.parts), str(p))) if found else None


def read_drift_reference(folder: str | Path) -> dict[str, Any] | None:
    """The training feature profile saved beside a scorer (None for older models)."""
    path = Path(folder) / DRIFT_FILE
    if not path.exists():
        return None
    d = _read_json(path)
    return d if isinstance(d, dict) else None
