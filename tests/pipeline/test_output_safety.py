"""Scheduled scoring never removes or overwrites what it did not write, and says why.

Each test builds the situation an operator (or someone with write access to the output
root) could create, runs the real scorer or CLI, and checks both the exit code and that
every byte that was there before is still there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churnguard.cli import app
from churnguard.config import ReportParams, load_params
from churnguard.errors import OutputError, RefusedTargetError
from churnguard.io import STAGING_MARKER, folder_lock, lock_path_for, new_staging_dir
from churnguard.score import run_score

REPO = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2024, 12, 31)
runner = CliRunner()


def run(pipeline, out_root: Path, **kw):
    sp = load_params(REPO / "params.yaml").score.model_copy(update={"output_root": str(out_root)})
    return run_score(
        sp,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=pipeline.train.model_dir,
        transactions=pipeline.transactions,
        **kw,
    )


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder`` (files by content, links by target, folders by name)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "link -> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


def write_params(tmp_path: Path, pipeline, **score) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["engine"]["temp_directory"] = str(tmp_path / "duck")
    data["features"].update(
        input=str(pipeline.transactions), output_dir=pipeline.features.output_dir
    )
    data["score"].update(
        transactions=str(pipeline.transactions), output_root=str(tmp_path / "scores"), **score
    )
    data["outcomes"]["ledger"] = str(tmp_path / "ledger")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def cli_score(params: Path, pipeline, *extra: str):
    return runner.invoke(
        app,
        [
            "score",
            "--params",
            str(params),
            "--model",
            pipeline.train.model_dir,
            "--as-of",
            AS_OF.isoformat(),
            *extra,
        ],
    )


@pytest.fixture()
def user_folder(tmp_path: Path) -> Path:
    """A folder someone keeps their own weekly exports and notes in."""
    scores = tmp_path / "shared"
    for week in ("2024-12-17", "2024-12-24"):
        (scores / week).mkdir(parents=True)
        (scores / week / "calls.xlsx").write_bytes(b"PK\x03\x04 not ours " + week.encode())
    (scores / "README").write_text("our team's notes\n", encoding="utf-8")
    return scores


def test_output_dir_pointing_at_a_users_folder_is_refused_and_left_byte_identical(
    pipeline, tmp_path, user_folder
):
    before = snapshot(user_folder)
    result = cli_score(write_params(tmp_path, pipeline), pipeline, "--output-dir", str(user_folder))
    assert result.exit_code == 2, result.output
    assert str(user_folder) in result.output and "not a churnguard output folder" in result.output
    assert snapshot(user_folder) == before
    assert not list(user_folder.parent.glob(".shared.*staging*"))  # refused before any work


@pytest.mark.parametrize("kind", ["file", "symlink to a folder", "dangling symlink"])
def test_output_dir_that_is_a_file_or_a_link_is_refused(pipeline, tmp_path, kind):
    target = tmp_path / "target"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    if kind == "file":
        target.write_text("a user's file")
    elif kind == "symlink to a folder":
        target.symlink_to(elsewhere, target_is_directory=True)
    else:
        target.symlink_to(tmp_path / "missing")
    before = snapshot(tmp_path)
    with pytest.raises(RefusedTargetError, match="target") as err:
        run(pipeline, tmp_path / "scores", as_of=AS_OF, output_dir=target)
    assert err.value.exit_code == 2
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(".target.lock")} == before


def test_a_churnguard_folder_with_a_foreign_file_is_refused(pipeline, tmp_path):
    out = tmp_path / "latest"
    run(pipeline, tmp_path, as_of=AS_OF, output_dir=out)
    (out / "my_notes.txt").write_text("calls made on Monday")
    before = snapshot(out)
    with pytest.raises(RefusedTargetError, match="my_notes.txt"):
        run(pipeline, tmp_path, as_of=AS_OF, output_dir=out, force=True)
    assert snapshot(out) == before


def test_own_folder_is_replaced_and_only_its_files_removed(pipeline, tmp_path):
    out = tmp_path / "latest"
    run(pipeline, tmp_path, as_of=AS_OF, output_dir=out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["written_by"] == "churnguard"
    assert set(manifest["files"]) == {
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
    } - {"manifest.json"}
    old_summary = (out / "summary.json").read_bytes()
    later = AS_OF + dt.timedelta(days=7)
    run(pipeline, tmp_path, as_of=later, output_dir=out)
    assert (out / "summary.json").read_bytes() != old_summary
    assert json.loads((out / "summary.json").read_text())["as_of"] == later.isoformat()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".latest")) == [
        ".latest.lock"
    ]


def test_an_empty_folder_may_be_used_as_the_target(pipeline, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert run(pipeline, tmp_path, as_of=AS_OF, output_dir=out)["status"] == "written"
    assert (out / "risk_list.csv").is_file()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_planted_lock_link_is_refused_and_its_target_untouched(pipeline, tmp_path, link):
    root = tmp_path / "scores"
    root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = lock_path_for(root / AS_OF.isoformat())
    if link == "symlink":
        lock.symlink_to(victim)
    else:
        os.link(victim, lock)
    with pytest.raises(RefusedTargetError, match="lock file") as err:
        run(pipeline, root, as_of=AS_OF)
    assert err.value.exit_code == 2
    assert victim.read_text() == "precious\n"
    assert not (root / AS_OF.isoformat()).exists()


def test_stale_staging_of_any_date_is_removed_but_not_a_live_one_nor_a_foreign_one(
    pipeline, tmp_path
):
    root = tmp_path / "scores"
    root.mkdir()
    killed = new_staging_dir(root / "2024-11-30")  # a run for another date that was killed
    (killed / "risk_list.csv").write_text("half written")
    live_target = root / "2024-12-03"
    foreign = root / ".2024-12-10.staging-mine"  # someone else's folder that looks alike
    foreign.mkdir()
    (foreign / "data.csv").write_text("not ours")
    with folder_lock(live_target):  # another run is writing this date right now
        live = new_staging_dir(live_target)
        run(pipeline, root, as_of=AS_OF)
        assert not killed.exists()
        assert live.is_dir() and (live / STAGING_MARKER).is_file()
    assert (foreign / "data.csv").read_text() == "not ours"


def test_a_foreign_previous_folder_in_the_way_of_the_swap_is_refused(pipeline, tmp_path):
    root = tmp_path / "scores"
    in_the_way = root / f".{AS_OF.isoformat()}.previous"
    in_the_way.mkdir(parents=True)
    (in_the_way / "keep.txt").write_text("keep")
    with pytest.raises(RefusedTargetError, match="did not write"):
        run(pipeline, root, as_of=AS_OF)
    assert (in_the_way / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("damage", ["emptied", "edited", "deleted"])
def test_up_to_date_check_verifies_file_digests(pipeline, tmp_path, damage):
    root = tmp_path / "scores"
    run(pipeline, root, as_of=AS_OF)
    out = root / AS_OF.isoformat()
    good = snapshot(out)
    assert run(pipeline, root, as_of=AS_OF)["status"] == "up-to-date"
    victim = next(iter(sorted((out / "by_manager").glob("*.csv"))))
    if damage == "emptied":
        victim.write_bytes(b"")
    elif damage == "edited":
        victim.write_bytes(victim.read_bytes().replace(b",", b";", 1))
    else:
        victim.unlink()
    assert run(pipeline, root, as_of=AS_OF)["status"] == "written"
    assert snapshot(out) == good  # the same bytes as the first run


def test_crr_in_the_report_stops_at_the_as_of_date(pipeline):
    from churnguard.score import _crr

    as_of = dt.date(2024, 6, 15)  # the data runs to the end of 2024
    table = _crr(pipeline.transactions, ReportParams(), pipeline.engine, as_of)
    assert table is not None and len(table) > 0
    assert max(table["period_end"]) <= as_of
    assert str(table["period"].iloc[-1]) == "2024-05"


# --------------------------------------------------------------------------- params mistakes


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "the file is empty"),
        ("# just a comment\n", "the file is empty"),
        ("engine:\n  threads: 2\n", "missing section(s) features, score"),
    ],
    ids=["empty file", "only a comment", "partial file"],
)
def test_an_empty_or_partial_params_file_is_refused(tmp_path, content, needle):
    params = tmp_path / "params.yaml"
    params.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["score", "--params", str(params), "--model", "models"])
    assert result.exit_code == 2, result.output
    assert needle in result.output and str(params) in result.output


def test_an_empty_playbook_is_refused_unless_allowed(pipeline, tmp_path):
    result = cli_score(
        write_params(tmp_path, pipeline, playbook=[]), pipeline, "--output-dir", str(tmp_path / "o")
    )
    assert result.exit_code == 2 and "score.playbook" in result.output
    assert not (tmp_path / "o").exists()
    ok = cli_score(
        write_params(tmp_path, pipeline, playbook=[], allow_empty_playbook=True),
        pipeline,
        "--output-dir",
        str(tmp_path / "o"),
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["customers_on_lists"] == 0


# --------------------------------------------------------------------------- disk full, read-only


@pytest.fixture()
def small_fs(tmp_path):
    """A real 8 MB tmpfs (root only; room for two copies of the lists): disk-full and read-only errors come from the kernel."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace')}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_exit_6_naming_the_path_and_the_lists_stay_intact(pipeline, small_fs):
    root = small_fs / "scores"
    run(pipeline, root, as_of=AS_OF)
    out = root / AS_OF.isoformat()
    before = snapshot(out)
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as fh:  # fill what is left (unbuffered: no flush on close)
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    with pytest.raises(OutputError, match="no space left") as err:
        run(pipeline, root, as_of=AS_OF, force=True)
    assert err.value.exit_code == 6 and str(small_fs) in str(err.value)
    assert snapshot(out) == before
    filler.unlink()  # space again: the next run cleans up what the failed one left
    run(pipeline, root, as_of=AS_OF, force=True)
    assert not [p for p in root.iterdir() if "staging" in p.name]


