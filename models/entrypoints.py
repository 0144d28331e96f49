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


def _inputs(fn_args, settings: TrainerSettings, spec):
    transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    feature_spec = transform_output.transformed_feature_spec()

    def dataset(files, training_split):
        return training.make_dataset(
            files,
            feature_spec,
            label_key=spec.label_key,
            batch_size=settings.batch_size,
            training=training_split,
            seed=settings.seed,
        )

    return transform_output, dataset(fn_args.train_files, True), dataset(fn_args.eval_files, False)


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


def objective(spec) -> keras_tuner.Objective:
    """What the search optimises: validation accuracy for a classifier, validation RMSE (the
    `rmse` metric of `models.recurrent`) for a regression model."""
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
        "objective": objective(spec),
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
