"""dvc.yaml cannot go stale: every stage depends on all the code and SQL it runs, and the
plot definitions are the ones the evaluate stage writes its tables for.

A stage's code is the import closure of the modules its CLI command imports (imports
inside functions included: a lazy import is still code the stage may run), plus the SQL
files those modules read. ``cli.py`` itself only wires and is left out.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "src" / "churnguard"
TEMPLATES = PKG / "templates"


def _module_file(name: str) -> Path | None:
    """``churnguard.x.y`` → its source file (module or package ``__init__``)."""
    parts = name.split(".")
    if parts[0] != "churnguard":
        return None
    base = PKG.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return out


def _imports(path: Path, type_checking: bool = False) -> set[str]:
    """Every churnguard module ``path`` imports, anywhere in the file (lazy imports too;
    with ``type_checking`` also those under ``if TYPE_CHECKING:``)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree) if type_checking else _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("churnguard")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("churnguard")
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from churnguard import x`
    return {m for m in found if _module_file(m) is not None}


def _calls(path: Path, func: str) -> bool:
    """Whether ``path`` calls ``func`` (by bare or attribute name) anywhere."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == func) or (
                isinstance(f, ast.Attribute) and f.attr == func
            ):
                return True
    return False


def _sql_files(path: Path) -> set[Path]:
    """SQL files a module names in a string constant (``"sql/features.sql"``), and the
    Jinja2 templates it renders (``"report.html.j2"``) with every template they extend,
    import or include."""
    out: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if node.value.endswith(".sql") and (PKG / node.value).is_file():
            out.add(PKG / node.value)
        elif node.value.endswith(".j2") and (TEMPLATES / node.value).is_file():
            out |= _templates(node.value)
    return out


def _templates(name: str) -> set[Path]:
    """A template and, recursively, the templates it references."""
    import jinja2
    from jinja2 import meta

    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    found: set[Path] = set()
    todo = [name]
    while todo:
        path = TEMPLATES / todo.pop()
        if path in found:
            continue
        found.add(path)
        tree = env.parse(path.read_text(encoding="utf-8"))
        todo.extend(t for t in meta.find_referenced_templates(tree) if t is not None)
    return found


def closure(modules: set[str]) -> set[Path]:
    """Source and SQL files reachable from ``modules`` (``cli`` excluded)."""
    seen: set[str] = set()
    todo = sorted(modules)
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen or name == "churnguard.cli":
            continue
        seen.add(name)
        path = _module_file(name)
        assert path is not None, name
        files.add(path)
        files |= _sql_files(path)
        todo.extend(sorted(_imports(path) - seen))
        if _calls(path, "get_engine"):  # may run any registered engine
            from churnguard.engines import ENGINES

            todo.extend(spec.split(":")[0] for spec in ENGINES.values())
    init = PKG / "__init__.py"
    files.discard(init)  # the version string only
    return files


def command_modules(command: str) -> set[str]:
    """The churnguard modules the CLI command function imports."""
    tree = ast.parse((PKG / "cli.py").read_text(encoding="utf-8"))
    func = next(
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name == command.replace("-", "_")
    )
    found: set[str] = set()
    for node in ast.walk(func):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("churnguard")
        ):
            found |= {
                f"{node.module}.{a.name}" if node.module == "churnguard" else node.module
                for a in node.names
            }
    return found


def _params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def _resolve(text: str, params: dict) -> str:
    """``${a.b}`` interpolation as DVC does it, from params.yaml."""
    import re

    def value(match: re.Match[str]) -> str:
        node: object = params
        for key in match.group(1).split("."):
            assert isinstance(node, dict)
            node = node[key]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", value, text)


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def missing_deps(stage: dict, params: dict) -> list[str]:
    """Code files the stage runs that none of its deps (files or folders) covers."""
    command = stage["cmd"].split()[1]
    deps = [(REPO / _resolve(d, params)).resolve() for d in stage.get("deps", [])]
    needed = closure(command_modules(command))
    return sorted(
        str(f.relative_to(REPO)) for f in needed if not any(f == d or d in f.parents for d in deps)
    )


def test_every_stage_depends_on_all_the_code_it_runs() -> None:
    params = _params()
    problems = {name: missing_deps(stage, params) for name, stage in _stages().items()}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"dvc.yaml deps miss code the stage runs (add them): {problems}"


def test_the_check_fails_when_a_dependency_is_dropped() -> None:
    params = _params()
    stage = copy.deepcopy(_stages()["score"])
    stage["deps"] = [d for d in stage["deps"] if not d.endswith("sql/features.sql")]
    assert missing_deps(stage, params) == ["src/churnguard/sql/features.sql"]
    stage = copy.deepcopy(_stages()["train"])
    stage["deps"] = [d for d in stage["deps"] if not d.endswith("feature_defs.py")]
    assert missing_deps(stage, params) == ["src/churnguard/feature_defs.py"]
    stage["deps"] = [d for d in stage["deps"] if d != "src/churnguard/fitting.py"]
    assert "src/churnguard/fitting.py" in missing_deps(stage, params)
    stage = copy.deepcopy(_stages()["score"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/churnguard/templates"]
    assert {
        "src/churnguard/templates/report.html.j2",
        "src/churnguard/templates/manager.html.j2",
        "src/churnguard/templates/_layout.html.j2",
        "src/churnguard/templates/_macros.html.j2",
        "src/churnguard/templates/_uplift.html.j2",
        "src/churnguard/templates/uplift.html.j2",
        "src/churnguard/templates/style.css.j2",
    } == set(missing_deps(stage, params))


def test_score_stage_reads_the_feature_code_it_runs() -> None:
    """The regression behind this check: score builds its snapshot with the feature SQL,
    on whichever engine is configured, and draws the CRR chart."""
    files = {str(f.relative_to(REPO)) for f in closure(command_modules("score"))}
    assert {
        "src/churnguard/feature_defs.py",
        "src/churnguard/sql/features.sql",
        "src/churnguard/crr.py",
        "src/churnguard/sql/crr.sql",
        "src/churnguard/engines/duckdb.py",
        "src/churnguard/engines/spark.py",
    } <= files


def _module_graph(type_checking: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        name = ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        )
        graph[name] = set()
    for name in graph:
        path = _module_file(name)
        assert path is not None
        graph[name] = {m for m in _imports(path, type_checking) if m in graph and m != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself through imports (lazy ones included), as a path."""
    cycles = []
    for start in sorted(graph):
        todo, seen = [(start, [start])], set()
        while todo:
            node, path = todo.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    cycles.append([*path, start])
                elif nxt not in seen:
                    seen.add(nxt)
                    todo.append((nxt, [*path, nxt]))
    return cycles


def test_no_import_circle() -> None:
    """None at run time, and none for a type checker either: imports under
    ``if TYPE_CHECKING:`` and inside functions count."""
    for type_checking in (False, True):
        cycles = import_cycles(_module_graph(type_checking))
        assert not cycles, f"import circles: {[' -> '.join(c) for c in cycles[:5]]}"


def test_the_circle_check_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert ["a", "b", "c", "a"] in import_cycles(graph)
    assert not import_cycles({"a": {"b"}, "b": set()})


def test_no_stage_branches_on_the_engine_name() -> None:
    """Only the engines package knows which engine runs; stages ask it."""
    offenders = [
        str(p.relative_to(REPO))
        for p in PKG.rglob("*.py")
        if "engines" not in p.relative_to(PKG).parts
        and "engine.name ==" in p.read_text(encoding="utf-8")
    ]
    assert not offenders


def test_every_engine_in_the_registry_implements_the_interface() -> None:
    import importlib

    from churnguard.config import EngineParams
    from churnguard.engines import ENGINES, Engine

    for name, spec in ENGINES.items():
        module, cls = spec.split(":")
        engine = getattr(importlib.import_module(module), cls)(EngineParams())
        assert isinstance(engine, Engine) and engine.name == name


def test_dvc_plots_are_the_evaluate_stage_plot_specs() -> None:
    """The plots: block is generated from metrics.plot_specs, whose tables the evaluate stage
    writes (test_evaluate checks every column a spec names exists in the written tables)."""
    from churnguard import metrics as M

    folder = _resolve("${evaluate.model_dir}/eval/plots", _params())
    expected = M.dvc_plots(M.plot_specs(), folder=folder)
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    assert declared == expected, (
        "regenerate: churnguard evaluate --dvc-plots, then paste the block into dvc.yaml"
    )


def test_dvc_plots_rank_without_model_raw_and_show_the_pngs() -> None:
    """Ranking plots leave out the uncalibrated duplicate (calibration keeps it), and the
    PNG folder, a cached output of the evaluate stage, is declared as a DVC image plot."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    params = _params()
    linear = {k: v for e in dvc["plots"] if isinstance(e, dict) for k, v in e.items()}
    for plot_id, plot in linear.items():
        columns = [c for cols in plot["y"].values() for c in cols]
        assert ("observed_model_raw" in columns) == (plot_id == "Calibration"), plot_id
        assert not any(c.endswith("_model_raw") and c != "observed_model_raw" for c in columns)
    png = _resolve("${evaluate.model_dir}/eval/png", params)
    assert png in dvc["plots"], "the PNG folder is not declared as an image plot"
    outs = [o if isinstance(o, str) else next(iter(o)) for o in dvc["stages"]["evaluate"]["outs"]]
    assert png in [_resolve(o, params) for o in outs]


def test_score_stage_scores_the_snapshot_the_features_stage_built() -> None:
    """current.parquet is read, not built a second time: the score stage passes it with
    --snapshot and depends on it and on the record that lets score check it."""
    stages = _stages()
    snapshot = "${features.output_dir}/current.parquet"
    record = "${features.output_dir}/current.json"
    assert {snapshot, record} <= set(stages["features"]["outs"])
    assert f"--snapshot {snapshot}" in stages["score"]["cmd"]
    assert {snapshot, record} <= set(stages["score"]["deps"])


def test_score_stage_keeps_the_previous_run_so_change_works() -> None:
    """DVC deletes a stage's outputs before running it unless they persist: scores/latest must
    survive until score replaces it (atomically), or every row would say `first list`."""
    stage = _stages()["score"]
    assert "--output-dir ${score.output_root}/latest" in stage["cmd"]
    assert stage["outs"] == [{"${score.output_root}/latest": {"persist": True}}]
