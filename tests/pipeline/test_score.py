"""Batch scoring as a scheduler sees it: idempotent, atomic, locked; errors with exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from churnguard.config import ReportParams, ScoreParams, load_params
from churnguard.errors import DataError, LockedError, ModelError
from churnguard.io import backup_name, folder_lock, restore_interrupted_swap
from churnguard.modeling import ChurnModel
from churnguard.score import run_score
from churnguard.scoring import score_frame

REPO = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2024, 12, 31)


def score_params() -> ScoreParams:
    """The shipped playbook from params.yaml, so the tests exercise the real default."""
    return load_params(REPO / "params.yaml").score


def run(pipeline, out_root: Path, **kw):
    return run_score(
        score_params().model_copy(update={"output_root": str(out_root)}),
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=pipeline.train.model_dir,
        transactions=pipeline.transactions,
        **kw,
    )


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def scored(pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("scores")
    summary = run(pipeline, root, as_of=AS_OF)
    return root, summary


def test_outputs_exist_and_reconcile(scored):
    root, summary = scored
    out = root / AS_OF.isoformat()
    assert summary["status"] == "written"
    risk = pd.read_csv(out / "risk_list.csv", encoding="utf-8-sig", dtype={"customer_id": str})
    assert len(risk) == summary["customers_scored"] and risk.customer_id.is_unique
    assert (risk["rank"] > 0).sum() == summary["customers_on_lists"]
    assert (risk.loc[risk["rank"] > 0, "expected_net_benefit"] > 0).all()
    manager_files = sorted((out / "by_manager").glob("*.csv"))
    assert len(manager_files) == len(summary["manager_files"]) == risk.account_manager.nunique()
    capacity = score_params().manager_capacity_per_week
    for path in manager_files:
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")
        mine = pd.read_csv(path, encoding="utf-8-sig")
        ranked = mine[mine["rank"].notna()]
        assert len(ranked) <= capacity
        assert ranked["expected_net_benefit"].is_monotonic_decreasing
        assert (ranked["reasons"].str.len() > 0).all()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<script" not in html
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) <= set(files(out))


def test_rerun_is_a_no_op_and_force_is_byte_identical(pipeline, scored):
    root, _ = scored
    out = root / AS_OF.isoformat()
    before = files(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = run(pipeline, root, as_of=AS_OF)
    assert again["status"] == "up-to-date"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes
    forced = run(pipeline, root, as_of=AS_OF, force=True)
    assert forced["status"] == "written"
    assert files(out) == before


def test_second_run_on_a_locked_folder_stops_at_once(pipeline, scored):
    root, _ = scored
    out = root / AS_OF.isoformat()
    before = files(out)
    with folder_lock(out), pytest.raises(LockedError, match="being written") as err:
        run(pipeline, root, as_of=AS_OF, force=True)
    assert err.value.exit_code == 5
    assert files(out) == before


def test_a_run_killed_before_the_swap_leaves_the_previous_lists_intact(pipeline, scored, tmp_path):
    root, _ = scored
    out = root / AS_OF.isoformat()
    before = files(out)
    script = textwrap.dedent(
        f"""
        import os, signal, datetime as dt
        from pathlib import Path
        from churnguard.config import ReportParams, load_params, EngineParams, FeaturesParams
        from churnguard.score import run_score
        sp = load_params({str(REPO / "params.yaml")!r}).score.model_copy(update={{"output_root": {str(root)!r}}})
        fp = FeaturesParams.model_validate_json({pipeline.features.model_dump_json()!r})
        engine = EngineParams.model_validate_json({pipeline.engine.model_dump_json()!r})
        def die(staging):
            assert any(Path(staging).rglob("*.csv"))  # new files fully written, not yet swapped in
            os.kill(os.getpid(), signal.SIGKILL)
        run_score(sp, fp, ReportParams(), engine, as_of=dt.date.fromisoformat({AS_OF.isoformat()!r}),
                  model={pipeline.train.model_dir!r}, transactions=Path({str(pipeline.transactions)!r}),
                  force=True, before_swap=die)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert files(out) == before  # the previous lists, untouched
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))
    assert list(root.glob(f".{out.name}.staging-*"))  # what the killed run left beside it...
    run(pipeline, root, as_of=AS_OF, force=True)
    assert not list(root.glob(f".{out.name}.staging-*"))  # ...is cleaned by the next run