def test_read_only_output_is_exit_6_through_the_cli(pipeline, tmp_path, small_fs):
    root = small_fs / "scores"
    params = write_params(tmp_path, pipeline)
    data = yaml.safe_load(params.read_text(encoding="utf-8"))
    data["score"]["output_root"] = str(root)
    params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert cli_score(params, pipeline).exit_code == 0
    before = snapshot(root)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    result = cli_score(params, pipeline, "--force")
    assert result.exit_code == 6, result.output
    assert "Read-only file system" in result.output and str(root) in result.output
    assert snapshot(root) == before


# --------------------------------------------------------------------------- nothing left behind


def test_registry_model_copies_do_not_pile_up_in_the_temp_folder(pipeline, tmp_path, monkeypatch):
    """Scoring from the registry downloads the model; the copy is removed once read."""
    from churnguard import registry
    from churnguard.config import EvaluateParams
    from churnguard.evaluate import run_evaluate
    from churnguard.score import load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    name = f"cg-{uuid.uuid4().hex[:8]}"
    shutil.copytree(pipeline.train.model_dir, tmp_path / "models")
    tp = pipeline.train.model_copy(
        update={"registered_model_name": name, "model_dir": str(tmp_path / "models")}
    )
    ev = EvaluateParams(model_dir=tp.model_dir)
    registry.log_training_run(tp, pipeline.summary, "synthetic")
    assert registry.gate_and_register(tp, ev, run_evaluate(ev)).promote
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the temp folder this run uses
    loaded = load_model(None, name)
    assert loaded.version == "1" and len(loaded.model.features) > 5
    # the lists will say how good it is: the gate's test metrics come with it from its run
    assert loaded.evaluation is not None and {"model", "logreg", "rfm"} <= set(loaded.evaluation)
    assert 0.5 < loaded.evaluation["model"]["roc_auc"] <= 1
    assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------- hostile names, end to end

