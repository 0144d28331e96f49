"""TFX entry points, found by dotted path: they read the settings and delegate."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft

from models import registry, strategy, tasks, training
from models.settings import SETTINGS_KEY, TrainerSettings
from models.strategy import make_strategy

# Folder of the trials' TensorBoard logs in the search's working folder (components/tuner keeps
# them in the Tuner's output).
TUNER_LOGS = "tensorboard"


class TunerFnResult(NamedTuple):
    """What TFX's Tuner expects `tuner_fn` to return: it calls `tuner.search(**fit_kwargs)`.

    Same fields as `tfx.components.tuner.component.TunerFnResult`, declared here so that
    `models` does not import TFX.
    """

    tuner: keras_tuner.engine.base_tuner.BaseTuner
    fit_kwargs: dict[str, Any]


GENERATIVE_PIPELINE = "generative"
LANGUAGE_MODEL_PIPELINE = "text_lm"
# Metric of a generative or language model's card -> what a search over the family optimises:
# the validation value Keras reports for it (the family is judged by that metric on the test
# split by components/family_evaluator). A GAN has none: its two losses chase each other.
_OWN_OBJECTIVES = {
    "mse": ("val_loss", "min"),
    "elbo": ("val_elbo", "max"),
    "perplexity": ("val_perplexity", "min"),
}


def models_images(family: str) -> bool:
    """Whether a family models the task's input itself (the generative families): it trains on
    the feature alone, with the feature as its target, and ignores the label."""
    return registry.get_card(family).pipeline == GENERATIVE_PIPELINE


def has_own_signatures(family: str) -> bool:
    """Whether a family is saved with its own `model_signatures` (generative models and
    language models) rather than the classifier and regression signatures of `training`."""
    card = registry.get_card(family)
    return card.pipeline in (GENERATIVE_PIPELINE, LANGUAGE_MODEL_PIPELINE)


def _inputs(fn_args, settings: TrainerSettings, spec):
    transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    feature_spec = transform_output.transformed_feature_spec()

    def dataset(files, training_split):
        batches = training.make_dataset(
            files,
            feature_spec,
            label_key=spec.label_key,
            batch_size=settings.batch_size,
            training=training_split,
            seed=settings.seed,
        )
        if models_images(settings.family):
            batches = batches.map(
                lambda features, _: (features[spec.feature_key], features[spec.feature_key])
            )
        return batches

    # A GAN has no validation pass: calling it maps codes, not images, to images.
    validates = not models_images(settings.family) or settings.family in _validated_families()
    eval_dataset = dataset(fn_args.eval_files, False) if validates else None
    return transform_output, dataset(fn_args.train_files, True), eval_dataset


def _validated_families() -> list[str]:
    """The families with their own metric whose validation value Keras reports."""
    return [
        name
        for name, card in registry.FAMILIES.items()
        if has_own_signatures(name) and card.metric in _OWN_OBJECTIVES
    ]


def run_fn(fn_args) -> None:
    """Trains the configured family and saves it with the serving signatures."""
    settings = TrainerSettings.from_dict(fn_args.custom_config[SETTINGS_KEY])
    spec = tasks.get_task(settings.task)
    transform_output, train_dataset, eval_dataset = _inputs(fn_args, settings, spec)
    if fn_args.hyperparameters:
        hyperparameters = keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
    else:
        hyperparameters = registry.make_hyperparameters(settings.family, settings.hyperparameters)
    result = training.train_model(
        settings,
        spec,
        hyperparameters,
        train_dataset,
        eval_dataset,
        train_steps=fn_args.train_steps,
        log_dir=os.path.join(fn_args.model_run_dir, "logs"),
    )
    # Under MultiWorkerMirroredStrategy every worker saves; only the chief's copy is kept.
    tf_config = strategy.check_tf_config(os.environ.get(strategy.TF_CONFIG))
    model_dir = strategy.export_dir(fn_args.serving_model_dir, tf_config)
    if has_own_signatures(settings.family):
        signatures = registry.get_family(settings.family).model_signatures(result.model, spec)
        result.model.save(model_dir, save_format="tf", signatures=signatures)
    else:
        training.save_model(result.model, transform_output, spec, model_dir)
    if model_dir != fn_args.serving_model_dir:
        tf.io.gfile.rmtree(model_dir)
        return
    training.write_history(result.history, fn_args.model_run_dir)


class FamilyHyperModel(keras_tuner.HyperModel):
    """A family's model per trial, trained as the Trainer trains it: with the family's own
    `train` when it has one (e.g. transfer learning's phases), else with `model.fit`."""

    def __init__(self, family, spec):
        super().__init__()
        self.family = family
        self.spec = spec

    def build(self, hp):
        return self.family.build_model(hp, self.spec)

    def fit(self, hp, model, x, *, validation_data, steps_per_epoch, epochs, callbacks, **kwargs):
        if not hasattr(self.family, "train"):
            return model.fit(
                x,
                validation_data=validation_data,
                steps_per_epoch=steps_per_epoch,
                epochs=epochs,
                callbacks=callbacks,
                **kwargs,
            )
        # In the strategy the model was built under: each phase makes a new optimizer.
        with model.distribute_strategy.scope():
            history = self.family.train(
                model,
                self.spec,
                x,
                validation_data,
                train_steps=steps_per_epoch * epochs,
                epochs=epochs,
                callbacks=callbacks,
            )
        # KerasTuner takes a dict of final metric values as the trial's result.
        return {key: values[-1] for key, values in history.items()}


def objective(spec, family: str = "") -> keras_tuner.Objective:
    """What the search optimises: validation accuracy for a classifier, validation RMSE (the
    `rmse` metric of `models.recurrent`) for a regression model; for a generative or language
    model `family`, the validation value of its own metric (`_OWN_OBJECTIVES`).

    Raises:
        ValueError: For a family with no validation objective (the GAN).
    """
    if family and has_own_signatures(family):
        metric = registry.get_card(family).metric
        if metric not in _OWN_OBJECTIVES:
            tunable = _validated_families()
            raise ValueError(
                f"Expected a family with a validation objective to tune (one of {tunable}), "
                f"received {family!r}, judged by {metric!r}: train it without tuning "
                "(--no-tune)."
            )
        name, direction = _OWN_OBJECTIVES[metric]
        return keras_tuner.Objective(name, direction=direction)
    if spec.kind == "regression":
        return keras_tuner.Objective("val_rmse", direction="min")
    return keras_tuner.Objective("val_accuracy", direction="max")


def tuner_fn(fn_args) -> TunerFnResult:
    """Builds the KerasTuner search over the family's search space."""
    settings = TrainerSettings.from_dict(fn_args.custom_config[SETTINGS_KEY])
    spec = tasks.get_task(settings.task)
    family = registry.get_family(settings.family)
    _, train_dataset, eval_dataset = _inputs(fn_args, settings, spec)
    common = {
        "hypermodel": FamilyHyperModel(family, spec),
        "objective": objective(spec, settings.family),
        "hyperparameters": registry.make_hyperparameters(settings.family, settings.hyperparameters),
        "tune_new_entries": True,
        "seed": settings.seed,
        "distribution_strategy": make_strategy(settings.strategy, settings.tpu_address),
        "directory": fn_args.working_dir,
        "project_name": f"{settings.task}_{settings.family}",
    }
    if settings.tuner == "bayesian":
        tuner = keras_tuner.BayesianOptimization(max_trials=settings.max_trials, **common)
    else:
        tuner = keras_tuner.RandomSearch(max_trials=settings.max_trials, **common)
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train_dataset,
            "validation_data": eval_dataset,
            "steps_per_epoch": fn_args.train_steps,
            "epochs": settings.tuner_epochs,
            # KerasTuner gives each trial its own folder under the callback's log_dir.
            "callbacks": [
                tf.keras.callbacks.TensorBoard(
                    log_dir=os.path.join(fn_args.working_dir, TUNER_LOGS)
                )
            ],
            "verbose": 0,
        },
    )
