"""The outcome ledger on real scoring runs: lists recorded with both arms, held-out customers
on no manager's file, episodes kept across lists, workbooks and CRM exports imported and
validated, re-imports that change nothing, and the uplift report through the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnguard import ledger
from churnguard.cli import app
from churnguard.config import OutcomesParams, ReportParams, load_params
from churnguard.csvsafe import read_excel_csv, write_excel_csv_atomic
from churnguard.feedback import run_import
from churnguard.io import dumps_json
from churnguard.score import _previous_list, run_score
from churnguard.scoring import RISK_LIST_SCHEMA

# columns lists written before the control group lack
RISK_LIST_ADDED = ("action", "arm", "scored_by")

REPO = Path(__file__).resolve().parents[2]
D1, D2 = dt.date(2024, 8, 30), dt.date(2024, 10, 1)  # 32 days apart: episodes carry over
runner = CliRunner()


def score_params():
    return load_params(REPO / "params.yaml").score.model_copy(update={"control_share": 0.2})


def score(pipeline, root: Path, day: dt.date, **kw):
    return run_score(
        kw.pop("sp", score_params()).model_copy(update={"output_root": str(root / "scores")}),
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        as_of=day,
        model=pipeline.train.model_dir,
        transactions=pipeline.transactions,
        ledger=root / "ledger",
        **kw,
    )


@pytest.fixture(scope="module")
def scored(pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger")
    first = score(pipeline, root, D1)
    second = score(pipeline, root, D2)
    return root, first, second


@pytest.fixture
def project(scored, pipeline, tmp_path):
    """A copy of the scored ledger and a params file pointing at it (imports change it)."""
    root, _, _ = scored
    shutil.copytree(root / "ledger", tmp_path / "ledger")
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["features"]["horizon_days"] = pipeline.features.horizon_days
    data["score"]["transactions"] = str(pipeline.transactions)
    data["engine"] = pipeline.engine.model_dump()
    data["outcomes"] = {"ledger": str(tmp_path / "ledger"), "uplift_dir": str(tmp_path / "uplift")}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return tmp_path, params


def risk_list(root: Path, day: dt.date) -> pd.DataFrame:
    return read_excel_csv(root / "scores" / day.isoformat() / "risk_list.csv", RISK_LIST_SCHEMA)


def test_the_list_is_recorded_with_both_arms_as_risk_list_shows_them(scored):
    root, first, _ = scored
    rows = ledger.read_lists(root / "ledger", [D1])
    risk = risk_list(root, D1)
    acting = risk[risk["arm"] != ""].set_index("customer_id")
    assert (
        len(rows)
        == len(acting)
        == first["customers_on_lists"] + first["control_group"]["customers"]
    )
    mine = rows.set_index("customer_id")
    assert mine["arm"].tolist() == acting.loc[mine.index, "arm"].tolist()
    assert mine["action"].tolist() == acting.loc[mine.index, "action"].tolist()
    share = (rows["arm"] == "control").mean()
    assert 0.15 < share < 0.25  # score.control_share 0.2
    assert first["control_group"]["customers"] == int((rows["arm"] == "control").sum())


def test_held_out_customers_are_on_no_managers_file(scored):
    root, _, _ = scored
    for day in (D1, D2):
        risk = risk_list(root, day)
        control = set(risk.loc[risk["arm"] == "control", "customer_id"])
        assert control
        assert (risk.loc[risk["arm"] == "control", "rank"] == 0).all()
        assert (risk.loc[risk["arm"] == "control", "recommended_action"] == "").all()
        for path in (root / "scores" / day.isoformat() / "by_manager").glob("*.csv"):
            assert not control & set(pd.read_csv(path, dtype=str)["customer_id"])


def test_a_customer_treated_last_week_and_held_out_now_is_not_on_the_managers_file(
    pipeline, tmp_path
):
    """Without a ledger nothing carries the arm over, so some customers on last week's
    lists are held out now: they must not come back as "off list" rows either."""
    sp = score_params().model_copy(update={"control_share": 0.3})
    for day in (D1, D2):
        run_score(
            sp.model_copy(update={"output_root": str(tmp_path)}),
            pipeline.features,
            ReportParams(),
            pipeline.engine,
            as_of=day,
            model=pipeline.train.model_dir,
            transactions=pipeline.transactions,
        )
    before = read_excel_csv(tmp_path / D1.isoformat() / "risk_list.csv", RISK_LIST_SCHEMA)
    now = read_excel_csv(tmp_path / D2.isoformat() / "risk_list.csv", RISK_LIST_SCHEMA)
    flipped = set(before.loc[before["rank"] > 0, "customer_id"]) & set(
        now.loc[now["arm"] == "control", "customer_id"]
    )
    assert len(flipped) > 10
    for path in (tmp_path / D2.isoformat() / "by_manager").glob("*.csv"):
        assert not flipped & set(pd.read_csv(path, dtype=str)["customer_id"])


def test_a_customer_keeps_their_arm_through_an_episode(scored):
    root, _, _ = scored
    rows = ledger.read_lists(root / "ledger")
    first, second = rows[rows["list_date"] == D1], rows[rows["list_date"] == D2]
    both = first.merge(second, on="customer_id", suffixes=("_1", "_2"))
    assert len(both) > 100
    assert (both["arm_1"] == both["arm_2"]).all()
    assert (both["episode_start_2"] == D1).all()
    fresh = second[~second["customer_id"].isin(first["customer_id"])]
    assert (fresh["episode_start"] == D2).all()


def test_a_rerun_changes_nothing_and_a_lost_record_is_written_again(pipeline, scored):
    root, _, _ = scored
    path = ledger.list_file(root / "ledger", D2)
    before = path.read_bytes()
    assert score(pipeline, root, D2)["status"] == "up-to-date"
    assert path.read_bytes() == before
    path.unlink()
    assert score(pipeline, root, D2)["status"] == "written"
    assert path.read_bytes() == before


def test_an_experiment_records_nothing(pipeline, tmp_path):
    summary = score(pipeline, tmp_path, D1, record=False)
    assert summary["control_group"]["customers"] > 0
    assert not (tmp_path / "ledger").exists() or not ledger.list_dates(tmp_path / "ledger")


def workbook(path: Path, rows: list[list]) -> Path:
    """A manager's workbook as the contract says: sheet List, header in row 1, typed cells,
    other display columns around the ones import reads."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "List"
    header = ["rank", "customer_name", "list_date", "customer_id", "action", "reasons"]
    ws.append([*header, "contacted_on", "outcome", "note"])
    for i, (day, cid, action, contacted, outcome, note) in enumerate(rows, start=1):
        ws.append([i, "name", day, cid, action, "why", contacted, outcome, note])
        r = ws.max_row
        ws.cell(r, 3).number_format = "yyyy-mm-dd"
        if isinstance(contacted, dt.date):
            ws.cell(r, 7).number_format = "yyyy-mm-dd"
    sheet = wb.create_sheet("Actions")
    sheet.append(["action", "wording"])
    wb.save(path)
    return path


