"""The command line: typed config errors, --help everywhere, exit codes, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churnguard.cli import app
from churnguard.config import load_params
from churnguard.errors import ConfigError
from churnguard.io import folder_lock

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def write_params(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_shipped_params_file_is_valid():
    p = load_params(REPO / "params.yaml")
    assert p.score.playbook and p.features.horizon_days > 0


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"train": {"num_leavs": 31}}, ["train.num_leavs", "num_leaves", "learning_rate"]),
        ({"features": {"horizon_days": "ninety"}}, ["features.horizon_days", "ninety"]),
        ({"trian": {}}, ["trian", "allowed keys", "train"]),
        (
            {"score": {"risk_bands": {"medium": 0.7, "high": 0.5}}},
            ["score.risk_bands", "must be below"],
        ),
        (
            {
                "score": {
                    "playbook": [
                        {
                            "name": "x",
                            "action": "a",
                            "channel": "c",
                            "owner": "boss",
                            "cost": 1,
                            "save_rate": 0.1,
                        }
                    ]
                }
            },
            ["score.playbook.0.owner", "account_manager"],
        ),
    ],
    ids=["typo in a key", "wrong type", "unknown section", "bands out of order", "bad owner"],
)
def test_config_errors_name_the_key_and_the_file_and_exit_2(tmp_path, data, needles):
    path = write_params(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    for needle in [str(path), *needles]:
        assert needle in str(err.value)
    result = runner.invoke(app, ["features", "--params", str(path)])
    assert result.exit_code == 2
    assert needles[0] in result.output


def test_missing_params_file_exits_2(tmp_path):
    result = runner.invoke(app, ["ingest", "--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "not found" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["generate", "--help"],
        ["ingest", "--help"],
        ["features", "--help"],
        ["train", "--help"],
        ["evaluate", "--help"],
        ["score", "--help"],
        ["report", "--help"],
        ["report", "crr", "--help"],
        ["report", "uplift", "--help"],
        ["outcomes", "--help"],
        ["outcomes", "import", "--help"],
        ["where", "--help"],
    ],
)
def test_every_command_has_help(command):
    result = runner.invoke(app, command)
    assert result.exit_code == 0 and "Usage" in result.output


def test_features_describe_prints_the_dictionary(tmp_path):
    result = runner.invoke(
        app, ["features", "--describe", "--params", str(write_params(tmp_path, {}))]
    )
    assert result.exit_code == 0 and "| `recency_days` | feature |" in result.output


def _score_params(tmp_path: Path, pipeline) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["engine"]["temp_directory"] = str(tmp_path / "duck")
    data["features"].update(
        input=str(pipeline.transactions), output_dir=pipeline.features.output_dir
    )
    data["score"].update(
        transactions=str(pipeline.transactions), output_root=str(tmp_path / "scores")
    )
    data["outcomes"]["ledger"] = str(tmp_path / "ledger")
    return write_params(tmp_path, data)


def test_score_json_summary_and_exit_codes(tmp_path, pipeline):
    params = _score_params(tmp_path, pipeline)
    args = [
        "score",
        "--params",
        str(params),
        "--model",
        pipeline.train.model_dir,
        "--as-of",
        "2024-12-31",
    ]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["status"] == "written" and summary["customers_scored"] > 0
    second = runner.invoke(app, [*args, "--json"])
    assert json.loads(second.stdout)["status"] == "up-to-date"
    with folder_lock(tmp_path / "scores" / "2024-12-31"):
        locked = runner.invoke(app, [*args, "--force"])
    assert locked.exit_code == 5 and "being written" in locked.output
    assert runner.invoke(app, [*args[:-2], "--as-of", "31/12/2024"]).exit_code == 2
    missing = runner.invoke(app, [*args[:3], "--model", str(tmp_path / "no-model")])
    assert missing.exit_code == 4 and "not a churnguard model folder" in missing.output


def test_score_reads_the_features_snapshot_only_when_it_matches(tmp_path, pipeline):
    params = _score_params(tmp_path, pipeline)
    snapshot = Path(pipeline.features.output_dir) / "current.parquet"
    args = ["score", "--params", str(params), "--model", pipeline.train.model_dir]
    ok = runner.invoke(app, [*args, "--snapshot", str(snapshot), "--as-of", "2024-12-31"])
    assert ok.exit_code == 0, ok.output
    stale = runner.invoke(app, [*args, "--snapshot", str(snapshot), "--as-of", "2024-12-30"])
    assert stale.exit_code == 3, stale.output
    assert "built for as-of 2024-12-31" in " ".join(stale.output.split())


def test_report_crr_prints_a_table(tmp_path, pipeline):
    params = _score_params(tmp_path, pipeline)
    out = tmp_path / "crr.csv"
    result = runner.invoke(
        app, ["report", "crr", "--params", str(params), "--period", "quarter", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "crr_pct" in result.output and out.exists()
    assert (
        runner.invoke(app, ["report", "crr", "--params", str(params), "--period", "week"]).exit_code
        == 2
    )
