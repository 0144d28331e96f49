"""Tests of the `dlforge` command line: user errors and a start-up that skips TensorFlow.

No test here runs a pipeline: every `run` command line is rejected before the pipeline starts.
The start-up checks run a fresh interpreter of the same environment in a subprocess.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_dlforge_home_variable(monkeypatch):
    monkeypatch.delenv("DLFORGE_HOME", raising=False)


def _error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def _assert_one_error_line_naming(lines: list[str], named: str) -> None:
    assert len(lines) == 1, lines
    assert lines[0].startswith("dlforge: error:")
    assert named in lines[0]


def test_run_of_an_unknown_pipeline_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["run", "images", "--home", str(tmp_path)])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), "'images'")


def test_run_with_an_unknown_model_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["run", "digits", "--model", "transformer", "--home", str(tmp_path)])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), "'transformer'")


def test_run_with_a_missing_config_file_is_a_usage_error(tmp_path, capsys):
    path = str(tmp_path / "missing.toml")

    code = cli.main(["run", "digits", "--config", path, "--home", str(tmp_path)])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), path)


def test_run_with_an_unknown_config_key_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "dlforge.toml"
    path.write_text("[trainer]\nlearning_rate = 0.1\n")

    code = cli.main(["run", "digits", "--config", str(path), "--home", str(tmp_path)])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), "'learning_rate'")


def test_runs_on_a_home_without_metadata_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["runs", "--home", str(tmp_path)])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), str(tmp_path / "metadata.sqlite"))


def test_an_unknown_option_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["runs", "--home", str(tmp_path), "--colour"])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), "--colour")


def test_a_missing_command_is_a_usage_error(capsys):
    code = cli.main([])

    assert code == 2
    _assert_one_error_line_naming(_error_lines(capsys), "command")


def _run_in_project(command: list[str]) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "DLFORGE_HOME"}
    return subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_importing_the_cli_does_not_import_tensorflow():
    result = _run_in_project(
        [sys.executable, "-c", "import pipelines.cli, sys; print('tensorflow' in sys.modules)"]
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_dlforge_help_exits_zero_and_lists_the_commands():
    result = _run_in_project([str(Path(sys.executable).parent / "dlforge"), "--help"])

    assert result.returncode == 0, result.stderr
    assert "run a pipeline locally" in result.stdout
    assert "list past runs" in result.stdout
    choices = re.search(r"\{([a-z,]+)\}", result.stdout).group(1)
    assert sorted(choices.split(",")) == [
        "artifacts",
        "compile",
        "drift",
        "edge",
        "families",
        "lineage",
        "predict",
        "report",
        "run",
        "runs",
        "serve",
        "submit",
        "tensorboard",
        "validate",
    ]


def test_families_lists_every_registered_family_without_importing_tensorflow():
    from models import registry

    script = (
        "import sys; from pipelines import cli; code = cli.main(['families']); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == "0 False"
    assert lines[0].split() == ["family", "pipeline", "task", "metric", "TFLite"]
    rows = {line.split()[0]: line.split() for line in lines[1 : len(registry.FAMILIES) + 1]}
    for name, card in registry.FAMILIES.items():
        assert rows[name][1:4] == [card.pipeline, card.task, card.metric]
        assert rows[name][4] == (card.tflite_signature or "no")
    assert "  digits (cnn): " in result.stdout


def test_config_errors_are_reported_before_tensorflow_is_imported():
    script = (
        "import sys; from pipelines import cli; "
        "code = cli.main(['run', 'digits', '--model', 'rnn']); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    result = _run_in_project([sys.executable, "-c", script])

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 False"
    assert "received 'rnn'" in result.stderr


def test_data_for_a_pipeline_that_trains_on_its_embedded_data_exits_2_naming_it(tmp_path, capsys):
    data = tmp_path / "rows.csv"
    data.write_text("lag_52,co2\n1,2\n")

    code = cli.main(["run", "co2", "--home", str(tmp_path / "home"), "--data", str(data)])

    assert code == 2
    error = capsys.readouterr().err
    assert "Expected --data only for the pipelines that ingest a user's rows (['digits'])" in error
    assert "received it for 'co2'" in error
    assert not (tmp_path / "home" / "data").exists()


def test_run_help_lists_every_pipeline_and_families_show_their_defaults():
    from pipelines import catalog

    result = _run_in_project([str(Path(sys.executable).parent / "dlforge"), "run", "--help"])
    listed = _run_in_project([str(Path(sys.executable).parent / "dlforge"), "families"])

    assert result.returncode == 0, result.stderr
    for name in catalog.PIPELINES:
        assert repr(name) in result.stdout, name
    assert "--tune, --no-tune" in result.stdout
    assert listed.returncode == 0, listed.stderr
    assert "  generative (vae): " in listed.stdout
    assert "  text_lm (transformer_lm): " in listed.stdout


def test_tuning_a_gan_is_refused_before_tensorflow_is_imported():
    script = (
        "import sys; from pipelines import cli; "
        "code = cli.main(['run', 'generative', '--model', 'gan']); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    result = _run_in_project([sys.executable, "-c", script])

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 False"
    assert "Expected tune off for model family 'gan'" in result.stderr
    assert "--no-tune" in result.stderr


@pytest.mark.parametrize(
    ("pipeline", "tuning"), [("digits", "with"), ("cartpole", "without"), ("frozenlake", "without")]
)
def test_the_run_header_says_tuning_only_where_the_pipeline_has_a_tuner(tmp_path, pipeline, tuning):
    from pipelines.config import PipelineConfig

    config = PipelineConfig(pipeline=pipeline, home=str(tmp_path), tune=True)

    assert cli.run_header(config) == (
        f"dlforge: running {config.pipeline_name} ({tuning} tuning) in {tmp_path}"
    )