def test_interrupted_swap_is_restored(tmp_path):
    final = tmp_path / "2024-12-31"
    final.mkdir()
    (final / "risk_list.csv").write_text("old")
    manifest = {
        "written_by": "churnguard",
        "key": "k",
        "inputs": {},
        "files": {"risk_list.csv": "x"},
    }
    (final / "manifest.json").write_text(json.dumps(manifest))
    os.replace(final, backup_name(final))  # died between the two renames
    assert restore_interrupted_swap(final)
    assert (final / "risk_list.csv").read_text() == "old"
    assert not backup_name(final).exists()


def test_change_against_the_previous_list(pipeline, scored):
    root, _ = scored
    later = AS_OF + dt.timedelta(days=7)  # data ends on AS_OF: a week of silence
    run(pipeline, root, as_of=later)
    risk = pd.read_csv(root / later.isoformat() / "risk_list.csv", encoding="utf-8-sig")
    listed = risk[risk["rank"] > 0]
    assert set(listed["change"]) <= {"new", "escalated", "de-escalated", "unchanged"}
    assert "unchanged" in set(listed["change"])
    summary = json.loads((root / later.isoformat() / "summary.json").read_text())
    assert summary["previous_list"] == AS_OF.isoformat()


def test_feature_mismatch_is_refused(pipeline):
    model = ChurnModel.load(pipeline.train.model_dir)
    snap = pd.read_parquet(Path(pipeline.features.output_dir) / "current.parquet")
    with pytest.raises(ModelError, match="recency_days") as err:
        score_frame(snap.drop(columns=["recency_days"]), model, score_params())
    assert err.value.exit_code == 4


def test_empty_population_is_a_data_error(pipeline, tmp_path):
    with pytest.raises(DataError, match="empty population") as err:
        run(pipeline, tmp_path, as_of=dt.date(2000, 1, 1))
    assert err.value.exit_code == 3


def test_change_statuses_from_hand_built_lists():
    from churnguard.scoring import compare_with_previous

    cur = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "customer_name": ["A", "B", "C", "D", "E"],
            "account_manager": ["M"] * 5,
            "on_list": [True, True, True, True, False],
            "risk_band": ["high", "medium", "high", "medium", "low"],
            "p_churn": [0.7, 0.4, 0.8, 0.5, 0.1],
            "last_purchase_date": ["2024-01-01"] * 4 + ["2024-03-01"],
        }
    )
    prev = pd.DataFrame(
        {
            "customer_id": ["b", "c", "d", "e", "f"],
            "customer_name": ["B", "C", "D", "E", "F"],
            "account_manager": ["M"] * 5,
            "rank": [1, 2, 3, 4, 5],
            "risk_band": ["medium", "medium", "high", "high", "high"],
            "p_churn": [0.45, 0.5, 0.7, 0.9, 0.9],
            "last_purchase_date": ["2024-01-01"] * 3 + ["2024-01-15", "2024-01-01"],
        }
    )
    change, gone, movers = compare_with_previous(cur, prev)
    assert dict(zip(cur.customer_id, change, strict=True)) == {
        "a": "new",
        "b": "unchanged",
        "c": "escalated",
        "d": "de-escalated",
        "e": "",
    }
    # e bought again since the last list; f is no longer scored at all
    assert dict(zip(gone.customer_id, gone.change, strict=True)) == {
        "e": "recovered",
        "f": "off list",
    }
    # the recovered customer's last purchase is the new one; f keeps the one last list had
    assert dict(zip(gone.customer_id, gone.last_purchase_date, strict=True)) == {
        "e": "2024-03-01",
        "f": "2024-01-01",
    }
    assert movers.iloc[0]["customer_id"] == "e" and movers.iloc[-1]["customer_id"] == "c"


