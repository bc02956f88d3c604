"""MLflow: the only module that imports mlflow.

Tracking store: ``MLFLOW_TRACKING_URI`` when set, else an absolute
``sqlite:///<project>/mlflow.db`` so the store does not follow the working directory
(the project is ``DVC_ROOT`` when DVC runs the stage, so temp and queued experiments
are tracked in the project's store).
A fresh SQLite store is created once under a file lock (several processes migrating a
new database at once crash).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

log = logging.getLogger(__name__)

CHAMPION = "champion"
MODEL_MD5_TAG = "churnguard.model_md5"


DVC_ROOT_ENV = "DVC_ROOT"  # set by DVC for every stage: the project root, also under --temp/--queue


def default_tracking_uri(project_dir: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the project root: ``DVC_ROOT`` when DVC
    runs the stage (``dvc exp run --temp``/``--queue`` work in a copy elsewhere, and their
    runs would otherwise land in a throw-away store), else the working directory."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = project_dir if project_dir is not None else project_root()
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def project_root() -> Path:
    """The project folder: ``DVC_ROOT`` when DVC runs the stage — and for ``dvc exp run
    --temp``/``--queue``, which run in a copy under ``<project>/.dvc/tmp/exps/``, the
    project that copy belongs to — else the working directory."""
    root = os.environ.get(DVC_ROOT_ENV)
    if not root:
        return Path(".").resolve()
    path = Path(root).resolve()
    parts = path.parts
    for i in range(1, len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def init_tracking(uri: str | None = None) -> str:
    """Point MLflow at ``uri`` (default store) and create the schema once, under a lock."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(db) + ".lock"):
            MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}; lists become their string form."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def git_state(cwd: str | Path = ".") -> dict[str, str]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = run("rev-parse", "HEAD") or "unknown"
    dirty = "true" if run("status", "--porcelain", "--untracked-files=no") else "false"
    return {"git.commit": commit, "git.dirty": dirty if commit != "unknown" else "unknown"}


def dvc_lock_hashes(lock_path: str | Path = "dvc.lock") -> dict[str, str]:
    """md5 of every stage dependency recorded in dvc.lock (what the data was)."""
    import yaml

    p = Path(lock_path)
    if not p.exists():
        return {}
    lock = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    tags: dict[str, str] = {}
    for stage, body in (lock.get("stages") or {}).items():
        for dep in body.get("deps", []) or []:
            if dep.get("md5") and not str(dep.get("path", "")).endswith(".py"):
                tags[f"dvc.{stage}.{dep['path']}"] = dep["md5"]
    return tags


def pyfunc_class() -> type:
    """A ``mlflow.pyfunc.PythonModel`` whose ``predict`` returns calibrated churn probabilities.

    Built on demand so importing churnguard does not import mlflow.
    """
    import mlflow.pyfunc

    class _ChurnPyfunc(mlflow.pyfunc.PythonModel):
        def load_context(self, context: Any) -> None:
            from churnguard.scorers import load_scorer

            self.model = load_scorer(context.artifacts["model_dir"])

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict | None = None
        ) -> np.ndarray:
            return self.model.predict(pd.DataFrame(model_input))

    _ChurnPyfunc.__name__ = "ChurnPyfunc"
    _ChurnPyfunc.__qualname__ = "ChurnPyfunc"
    return _ChurnPyfunc


@contextmanager
def training_run(experiment: str, run_name: str | None = None) -> Iterator[Any]:
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        yield run


def log_training(
    model_dir: str | Path,
    params: Mapping[str, Any],
    summary: Mapping[str, Any],
    example: pd.DataFrame,
    tags: Mapping[str, str],
) -> str:
    """Log params, tags, importance and the pyfunc model into the active run; return its model URI."""
    import mlflow

    flat = {k: str(v)[:500] for k, v in flatten(params).items()}
    mlflow.log_params(flat)
    mlflow.set_tags(dict(tags))
    mlflow.log_metrics(
        {
            "best_iteration": float(summary["best_iteration"]),
            **{f"rows_{k}": float(v) for k, v in summary["rows"].items()},
            **{f"churn_rate_{k}": float(v) for k, v in summary["churn_rate"].items()},
        }
    )
    mlflow.log_dict(dict(summary["feature_importance_gain"]), "feature_importance_gain.json")
    return log_scorer(model_dir, example, "model")


def log_scorer(folder: str | Path, example: pd.DataFrame, name: str) -> str:
    """Log the scorer in ``folder`` (LightGBM model or baseline) as a pyfunc into the active
    run under ``name``; return its model URI."""
    import mlflow
    from mlflow.models import infer_signature

    from churnguard.scorers import load_scorer

    model = load_scorer(folder)
    x = example[model.features].astype("float64").head(5)
    signature = infer_signature(x, model.predict(x))
    src = Path(__file__).resolve().parent
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(src / "pyfunc_entry.py"),
        artifacts={"model_dir": str(Path(folder).resolve())},
        code_paths=[str(src)],
        signature=signature,
        input_example=x,
        pip_requirements=_requirements(),
    )
    return str(info.model_uri)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{pkg}=={version(pkg)}"
        for pkg in ("lightgbm", "numpy", "pandas", "scikit-learn", "pyarrow")
    ]


def find_run_by_model(experiment: str, model_md5: str) -> Any | None:
    """The latest run that logged the model with this booster md5."""
    import mlflow

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = mlflow.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{MODEL_MD5_TAG}` = '{model_md5}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0] if runs else None


def load_champion(name: str) -> tuple[Any, str] | None:
    """(pyfunc model, version) of ``name@champion``, or None when there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}"), str(mv.version)


def register(
    model_uri: str, name: str, promote: bool, tags: Mapping[str, str], description: str = ""
) -> str:
    """Register a model version; move the ``champion`` alias to it when ``promote``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mv = mlflow.register_model(model_uri, name, tags=dict(tags))
    client = MlflowClient()
    if description:
        client.update_model_version(name, mv.version, description=description[:5000])
    if promote:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
    return str(mv.version)


def champion_version(name: str) -> str | None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def version_test_metrics(name: str, version: str) -> dict[str, dict[str, float]] | None:
    """Test-cutoff metrics per scorer logged on the run of ``name`` version ``version``
    (``test.<scorer>.<metric>``), or None when the version or its metrics are missing."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        run_id = client.get_model_version(name, version).run_id
        metrics = client.get_run(run_id).data.metrics if run_id else {}
    except MlflowException:
        return None
    scorers: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "test":
            scorers.setdefault(parts[1], {})[parts[2]] = float(value)
    return scorers or None


def version_created(name: str, version: str) -> str | None:
    """When ``name`` version ``version`` was registered (UTC ISO date), or None."""
    import datetime as dt

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        ms = MlflowClient().get_model_version(name, version).creation_timestamp
    except MlflowException:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat() if ms else None
