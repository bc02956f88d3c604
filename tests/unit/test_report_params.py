"""The `report` settings managers' files depend on, and short action labels: refused with
the key named when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from churnguard.config import load_params, parse_params
from churnguard.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def shipped() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("report", "key"),
    [
        ({"currency": 'US"D'}, "report.currency"),
        ({"currency": "EUR\n"}, "report.currency"),
        ({"currency": "x" * 13}, "report.currency"),
        ({"language": "de"}, "report.language"),
        ({"due_within_days": 0}, "report.due_within_days"),
    ],
    ids=[
        "a quote cannot go into a number format",
        "a line break in the currency",
        "a currency longer than 12 characters",
        "a language without a catalogue",
        "actions due within zero days",
    ],
)
def test_bad_report_settings_are_refused_naming_the_key(report, key):
    data = shipped()
    data["report"].update(report)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        parse_params(data, "params.yaml")
    assert err.value.exit_code == 2


def test_report_defaults_keep_todays_behaviour():
    data = shipped()
    data["report"] = {}
    report = parse_params(data, "params.yaml").report
    assert (report.currency, report.language, report.due_within_days) == ("", "en", 7)


def test_two_rules_with_the_same_label_are_refused():
    data = shipped()
    data["score"]["playbook"][1]["label"] = data["score"]["playbook"][0]["label"]["en"].upper()
    with pytest.raises(ConfigError, match="labels must be unique"):
        parse_params(data, "params.yaml")


def test_two_rules_with_the_same_label_in_one_language_are_refused_naming_it():
    data = shipped()
    playbook = data["score"]["playbook"]
    playbook[1]["label"] = {**playbook[1]["label"], "fa": playbook[0]["label"]["fa"]}
    with pytest.raises(ConfigError, match="labels must be unique.*repeated in fa"):
        parse_params(data, "params.yaml")


def test_a_label_is_one_text_or_labels_by_language_and_falls_back_without_stopping():
    playbook = parse_params(shipped(), "params.yaml").score.playbook
    call = next(r for r in playbook if r.name == "personal_call")
    assert [call.label_in(x) for x in ("en", "ar", "fa")] == [
        "Personal call",
        "اتصال شخصي",
        "تماس شخصی",
    ]
    data = shipped()
    data["score"]["playbook"][0]["label"] = {"en": "Win-back call"}
    rule = parse_params(data, "params.yaml").score.playbook[0]
    assert rule.label_in("fa") == "Win-back call" and rule.short_label == "Win-back call"
    data["score"]["playbook"][0]["label"] = {"en": "Call", "fa": "x" * 41}
    with pytest.raises(ConfigError, match="fa label must be one line of 1 to 40"):
        parse_params(data, "params.yaml")


def test_a_rule_named_like_another_rules_label_is_refused():
    data = shipped()
    data["score"]["playbook"][0].pop("label")  # winback_call → "Winback call"
    data["score"]["playbook"][1]["label"] = "Winback call"
    with pytest.raises(ConfigError, match="labels must be unique"):
        parse_params(data, "params.yaml")


def test_a_label_on_two_lines_is_refused():
    data = shipped()
    data["score"]["playbook"][0]["label"] = "Call\nnow"
    with pytest.raises(ConfigError, match=r"score\.playbook\.0\.label"):
        parse_params(data, "params.yaml")


def test_the_shipped_playbook_has_a_short_label_for_every_rule():
    sp = load_params(REPO / "params.yaml").score
    labels = [r.label for r in sp.playbook]
    assert all(labels) and all(len(x) <= 40 for x in labels)
    assert sp.overflow.label