def test_explanation_budget_covers_manual_actions_first_then_the_best_automated(pipeline):
    model = ChurnModel.load(pipeline.train.model_dir)
    snap = pd.read_parquet(Path(pipeline.features.output_dir) / "current.parquet")
    full = score_frame(
        snap, model, score_params().model_copy(update={"explain_max_customers": None})
    )
    listed = full[full["on_list"]]
    manual = listed[listed["owner"] == "account_manager"]
    auto = listed[listed["owner"] == "automated"]
    assert len(manual) > 0 and len(auto) > 10
    assert full["explained"].equals(full["on_list"])
    assert (listed["reasons"].str.len() > 0).all() and (
        full.loc[~full["on_list"], "reasons"] == ""
    ).all()

    limit = len(manual) + 10
    capped = score_frame(
        snap, model, score_params().model_copy(update={"explain_max_customers": limit})
    )
    assert capped["customer_id"].tolist() == full["customer_id"].tolist()  # same list, same order
    got = capped[capped["explained"]]
    assert len(got) == limit
    assert set(manual["customer_id"]) <= set(got["customer_id"])
    best_auto = auto.sort_values(
        ["expected_net_benefit", "p_churn", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    ).head(10)
    assert set(got["customer_id"]) == set(manual["customer_id"]) | set(best_auto["customer_id"])
    # a customer's reasons do not depend on who else is explained
    same = full.set_index("customer_id").loc[got["customer_id"], "reasons"]
    assert same.tolist() == got["reasons"].tolist()
    assert (capped.loc[~capped["explained"], "reasons"] == "").all()

    # account managers always get reasons; explain_top: 0 is the switch that turns them off
    zero = score_frame(snap, model, score_params().model_copy(update={"explain_max_customers": 0}))
    assert set(zero.loc[zero["explained"], "customer_id"]) == set(manual["customer_id"])
    off = score_frame(snap, model, score_params().model_copy(update={"explain_top": 0}))
    assert not off["explained"].any() and (off["reasons"] == "").all()


def test_outputs_get_the_usual_permissions_not_private_temp_ones(scored):
    root, _ = scored
    out = root / AS_OF.isoformat()
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # the swapped-in staging folder
    for path in out.rglob("*"):
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert path.stat().st_mode & 0o777 == want, path


def test_a_folder_rewritten_in_place_compares_with_the_list_it_held(pipeline, tmp_path):
    """The DVC stage writes scores/latest with --output-dir: `change` must still work, and a
    re-run for the same date must compare with the same earlier list (byte-identical)."""
    from churnguard.csvsafe import read_excel_csv
    from churnguard.score import PREVIOUS_LIST_FILE
    from churnguard.scoring import RISK_LIST_SCHEMA

    out = tmp_path / "latest"
    week1 = AS_OF - dt.timedelta(days=7)
    first = run(pipeline, tmp_path, as_of=week1, output_dir=out)
    assert first["previous_list"] is None and not (out / PREVIOUS_LIST_FILE).exists()
    assert set(first["manager_files"])  # lists were written
    run(pipeline, tmp_path, as_of=AS_OF, output_dir=out, force=True)
    risk = read_excel_csv(out / "risk_list.csv", RISK_LIST_SCHEMA)
    listed = risk[risk["rank"] > 0]
    assert set(listed["change"]) <= {"new", "escalated", "de-escalated", "unchanged"}
    assert "unchanged" in set(listed["change"])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["previous_list"] == week1.isoformat()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert PREVIOUS_LIST_FILE in manifest["files"]
    kept = read_excel_csv(out / PREVIOUS_LIST_FILE, {"customer_id": "str", "rank": "int"})
    assert int((kept["rank"] > 0).sum()) == first["customers_on_lists"]
    before = files(out)
    again = run(pipeline, tmp_path, as_of=AS_OF, output_dir=out, force=True)
    assert again["previous_list"] == week1.isoformat()  # not itself: the list it was compared with
    assert files(out) == before


def test_each_manager_gets_a_workbook_and_a_page_matching_their_list(scored):
    from urllib.parse import quote

    import openpyxl

    from churnguard.csvsafe import read_excel_csv

    root, summary = scored
    out = root / AS_OF.isoformat()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    report = (out / "report.html").read_text(encoding="utf-8")
    assert set(summary["manager_workbooks"]) == set(summary["manager_files"])
    schema = {"rank": "Int64", "customer_id": "str", "action": "str", "due_date": "str"}
    for manager, csv_rel in summary["manager_files"].items():
        xlsx_rel, page_rel = (
            summary["manager_workbooks"][manager],
            summary["manager_pages"][manager],
        )
        assert xlsx_rel == csv_rel.removesuffix(".csv") + ".xlsx"  # same stem as the CSV
        assert {csv_rel, xlsx_rel, page_rel} <= set(manifest["files"])
        lst = read_excel_csv(out / csv_rel, schema)
        ranked = lst[lst["rank"].notna()]
        assert (ranked["action"] != "").all() and (ranked["due_date"] >= AS_OF.isoformat()).all()
        ws = openpyxl.load_workbook(out / xlsx_rel)["List"]
        head = [c.value for c in ws[1]]
        rows = list(ws.iter_rows(min_row=2, values_only=True))
        col = {h: [r[head.index(h)] for r in rows] for h in ("customer_id", "action", "list_date")}
        assert col["customer_id"] == ranked["customer_id"].tolist()  # rank order, exact ids
        assert col["action"] == ranked["action"].tolist()
        assert {d.date() for d in col["list_date"]} <= {AS_OF}
        assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)
        page = (out / page_rel).read_text(encoding="utf-8")
        assert "Do these first" in page and f'href="{quote(Path(xlsx_rel).name)}"' in page
        assert f'href="{quote(page_rel)}"' in report


