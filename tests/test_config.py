"""Tests of the typed pipeline configuration and the trainer settings it carries.

Covers the defaults, loading TOML files with overrides on top, the error messages for unknown
keys, unreadable files and invalid values, the derived names and folders, and the round trip of
TrainerSettings through the dict TFX stores in `custom_config`.
"""

import json
import os
import re

import pytest

from models.settings import TrainerSettings
from pipelines import config as config_lib
from pipelines.config import ConfigError, EvaluationConfig, PipelineConfig

FILE_TEXT = """\
train_steps = 120
tune = false
beam_args = ["--direct_num_workers=2"]

[trainer]
family = "mlp"
batch_size = 32
tuner = "random"
hyperparameters = { units = 128 }

[evaluation]
min_accuracy = 0.9
max_accuracy_drop = 0.02
"""


def _write_config(tmp_path, text: str = FILE_TEXT) -> str:
    path = tmp_path / "dlforge.toml"
    path.write_text(text)
    return str(path)


def test_defaults_are_a_valid_digits_cnn_config():
    config = PipelineConfig()

    assert config.pipeline == "digits"
    assert config.trainer == TrainerSettings(family="cnn")
    assert config.trainer.task == "digits"
    assert config.evaluation == EvaluationConfig(min_accuracy=0.95)
    assert config.pipeline_name == "digits_cnn"


def test_load_without_a_file_returns_the_defaults():
    assert config_lib.load(None) == PipelineConfig()


def test_load_reads_top_level_values_from_the_file(tmp_path):
    config = config_lib.load(_write_config(tmp_path))

    assert config.train_steps == 120
    assert config.tune is False
    assert config.beam_args == ("--direct_num_workers=2",)


def test_load_reads_the_trainer_table_into_trainer_settings(tmp_path):
    config = config_lib.load(_write_config(tmp_path))

    assert config.trainer == TrainerSettings(
        family="mlp", batch_size=32, tuner="random", hyperparameters={"units": 128}
    )


def test_load_reads_the_evaluation_table_into_evaluation_config(tmp_path):
    config = config_lib.load(_write_config(tmp_path))

    assert config.evaluation == EvaluationConfig(min_accuracy=0.9, max_accuracy_drop=0.02)


def test_load_overrides_win_over_top_level_file_values(tmp_path):
    config = config_lib.load(_write_config(tmp_path), {"train_steps": 7, "tune": True})

    assert config.train_steps == 7
    assert config.tune is True


def test_load_table_overrides_win_and_keep_the_other_file_values(tmp_path):
    config = config_lib.load(_write_config(tmp_path), {"trainer": {"family": "perceptron"}})

    assert config.trainer.family == "perceptron"
    assert config.trainer.batch_size == 32
    assert config.trainer.tuner == "random"


@pytest.mark.parametrize(
    ("text", "unknown", "expected_key"),
    [
        ("colour = 1\n", "colour", "train_steps"),
        ("[trainer]\nlearning_rate = 0.1\n", "learning_rate", "batch_size"),
        ("[evaluation]\nmax_loss = 0.5\n", "max_loss", "min_accuracy"),
    ],
    ids=["top-level", "trainer", "evaluation"],
)
def test_load_rejects_an_unknown_key_naming_it_and_the_expected_keys(
    tmp_path, text, unknown, expected_key
):
    with pytest.raises(ConfigError) as raised:
        config_lib.load(_write_config(tmp_path, text))

    message = str(raised.value)
    assert repr(unknown) in message
    assert "expected keys among" in message
    assert repr(expected_key) in message


def test_load_rejects_a_toml_syntax_error_naming_the_path(tmp_path):
    path = _write_config(tmp_path, "train_steps = = 3\n")

    with pytest.raises(ConfigError, match=re.escape(path)):
        config_lib.load(path)


def test_load_rejects_a_missing_file_naming_the_path(tmp_path):
    path = str(tmp_path / "missing.toml")

    with pytest.raises(ConfigError, match=re.escape(path)):
        config_lib.load(path)


