"""Input pipelines, training and export of the supervised families."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_transform as tft

from models import export, registry
from models.keras_lib import keras
from models.settings import TrainerSettings
from models.spec import TaskSpec
from models.strategy import make_strategy

SHUFFLE_BUFFER = 2048
# A text model's signature over token ids (its `serving_default` takes raw text tf.Examples).
TOKENS_SIGNATURE = "serving_tokens"
# The same for a text model that takes raw passages and tokenises them itself (bert).
PASSAGES_SIGNATURE = "serving_passages"


def make_dataset(
    file_patterns: Sequence[str],
    feature_spec: dict,
    *,
    label_key: str,
    batch_size: int,
    training: bool,
    seed: int = 0,
) -> tf.data.Dataset:
    """Reads Transform's gzipped TFRecords of tf.Examples as (features, label) batches.

    The serialized records are cached in memory after the first pass (the data sets dlforge
    trains on locally fit in memory), then shuffled, repeated and batched when `training`, and
    parsed a batch at a time.

    Args:
        file_patterns: Glob patterns of the TFRecord files.
        feature_spec: Transformed feature spec, e.g. `TFTransformOutput.transformed_feature_spec()`.
        label_key: Feature that is the label.
        batch_size: Examples per batch.
        training: Shuffle and repeat forever when True; one ordered pass otherwise.
        seed: Shuffle seed.

    Returns:
        A dataset of (dict of feature tensors, label tensor).

    Raises:
        ValueError: If the patterns match no file.
    """
    files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"Expected TFRecord files matching {list(file_patterns)}, found none.")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").cache()
    if training:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training)

    def parse(serialized):
        features = tf.io.parse_example(serialized, feature_spec)
        label = features.pop(label_key)
        return features, label

    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class TrainingRun:
    """What `train_model` produced."""

    model: keras.Model
    history: dict[str, list[float]]


def train_model(
    settings: TrainerSettings,
    spec: TaskSpec,
    hyperparameters,
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset,
    *,
    train_steps: int,
    log_dir: str | None = None,
) -> TrainingRun:
    """Builds the family's model under the configured strategy and trains it.

    The model is trained with `fit`, unless the family's module defines
    `train(model, spec, train_dataset, eval_dataset, *, train_steps, epochs, callbacks)`, which
    then trains it and returns its history (e.g. the phases of `models.families.transfer`).

    Args:
        settings: Family, epochs, strategy and seed.
        spec: The task.
        hyperparameters: KerasTuner HyperParameters (tuned or fixed); missing values take the
            family's defaults.
        train_dataset: Repeating (features, label) batches.
        eval_dataset: Validation batches, one pass of which is evaluated after each epoch.
        train_steps: Total training steps, spread over `settings.epochs` epochs.
        log_dir: Where TensorBoard logs go, if anywhere.

    Returns:
        The trained model and its per-epoch history.
    """
    keras.utils.set_random_seed(settings.seed)
    family = registry.get_family(settings.family)
    strategy = make_strategy(settings.strategy, settings.tpu_address)
    with strategy.scope():
        model = family.build_model(hyperparameters, spec)
    callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    if hasattr(family, "train"):
        # A family that trains in phases (e.g. transfer learning) runs its own loop; in the
        # strategy's scope, since each phase compiles the model with a new optimizer, whose
        # variables must be the strategy's.
        with strategy.scope():
            history = family.train(
                model,
                spec,
                train_dataset,
                eval_dataset,
                train_steps=train_steps,
                epochs=settings.epochs,
                callbacks=callbacks,
            )
    else:
        history = model.fit(
            train_dataset,
            epochs=settings.epochs,
            steps_per_epoch=max(1, math.ceil(train_steps / settings.epochs)),
            validation_data=eval_dataset,
            callbacks=callbacks,
            verbose=0,
        ).history
    return TrainingRun(
        model=model,
        history={key: [float(value) for value in values] for key, values in history.items()},
    )


def save_model(
    model: keras.Model,
    transform_output: tft.TFTransformOutput,
    spec: TaskSpec,
    serving_model_dir: str,
) -> None:
    """Saves the model as a SavedModel with its serving signatures.

    A model over numbers gets those of `models.export` (serialized tf.Examples, and dense raw
    values); a model over token ids (text) gets serialized tf.Examples of the raw text as
    `serving_default` and its token-id signature as `serving_tokens` (`serving_passages`, over
    raw passages, for a model that tokenises them itself).
    """
    if spec.vocabulary_size is not None:
        from models import text_models

        if model.inputs[0].dtype == tf.string:
            from models.families import bert

            direct_name, direct = PASSAGES_SIGNATURE, bert.model_signatures(model, spec)
        else:
            direct_name, direct = TOKENS_SIGNATURE, text_models.classifier_signatures(model, spec)
        signatures = {
            export.DEFAULT_SIGNATURE: text_models.examples_signature(model, transform_output, spec),
            direct_name: direct[export.DEFAULT_SIGNATURE],
        }
    else:
        signatures = export.make_signatures(
            model,
            transform_output,
            label_key=spec.label_key,
            dense_keys=spec.raw_feature_keys,
            kind=spec.kind,
        )
    model.save(serving_model_dir, save_format="tf", signatures=signatures)


def write_history(history: dict[str, list[float]], directory: str) -> str:
    """Writes the per-epoch training history as `history.json` in `directory`."""
    tf.io.gfile.makedirs(directory)
    path = os.path.join(directory, "history.json")
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump(history, handle, indent=1)
    return path
