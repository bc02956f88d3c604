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
    data["score"]["playbook"][1]["label"] = data["score"]["playbook"][0]["label"].upper()
    with pytest.raises(ConfigError, match="labels must be unique"):
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