HOSTILE_MANAGERS = {
    "Sara Ahmadi": "Sara\rAhmadi",  # a CR inside a manager's name
    "Layla Haddad": "营销部" * 30,  # 90 CJK characters: 270 bytes
    "Emre Yılmaz": "CON.txt",  # reserved on Windows with an extension
    "O'Brien / North desk": "A/B",  # cleans to the same stem as the next one
    "مریم رضایی": "A_B",
}


def _hostile_transactions(pipeline, folder: Path) -> tuple[Path, dict[str, str]]:
    """The fixture's transactions with hostile customer ids, names and manager names."""
    import pandas as pd

    tx = pd.read_parquet(pipeline.transactions)
    tx["account_manager"] = tx["account_manager"].replace(HOSTILE_MANAGERS)
    ids = sorted(tx["customer_id"].unique())[:6]
    new_ids = dict(zip(ids, ["=2*21", "+31 6 1234", "-7", "@SUM(A1)", " =1+1", "007"], strict=True))
    tx["customer_id"] = tx["customer_id"].replace(new_ids)
    first = tx["customer_id"] == "=2*21"
    tx.loc[first, "customer_name"] = "Eve\r=2*21"
    tx.loc[tx["customer_id"] == "-7", "customer_name"] = "\t@cmd|' /C calc'!A0"
    path = folder / "hostile.parquet"
    tx.to_parquet(path, index=False)
    return path, new_ids


