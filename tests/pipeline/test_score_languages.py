"""One real scoring run of the synthetic default writes each manager's list in their own
language (report.language for the rest), while every column a program reads back — codes,
numbers, ISO dates — stays exactly what the English run writes."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from churnguard.config import ReportParams, load_params
from churnguard.csvsafe import read_excel_csv
from churnguard.i18n import LEFT_LIST_ACTIONS, left_list_action
from churnguard.score import run_score
from churnguard.scoring import RISK_LIST_SCHEMA

REPO = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2024, 12, 31)
TEXTS = ["recommended_action", "reasons"]
LATIN = re.compile(r"[A-Za-z]")
ASCII_DIGIT = re.compile(r"[0-9]")


def run(pipeline, root: Path, rp: ReportParams, languages: dict[str, str]) -> Path:
    params = load_params(REPO / "params.yaml")
    sp = params.score.model_copy(update={"output_root": str(root), "manager_languages": languages})
    run_score(
        sp,
        pipeline.features,
        rp,
        pipeline.engine,
        as_of=AS_OF,
        model=pipeline.train.model_dir,
        transactions=pipeline.transactions,
    )
    return root / AS_OF.isoformat()


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def runs(pipeline, tmp_path_factory):
    english = run(pipeline, tmp_path_factory.mktemp("en"), ReportParams(), {})
    managers = sorted(read(english / "risk_list.csv")["account_manager"].unique())
    assert len(managers) >= 3
    languages = {managers[0]: "fa", managers[1]: "ar"}
    mixed = run(
        pipeline,
        tmp_path_factory.mktemp("mixed"),
        ReportParams(),
        {**languages, "Nobody Byname": "fa"},  # a typo: warned about, not fatal
    )
    persian = run(
        pipeline,
        tmp_path_factory.mktemp("fa"),
        ReportParams(language="fa", native_digits=True, calendar="persian", currency="IRR"),
        {managers[2]: "en"},
    )
    return english, mixed, persian, managers, languages


def manager_file(folder: Path, manager: str) -> Path:
    index = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["manager_files"]
    return folder / index[manager]


def playbook_texts(language: str) -> set[str]:
    sp = load_params(REPO / "params.yaml").score
    return {r.action_in(language) for r in [*sp.playbook, sp.overflow]} | {
        left_list_action(c, language) for c in LEFT_LIST_ACTIONS
    }


def test_managers_read_their_language_and_everything_else_is_unchanged(runs):
    english, mixed, _, managers, languages = runs
    # risk_list.csv is in report.language (en): byte for byte the English run's
    assert (mixed / "risk_list.csv").read_bytes() == (english / "risk_list.csv").read_bytes()
    for manager in managers:
        ours, theirs = manager_file(mixed, manager), manager_file(english, manager)
        assert ours.name == theirs.name
        if manager not in languages:
            assert ours.read_bytes() == theirs.read_bytes(), manager
            continue
        lang = languages[manager]
        got, plain = read(ours), read(theirs)
        assert list(got.columns) == list(plain.columns)  # machine column names
        pd.testing.assert_frame_equal(got.drop(columns=TEXTS), plain.drop(columns=TEXTS))
        assert set(got["recommended_action"]) <= playbook_texts(lang), manager
        ranked = got[got["rank"] != ""]
        assert len(ranked) and (ranked["reasons"] != "").all()
        for text in [*got["recommended_action"], *ranked["reasons"]]:
            assert not LATIN.search(text), (manager, text)  # every word translated
        script = "\u06cc" if lang == "fa" else "\u064a"  # Persian ی / Arabic ي
        assert any(script in t for t in ranked["reasons"]), manager


def test_a_name_that_matches_no_manager_is_warned_about(runs):
    _, mixed, persian, _, _ = runs
    warnings = json.loads((mixed / "summary.json").read_text(encoding="utf-8"))["warnings"]
    assert any("'Nobody Byname'" in w and "score.manager_languages" in w for w in warnings)
    warnings = json.loads((persian / "summary.json").read_text(encoding="utf-8"))["warnings"]
    assert not any("manager_languages" in w for w in warnings)


def test_report_language_persian_with_native_digits_keeps_numbers_machine_readable(runs):
    english, _, persian, managers, _ = runs
    ours = read_excel_csv(persian / "risk_list.csv", RISK_LIST_SCHEMA)
    theirs = read_excel_csv(english / "risk_list.csv", RISK_LIST_SCHEMA)
    # every number, code and ISO date as the English run wrote it; only the two texts differ
    pd.testing.assert_frame_equal(ours.drop(columns=TEXTS), theirs.drop(columns=TEXTS))
    raw = read(persian / "risk_list.csv")
    for column in ("churn_risk_pct", "value_at_risk", "expected_net_benefit", "p_churn"):
        assert raw[column].str.fullmatch(r"-?[0-9.]*").all(), column
    assert raw["last_purchase_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    listed = raw[raw["rank"] != "0"]
    assert set(listed["recommended_action"]) <= playbook_texts("fa")
    explained = listed[listed["reasons"] != ""]
    assert len(explained)
    for text in explained["reasons"]:
        assert not LATIN.search(text) and not ASCII_DIGIT.search(text), text
    # native digits in what people read (a reason such as "bought only once" has no number)
    assert explained["reasons"].str.contains("[۰-۹]").mean() > 0.5
    # the manager mapped back to English reads English
    tom = read(manager_file(persian, managers[2]))
    assert set(tom["recommended_action"]) <= playbook_texts("en")
    assert tom.loc[tom["rank"] != "", "reasons"].str.contains("days").any()
