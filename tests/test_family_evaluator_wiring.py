"""How the generative and language-model pipelines are wired around the FamilyEvaluator: the
catalog entries, the thresholds handed to the stage, and what a search over each family
optimises."""

import json

import pytest

from components.family_evaluator.executor import Thresholds
from models import entrypoints, tasks
from pipelines import catalog, supervised
from pipelines.config import ConfigError, from_mapping


@pytest.mark.parametrize(("pipeline", "data_of"), [("generative", "digits"), ("text_lm", "text")])
def test_the_new_pipelines_read_their_data_sets_schema_and_suite(pipeline, data_of):
    entry, source = catalog.get_pipeline(pipeline), catalog.get_pipeline(data_of)

    assert entry.evaluation == "family"
    assert entry.schema_file == source.schema_file
    assert entry.suite_file == source.suite_file
    assert entry.data_module == source.data_module
    assert entry.preprocessing_fn == source.preprocessing_fn


def test_the_stage_receives_the_configs_thresholds():
    config = from_mapping(
        {
            "pipeline": "generative",
            "tune": False,
            "trainer": {"family": "gan"},
            "evaluation": {"min_classes_covered": 9, "max_elbo_drop": 1.5},
        }
    )

    thresholds = Thresholds.from_json(supervised.family_thresholds(config))

    assert thresholds == Thresholds(min_classes_covered=9, max_elbo_drop=1.5)
    assert json.loads(supervised.family_thresholds(config))["max_perplexity_ratio"] == 1.0


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"min_classes_covered": 11}, "min_classes_covered in 0..10"),
        ({"max_perplexity_ratio": -1.0}, "max_perplexity_ratio >= 0"),
    ],
)
def test_bad_family_thresholds_in_a_config_are_refused(evaluation, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping({"pipeline": "text_lm", "evaluation": evaluation})


@pytest.mark.parametrize(
    ("family", "task", "expected"),
    [
        ("autoencoder", tasks.DIGITS, ("val_loss", "min")),
        ("vae", tasks.DIGITS, ("val_elbo", "max")),
        ("char_lstm_lm", tasks.TEXT_LM, ("val_perplexity", "min")),
        ("transformer_lm", tasks.TEXT_LM, ("val_perplexity", "min")),
        ("cnn", tasks.DIGITS, ("val_accuracy", "max")),
    ],
)
def test_a_search_optimises_the_familys_validation_metric(family, task, expected):
    objective = entrypoints.objective(task, family)

    assert (objective.name, objective.direction) == expected


def test_a_gan_has_no_objective_to_search_on():
    with pytest.raises(ValueError, match="received 'gan', judged by 'class_coverage'"):
        entrypoints.objective(tasks.DIGITS, "gan")


def test_only_the_generative_families_train_on_their_input_alone():
    assert entrypoints.models_images("vae") and entrypoints.models_images("gan")
    assert not entrypoints.models_images("transformer_lm")
    assert entrypoints.has_own_signatures("transformer_lm")
    assert not entrypoints.has_own_signatures("text_transformer")
