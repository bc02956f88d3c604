"""Who reads what, checked before any work: action texts per language with a fallback,
manager languages, currency codes and the Persian calendar; the shipped playbooks carry
Arabic and Persian texts written with each language's own letters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from churnguard.config import (
    LANGUAGES,
    ActionRule,
    OverflowAction,
    ReportParams,
    load_params,
    parse_params,
)
from churnguard.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
RULE = {
    "name": "personal_call",
    "channel": "phone",
    "owner": "account_manager",
    "cost": 20,
    "save_rate": 0.3,
}


def params(action, report=None, languages=None, overflow=None) -> dict:
    score = {"playbook": [{**RULE, "action": action}]}
    if languages is not None:
        score["manager_languages"] = languages
    if overflow is not None:
        score["overflow"] = overflow
    return {"score": score, "report": report or {}}


def test_an_action_is_one_text_or_texts_by_language():
    plain = ActionRule(**RULE, action="Call")
    assert [plain.action_in(lang) for lang in LANGUAGES] == ["Call"] * 3
    rule = ActionRule(**RULE, action={"en": "Call", "fa": "تماس بگیرید"})
    assert rule.action_in("fa") == "تماس بگیرید"
    assert rule.action_in("ar", fallback="en") == "Call"
    with pytest.raises(ConfigError) as err:
        rule.action_in("ar")
    text = str(err.value)
    assert "'personal_call'" in text and "'ar'" in text and "report.fallback_language" in text
    with pytest.raises(ConfigError, match="fallback_language is fa"):
        ActionRule(**RULE, action={"en": "Call"}).action_in("ar", fallback="fa")


@pytest.mark.parametrize(
    ("action", "needles"),
    [
        ({"en": "Call", "de": "Anrufen"}, ["personal_call", "unknown language 'de'", "en, ar, fa"]),
        ({}, ["personal_call", "give a text"]),
        ({"en": "Call", "fa": "  "}, ["personal_call", "fa text is empty"]),
        ("", ["personal_call", "empty"]),
    ],
    ids=["unknown language", "no text at all", "an empty translation", "an empty text"],
)
def test_bad_action_texts_name_the_rule(action, needles):
    with pytest.raises(ConfigError) as err:
        parse_params(params(action), "p.yaml")
    for needle in ["p.yaml", "score.playbook.0.action", *needles]:
        assert needle in str(err.value)


def test_a_reader_without_a_text_stops_the_run_naming_rule_language_and_manager():
    data = params({"en": "Call", "ar": "اتصل"}, languages={"Sara Ahmadi": "fa"})
    with pytest.raises(ConfigError) as err:
        parse_params(data, "p.yaml", require=("score",))
    text = str(err.value)
    for needle in ["p.yaml", "'personal_call'", "'fa'", "manager 'Sara Ahmadi'", "fa: ..."]:
        assert needle in text
    # the summary report's language is a reader too
    with pytest.raises(ConfigError, match="report.language"):
        parse_params(params({"en": "Call"}, report={"language": "ar"}), "p.yaml")
    # the overflow action as well
    with pytest.raises(ConfigError, match=r"score.overflow \('overflow_email'\)"):
        parse_params(params("Call", languages={"X": "ar"}, overflow={"action": {"en": "Mail"}}))
    # a fallback language makes it a choice, not a mistake
    ok = parse_params({**data, "report": {"fallback_language": "en"}}, "p.yaml")
    assert ok.score.playbook[0].action_in("fa", ok.report.fallback_language) == "Call"


def test_manager_languages_are_checked_by_name():
    with pytest.raises(ConfigError) as err:
        parse_params(params("Call", languages={"Sara Ahmadi": "fa", "Tom": "de"}), "p.yaml")
    assert "manager 'Tom'" in str(err.value) and "unknown language 'de'" in str(err.value)
    ok = parse_params(params("Call", languages={"مریم رضایی": "fa"}))
    assert ok.score.manager_languages == {"مریم رضایی": "fa"}


@pytest.mark.parametrize(
    ("report", "needles"),
    [
        ({"language": "de"}, ["report.language", "'en', 'ar' or 'fa'"]),
        ({"currency": "euro"}, ["report.currency", "ISO 4217"]),
        ({"currency": "eur"}, ["report.currency", "upper case"]),
        ({"calendar": "lunar"}, ["report.calendar", "gregorian", "persian"]),
        ({"calendar": "persian"}, ["report.calendar is persian", "nobody reads Persian"]),
    ],
    ids=["unknown language", "not a currency", "lower-case code", "no such calendar", "no reader"],
)
def test_report_format_keys_are_checked(report, needles):
    with pytest.raises(ConfigError) as err:
        parse_params(params("Call", report=report), "p.yaml")
    for needle in ["p.yaml", *needles]:
        assert needle in str(err.value)


def test_good_format_keys():
    rp = parse_params(
        params("Call", report={"currency": "IRR", "calendar": "persian", "native_digits": True})
        | {"score": {**params("Call")["score"], "manager_languages": {"Maryam": "fa"}}}
    ).report
    assert (rp.currency, rp.calendar, rp.native_digits, rp.language) == (
        "IRR",
        "persian",
        True,
        "en",
    )
    assert ReportParams(currency="").currency == ""
    assert OverflowAction().action_in("fa").startswith("Personal email")


@pytest.mark.parametrize("path", ["params.yaml", "configs/cdnow.yaml"])
def test_the_shipped_playbooks_speak_arabic_and_persian(path):
    p = load_params(REPO / path, require=("score", "report"))
    for rule in [*p.score.playbook, p.score.overflow]:
        assert isinstance(rule.action, dict) and set(rule.action) == set(LANGUAGES), rule.name
        assert not set(rule.action["fa"]) & set("\u064a\u0643"), f"{rule.name}: Arabic ي/ك in fa"
        assert not set(rule.action["ar"]) & set("\u06cc\u06a9"), f"{rule.name}: Persian ی/ک in ar"
        assert len(rule.action["ar"]) <= 1.4 * len(rule.action["en"]) + 20, rule.name
        assert len(rule.action["fa"]) <= 1.4 * len(rule.action["en"]) + 20, rule.name
    # with no fallback, every manager may read any of the three
    raw = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    raw["score"]["manager_languages"] = {"A": "ar", "B": "fa"}
    parse_params(raw, path, require=("score", "report"))