def treated_manual(folder: Path, day: dt.date) -> pd.DataFrame:
    rows = ledger.read_lists(folder, [day])
    return rows[(rows["arm"] == "treated") & (rows["owner"] == "account_manager")]


def ledger_files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_filled_workbook_is_imported_and_bad_rows_are_named(project):
    folder, params = project
    led = folder / "ledger"
    t = treated_manual(led, D1).head(3)
    held = ledger.read_lists(led, [D1]).query("arm == 'control'").iloc[0]
    book = workbook(
        folder / "Sara Ahmadi.xlsx",
        [
            [
                D1,
                t.customer_id.iloc[0],
                t.action.iloc[0],
                D1 + dt.timedelta(days=2),
                "reached",
                "ok",
            ],
            [D1, t.customer_id.iloc[1], t.action.iloc[1], D1 + dt.timedelta(days=3), "Saved", None],
            [D1, t.customer_id.iloc[2], t.action.iloc[2], None, None, None],  # not worked yet
            [D1, held.customer_id, held.action, D1 + dt.timedelta(days=1), "reached", None],
            [D1, t.customer_id.iloc[0], "winback_call", D1, "reached", None],
            [D1, "NOBODY", "personal_call", D1, "reached", None],
        ],
    )
    result = runner.invoke(app, ["outcomes", "import", str(book), "--params", str(params)])
    assert result.exit_code == 3, result.output
    assert "3 row(s) rejected" in result.output and "the other rows were recorded" in result.output
    current = ledger.current_outcomes(led)
    assert sorted(current["outcome"]) == ["reached", "saved"]
    rejects = next((led / "rejects").glob("Sara Ahmadi-*.csv"))
    table = read_excel_csv(rejects, {c: "str" for c in ("file", "row", "column", "reason")})
    assert table[["row", "column", "reason"]].values.tolist() == [
        ["5", "customer_id", "control_customer"],
        ["6", "action", "wrong_action"],
        ["7", "customer_id", "unknown_customer"],
    ]
    assert (table["file"] == str(book)).all()