def _features_copy(pipeline, tmp_path: Path) -> Path:
    """The fixture's features folder, copied so a test may alter it."""
    import shutil

    folder = tmp_path / "features"
    shutil.copytree(pipeline.features.output_dir, folder)
    return folder


def test_the_features_snapshot_is_scored_byte_identically_without_building_it(
    pipeline, tmp_path, monkeypatch
):
    """``--snapshot`` (the DVC score stage): current.parquet from the features stage is read,
    not built again with the feature SQL, and every file written is the same, byte for byte
    (the manifest and summary included: the snapshot keys nothing new)."""
    from churnguard.engines import duckdb as duck
    from churnguard.feature_defs import CURRENT_FILE

    built = run(pipeline, tmp_path / "built", as_of=AS_OF)

    def no_sql(*args, **kwargs):
        raise AssertionError("the as-of snapshot was built again")

    monkeypatch.setattr(duck, "snapshot_frame", no_sql)
    snapshot = Path(pipeline.features.output_dir) / CURRENT_FILE
    read = run(pipeline, tmp_path / "read", as_of=AS_OF, snapshot=snapshot)
    assert read["status"] == built["status"] == "written"
    assert files(tmp_path / "read" / AS_OF.isoformat()) == files(
        tmp_path / "built" / AS_OF.isoformat()
    )


@pytest.mark.parametrize(
    "case, expected",
    [
        ("other as-of date", "built for as-of 2024-12-31, this run scores at 2024-12-24"),
        (
            "other lost_after_days",
            "built with features.lost_after_days 365, params.yaml now says 300",
        ),
        ("other transactions", "built from other transactions"),
        ("snapshot edited", "changed since `churnguard features` wrote it"),
        ("no record", "current.json, the record of what it was built from, is missing"),
        ("no snapshot", "snapshot not found"),
    ],
)
def test_a_snapshot_that_is_not_the_one_this_run_would_build_is_refused(
    pipeline, tmp_path, case, expected
):
    """Exit 3 before any list is written, naming the file, why, and what to re-run."""
    import pyarrow.parquet as pq

    from churnguard.feature_defs import CURRENT_FILE, CURRENT_META_FILE

    folder = _features_copy(pipeline, tmp_path)
    snapshot = folder / CURRENT_FILE
    fp, as_of, tx = pipeline.features, AS_OF, pipeline.transactions
    if case == "other as-of date":
        as_of = AS_OF - dt.timedelta(days=7)
    elif case == "other lost_after_days":
        fp = fp.model_copy(update={"lost_after_days": 300})
    elif case == "other transactions":  # the same dates, one line fewer
        table = pq.read_table(tx)
        tx = tmp_path / "transactions.parquet"
        pq.write_table(table.slice(1), tx)
    elif case == "snapshot edited":
        pq.write_table(pq.read_table(snapshot).slice(1), snapshot)
    elif case == "no record":
        (folder / CURRENT_META_FILE).unlink()
    else:
        snapshot.unlink()
    out = tmp_path / "scores"
    with pytest.raises(DataError) as err:
        run_score(
            score_params().model_copy(update={"output_root": str(out)}),
            fp,
            ReportParams(),
            pipeline.engine,
            as_of=as_of,
            model=pipeline.train.model_dir,
            transactions=tx,
            snapshot=snapshot,
        )
    message = str(err.value)
    assert err.value.exit_code == 3
    assert message.startswith(f"{snapshot}: ") and expected in message, message
    assert "re-run `churnguard features` (`dvc repro features`)" in message
    assert not (out / as_of.isoformat() / "risk_list.csv").exists()
