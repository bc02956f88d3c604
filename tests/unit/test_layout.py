"""The import contract: pure logic touches no disk, database, engine or MLflow.

The modules in PURE compute from frames and arrays only; stage modules do the reading
and writing around them. This test fails when a pure module imports I/O, a database or
tracking library, another churnguard module outside the pure set, or calls a file
writer — so the boundary cannot erode silently. The stage modules (ingest, features,
train, evaluate, score, backtest_run, feedback) read, call these, and write.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "churnguard"

PURE = (
    "feature_defs",
    "baselines",
    "actions",
    "value",
    "explain",
    "i18n",
    "localfmt",
    "gate",
    "report",
    "stats",
    "btyd",
    "drift",
    "labels",
    "workbook",
    "outcomes",
    "uplift",
    "horizon",
    "timing",
    "btyd_features",
    "paretonbd",
    "ingest_rules",
    "metrics",
    "calibration",
    "predictors",
    "fitting",
    "scoring",
    "formulas",
)
ALLOWED_INTERNAL = {*PURE, "config", "errors"}
# A forbidden library one pure module may still import, and why. fitting trains LightGBM
# boosters and predicts with them on frames in memory: lightgbm there reads and writes no
# file (the writer check below still applies, save_model included); saving the booster
# is the train stage's (modeling.ChurnModel.save).
ALLOWED_EXTRA: dict[str, set[str]] = {"fitting": {"lightgbm"}}
FORBIDDEN_EXTERNAL = (
    "duckdb",
    "mlflow",
    "pyspark",
    "sqlglot",
    "dvc",
    "lightgbm",
    "requests",
    "shutil",
    "tempfile",
)
WRITERS = {
    "open",
    "to_parquet",
    "to_csv",
    "to_excel",
    "write_text",
    "write_bytes",
    "unlink",
    "mkdir",
    "rmtree",
    "save_model",
}


def contract_violations(source: str, allowed: Collection[str] = ()) -> list[str]:
    """What in ``source`` breaks the contract for a pure module (``allowed``: forbidden
    libraries it may import all the same, :data:`ALLOWED_EXTRA`)."""
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + (
                [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "churnguard"
                else []
            )
        for name in names:
            top = name.split(".")[0]
            if top in FORBIDDEN_EXTERNAL and top not in allowed:
                problems.append(f"imports {name}")
            if top == "churnguard" and name != "churnguard":
                inner = name.split(".")[1]
                if inner not in ALLOWED_INTERNAL:
                    problems.append(f"imports churnguard.{inner}")
        if isinstance(node, ast.Call):
            f = node.func
            called = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if called in WRITERS:
                problems.append(f"calls {called}() at line {node.lineno}")
    return problems


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_touch_no_disk_database_or_tracking(module):
    source = (PKG / f"{module}.py").read_text(encoding="utf-8")
    problems = contract_violations(source, ALLOWED_EXTRA.get(module, set()))
    assert not problems, f"churnguard.{module} is pure logic but {problems}"


def test_every_allowance_names_a_pure_module_and_a_forbidden_library():
    for module, libraries in ALLOWED_EXTRA.items():
        assert module in PURE, module
        assert libraries <= set(FORBIDDEN_EXTERNAL), libraries


def test_an_allowed_library_still_may_not_write():
    fitting = ALLOWED_EXTRA["fitting"]
    assert not contract_violations("import lightgbm as lgb", fitting)
    assert contract_violations("import lightgbm as lgb")
    assert contract_violations("import duckdb", fitting)
    saved = "import lightgbm as lgb\ndef f(booster):\n    booster.save_model('b.txt')"
    assert contract_violations(saved, fitting) == ["calls save_model() at line 3"]


@pytest.mark.parametrize(
    "snippet",
    [
        "import duckdb",
        "from churnguard.io import write_json_atomic",
        "from churnguard import tracking",
        "def f(frame):\n    frame.to_parquet('x.parquet')",
        "def f():\n    with open('x') as fh:\n        return fh.read()",
    ],
    ids=["a database", "churnguard I/O", "tracking", "a Parquet write", "open()"],
)
def test_the_contract_catches_each_kind_of_violation(snippet):
    assert contract_violations(snippet)