def test_reimporting_the_same_file_changes_nothing(project):
    folder, params = project
    led = folder / "ledger"
    t = treated_manual(led, D1).head(2)
    rows = [
        [D1, r.customer_id, r.action, D1 + dt.timedelta(days=1), "reached", None]
        for r in t.itertuples()
    ]
    book = workbook(folder / "book.xlsx", rows)
    op = OutcomesParams(ledger=str(led))
    first = run_import([book], op, 90)
    assert first["totals"]["new"] == 2
    before = ledger_files(led)
    again = run_import([book], op, 90)
    assert again["totals"] == {**first["totals"], "new": 0, "unchanged": 2}
    assert ledger_files(led) == before


def test_a_later_outcome_wins_and_the_earlier_one_stays_in_the_history(project):
    folder, _ = project
    led = folder / "ledger"
    r = treated_manual(led, D1).iloc[0]
    op = OutcomesParams(ledger=str(led))
    contact = D1 + dt.timedelta(days=1)
    run_import(
        [
            workbook(
                folder / "a.xlsx",
                [[D1, r.customer_id, r.action, contact, "no answer", "try again"]],
            )
        ],
        op,
        90,
    )
    later = run_import(
        [workbook(folder / "b.xlsx", [[D1, r.customer_id, r.action, None, "saved", None]])], op, 90
    )
    assert later["totals"]["changed"] == 1
    now = ledger.current_outcomes(led).set_index("customer_id").loc[r.customer_id]
    assert (now["outcome"], now["note"], now["contacted_on"]) == ("saved", "try again", contact)
    history = pd.concat(pd.read_parquet(p) for p in sorted((led / "imports").glob("*.parquet")))
    assert history["outcome"].tolist() == ["no answer", "saved"]


