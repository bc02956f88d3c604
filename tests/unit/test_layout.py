"""The import contract: pure logic touches no disk, database, engine or MLflow.

The modules in PURE compute from frames and arrays only; stage modules do the reading
and writing around them. This test fails when a pure module imports I/O, a database or
tracking library, another churnguard module outside the pure set, or calls a file
writer — so the boundary cannot erode silently. (Stage modules that still mix logic and
I/O — ingest, train, evaluate — are to be split next; add them here as they are.)
"""

from __future__ import annotations

import ast
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
    "scoring",
    "formulas",
)
ALLOWED_INTERNAL = {*PURE, "config", "errors"}
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
}


def contract_violations(source: str) -> list[str]:
    """What in ``source`` breaks the contract for a pure module."""
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
            if top in FORBIDDEN_EXTERNAL:
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
    problems = contract_violations((PKG / f"{module}.py").read_text(encoding="utf-8"))
    assert not problems, f"churnguard.{module} is pure logic but {problems}"


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