@pytest.mark.parametrize(
    ("values", "expected", "received"),
    [
        ({"train_steps": 0}, "train_steps >= 1", "received 0"),
        ({"evaluation": {"min_accuracy": 2}}, "in [0, 1]", "received 2 and 0.01"),
        ({"trainer": {"batch_size": 0}}, "batch_size >= 1", "received 0"),
        ({"trainer": {"tuner": "nope"}}, "['bayesian', 'random']", "received 'nope'"),
    ],
    ids=["train_steps", "min_accuracy", "batch_size", "tuner"],
)
def test_invalid_values_raise_config_error_with_expected_and_received(values, expected, received):
    with pytest.raises(ConfigError) as raised:
        config_lib.from_mapping(values)

    assert expected in str(raised.value)
    assert received in str(raised.value)


def test_a_non_table_trainer_value_raises_config_error():
    with pytest.raises(ConfigError, match=r"Expected \[trainer\] in config to be a table"):
        config_lib.from_mapping({"trainer": 3})


def test_unknown_pipeline_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="received 'images'"):
        PipelineConfig(pipeline="images")


def test_the_pipeline_picks_its_default_family_when_the_config_names_none():
    assert TrainerSettings().family == ""
    assert PipelineConfig(pipeline="digits").trainer.family == "cnn"


def test_a_family_of_another_pipeline_raises_config_error_naming_both(monkeypatch):
    from models import registry

    card = registry.FamilyCard("models.families.mlp", "elsewhere", "digits", "accuracy", "x")
    monkeypatch.setitem(registry.FAMILIES, "foreign", card)
    with pytest.raises(ConfigError, match=r"pipeline 'digits'.*received 'foreign'.*'elsewhere'"):
        PipelineConfig(trainer=TrainerSettings(family="foreign"))


def test_the_pipeline_sets_the_accuracy_bar_unless_the_config_does():
    assert PipelineConfig(pipeline="text").evaluation.min_accuracy == 0.5
    explicit = EvaluationConfig(min_accuracy=0.8)
    assert PipelineConfig(pipeline="text", evaluation=explicit).evaluation.min_accuracy == 0.8


def test_a_task_that_is_not_the_familys_raises():
    with pytest.raises(ValueError, match="Expected task 'digits' for family 'mlp'"):
        TrainerSettings(family="mlp", task="other")


def test_names_and_serving_dir_derive_from_pipeline_and_family(tmp_path):
    config = PipelineConfig(home=str(tmp_path), trainer=TrainerSettings(family="mlp"))

    assert config.pipeline_name == "digits_mlp"
    assert config.model_name == "digits_mlp"
    assert config.serving_dir == os.path.join(str(tmp_path), "serving", "digits_mlp")
    assert config.pipeline_root == os.path.join(str(tmp_path), "pipeline_root", "digits_mlp")


def test_trainer_settings_round_trip_through_to_dict_and_from_dict():
    settings = TrainerSettings(
        family="mlp", hyperparameters={"units": 64}, batch_size=16, tuner="random", seed=3
    )

    assert TrainerSettings.from_dict(settings.to_dict()) == settings


def test_trainer_settings_to_dict_survives_json():
    settings = TrainerSettings(family="perceptron", hyperparameters={"learning_rate": 0.01})

    restored = json.loads(json.dumps(settings.to_dict()))

    assert TrainerSettings.from_dict(restored) == settings


def test_trainer_settings_from_dict_rejects_an_unknown_key_naming_it():
    with pytest.raises(ValueError, match=r"received \['layers'\]"):
        TrainerSettings.from_dict({"family": "mlp", "layers": 3})


def test_shipped_config_files_load_and_the_reference_one_matches_the_defaults():
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    configs = os.path.join(repository, "configs")
    reference = config_lib.load(os.path.join(configs, "digits.toml"))
    assert reference == config_lib.PipelineConfig()
    smoke = config_lib.load(os.path.join(configs, "smoke.toml"))
    assert smoke.train_steps < reference.train_steps
    gan = config_lib.load(os.path.join(configs, "gan.toml"))
    assert (gan.pipeline, gan.trainer.family, gan.tune) == ("generative", "gan", False)
    assert gan.train_steps == 3000