def test_the_crm_csv_is_accepted_with_as_of_for_the_list_date(project):
    folder, params = project
    led = folder / "ledger"
    r = treated_manual(led, D2).iloc[0]
    path = folder / "crm.csv"
    path.write_text(
        "as_of,customer_id,action,contacted_on,outcome\r\n"
        f"{D2},{r.customer_id},{r.action},{D2 + dt.timedelta(days=4)},wrong_contact\r\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["outcomes", "import", str(path), "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert ledger.current_outcomes(led)["outcome"].tolist() == ["wrong contact"]


@pytest.mark.parametrize(
    "header, needle",
    [
        ("list_date,customer_id,action,contacted_on\r\n", "missing column(s) ['outcome']"),
        (
            "as_of,list_date,customer_id,action,contacted_on,outcome\r\n",
            "both 'list_date' and 'as_of'",
        ),
    ],
    ids=["a missing column", "two list-date columns"],
)
def test_a_file_that_cannot_be_read_stops_before_anything_is_written(project, header, needle):
    folder, params = project
    good = workbook(folder / "good.xlsx", [])
    bad = folder / "bad.csv"
    bad.write_text(header, encoding="utf-8")
    before = ledger_files(folder / "ledger")
    result = runner.invoke(
        app, ["outcomes", "import", str(good), str(bad), "--params", str(params)]
    )
    assert result.exit_code == 3 and needle in result.output and str(bad) in result.output
    assert ledger_files(folder / "ledger") == before


def test_import_without_a_ledger_setting_is_a_config_error(project):
    folder, params = project
    data = yaml.safe_load(params.read_text(encoding="utf-8"))
    data["outcomes"]["ledger"] = None
    params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(
        app, ["outcomes", "import", str(folder / "x.csv"), "--params", str(params)]
    )
    assert result.exit_code == 2 and "outcomes.ledger" in result.output


def test_a_list_with_outcomes_is_kept_when_its_date_is_scored_again(
    pipeline, scored, tmp_path, caplog
):
    root, _, _ = scored
    shutil.copytree(root / "ledger", tmp_path / "ledger")
    r = treated_manual(tmp_path / "ledger", D1).iloc[0]
    book = workbook(tmp_path / "b.xlsx", [[D1, r.customer_id, r.action, D1, "reached", None]])
    run_import([book], OutcomesParams(ledger=str(tmp_path / "ledger")), 90)
    before = ledger.list_file(tmp_path / "ledger", D1).read_bytes()
    score(pipeline, tmp_path, D1, force=True)  # the same list again (dvc repro --force)
    assert "keeps the list" not in caplog.text
    other = score_params().model_copy(update={"manager_capacity_per_week": 3})
    score(pipeline, tmp_path, D1, sp=other)
    assert "keeps the list managers worked" in caplog.text
    assert ledger.list_file(tmp_path / "ledger", D1).read_bytes() == before


def test_the_uplift_report_measures_lists_whose_window_has_passed(project):
    folder, params = project
    result = runner.invoke(app, ["report", "uplift", "--params", str(params)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(
        folder / "uplift" / "uplift.csv", encoding="utf-8-sig", keep_default_na=False
    )
    per_list = table[table["scope"] == "list"]
    assert set(per_list["list_date"]) == {D1.isoformat(), D2.isoformat()}
    pooled = table[table["scope"] == "pooled"].set_index("action")
    rows = ledger.read_lists(folder / "ledger")
    entries = rows[rows["list_date"] == rows["episode_start"]]
    assert pooled.loc["(all actions)", "n_treated"] == (entries["arm"] == "treated").sum()
    assert pooled.loc["(all actions)", "n_control"] == (entries["arm"] == "control").sum()
    html = (folder / "uplift" / "uplift.html").read_bytes()
    again = runner.invoke(app, ["report", "uplift", "--params", str(params), "-q"])
    assert again.exit_code == 0 and (folder / "uplift" / "uplift.html").read_bytes() == html


def test_an_old_list_without_arm_or_action_still_gives_change_statuses(tmp_path):
    folder = tmp_path / "2024-01-01"
    old = pd.DataFrame(
        {c: pd.Series(dtype="object") for c in RISK_LIST_SCHEMA if c not in RISK_LIST_ADDED}
    )
    write_excel_csv_atomic(folder / "risk_list.csv", old)
    (folder / "manifest.json").write_text(
        dumps_json({"written_by": "churnguard", "files": {"risk_list.csv": "x"}}), encoding="utf-8"
    )
    day, prev, error = _previous_list(tmp_path, dt.date(2024, 2, 1))
    assert (day, error) == (dt.date(2024, 1, 1), None) and prev is not None