def test_hostile_names_and_ids_round_trip_through_two_weekly_runs(pipeline, tmp_path):
    import csv
    import io

    from churnguard.csvsafe import read_excel_csv
    from churnguard.scoring import RISK_LIST_SCHEMA

    tx, new_ids = _hostile_transactions(pipeline, tmp_path)
    root = tmp_path / "scores"
    sp = load_params(REPO / "params.yaml").score.model_copy(update={"output_root": str(root)})
    weeks = [AS_OF - dt.timedelta(days=7), AS_OF]
    indexes = []
    for week in weeks:
        summary = run_score(
            sp,
            pipeline.features,
            ReportParams(),
            pipeline.engine,
            as_of=week,
            model=pipeline.train.model_dir,
            transactions=tx,
        )
        assert "previous_list_ignored" not in summary
        indexes.append(summary["manager_files"])
        out = root / week.isoformat()
        raw = (out / "risk_list.csv").read_bytes()
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert len(rows) == summary["customers_scored"] + 1  # no row split by a CR
        got_ids = {r[0] for r in rows[1:]}
        assert set(new_ids.values()) <= got_ids  # ids exactly as in the data, never rewritten
        back = read_excel_csv(out / "risk_list.csv", RISK_LIST_SCHEMA)
        assert "Eve\r=2*21" in set(back["customer_name"]) and "Sara\rAhmadi" in set(
            back["account_manager"]
        )
        eve = rows[1 + list(back["customer_id"]).index("=2*21")]
        assert eve[1] == "Eve\r=2*21"  # the CR stays inside its quoted cell
        tab = rows[1 + list(back["customer_id"]).index("-7")]
        assert tab[1] == "'\t@cmd|' /C calc'!A0"  # neutralised for spreadsheets...
        assert "\t@cmd|' /C calc'!A0" in set(
            back["customer_name"]
        )  # ...and restored on reading back
        for name, rel in summary["manager_files"].items():
            path = out / rel
            assert path.is_file() and len(path.name.encode()) <= 100, name
            assert path.name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}
    # week 2 read week 1 back: the same customers are not "new", nobody is a phantom "off list"
    assert indexes[0] == indexes[1]  # the same manager -> the same file, week after week
    assert indexes[1]["A_B"] == "by_manager/A_B.csv" and indexes[1]["A/B"].startswith(
        "by_manager/A_B-"
    )
    back = read_excel_csv(root / AS_OF.isoformat() / "risk_list.csv", RISK_LIST_SCHEMA)
    assert "first list" not in set(back["change"])
    summary = json.loads((root / AS_OF.isoformat() / "summary.json").read_text(encoding="utf-8"))
    assert summary["previous_list"] == weeks[0].isoformat()
    assert summary["ids_spreadsheets_may_misread"] == 5  # every formula-like id, counted
    assert set(summary["manager_files"]) == set(tx_managers(tx))


def tx_managers(path: Path) -> set[str]:
    import pandas as pd

    return set(pd.read_parquet(path, columns=["account_manager"])["account_manager"])


def test_a_malformed_previous_list_is_reported_and_ignored(pipeline, tmp_path):
    root = tmp_path / "scores"
    week1 = AS_OF - dt.timedelta(days=7)
    run(pipeline, root, as_of=week1)
    old = root / week1.isoformat() / "risk_list.csv"
    old.write_bytes(old.read_bytes().replace(b"high", b'"high', 1))  # an unterminated quote
    summary = run(pipeline, root, as_of=AS_OF)
    assert summary["status"] == "written" and summary["previous_list"] is None
    assert "risk_list.csv" in summary["previous_list_ignored"]
    saved = json.loads((root / AS_OF.isoformat() / "summary.json").read_text(encoding="utf-8"))
    assert saved["previous_list_ignored"] == summary["previous_list_ignored"]


def test_report_crr_output_uses_the_spreadsheet_safe_writer(pipeline, tmp_path):
    import csv
    import io

    params = write_params(tmp_path, pipeline)
    out = tmp_path / "crr.csv"
    result = runner.invoke(app, ["report", "crr", "--params", str(params), "--output", str(out)])
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0][:2] == ["period", "period_start"] and len(rows) > 12
