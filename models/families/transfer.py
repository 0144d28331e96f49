"""Transfer learning on digits: a pre-trained base, a new head, then fine-tuning.

The Trainer builds the classifier with `build_model` and trains it with `train` (not a plain
`fit`): the base is pre-trained on the pipeline's own train split (a classifier of the first
half of the labels, or an autoencoder of every image), frozen while a new head learns all the
labels, then unfrozen at a low learning rate. See `models.transfer` and docs/transfer.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models import export, transfer
from models.keras_lib import keras
from models.spec import TaskSpec


def make_model(
    spec: TaskSpec,
    *,
    base: str = transfer.DLFORGE_BASE,
    weights: str = "",
    image_size: int = 32,
    num_blocks: int = 2,
    filters: int = 32,
    dense_units: int = 128,
    dropout: float = 0.25,
    pretrain: str = "source_classes",
    pretrain_steps: int = 300,
    pretrain_learning_rate: float = 2e-3,
    head_steps: int = 300,
    head_learning_rate: float = 2e-3,
    fine_tune_steps: int = 300,
    fine_tune_learning_rate: float = 2e-4,
) -> keras.Model:
    """Builds the compiled transfer classifier, a base and a head, with its training plan.

    The model is compiled with every layer trainable at the head's learning rate, so a plain
    `fit` (KerasTuner's trials) trains it like any classifier; `train` runs the plan, which the
    model carries as `model.transfer_plan`. The source labels of "source_classes" are the first
    half of the task's labels (digits 0-4); the target task is every label.

    Args:
        spec: An image task.
        base: "dlforge" or one of `models.transfer.APPLICATIONS`.
        weights: Local weights file of an application base, or "" (random weights).
        image_size: Height and width the digits are resized to for an application base.
        num_blocks: Convolution blocks of the dlforge base.
        filters: Filters of the dlforge base's first block.
        dense_units: Width of the head's hidden layer.
        dropout: Dropout rate of the head.
        pretrain: What the base is pre-trained on, one of `models.transfer.PRETRAIN_TASKS`.
        pretrain_steps: Steps of the pre-training.
        pretrain_learning_rate: Adam learning rate of the pre-training.
        head_steps: Steps of phase 1 (the base frozen, the new head learns).
        head_learning_rate: Adam learning rate of phase 1.
        fine_tune_steps: Steps of phase 2 (the base unfrozen).
        fine_tune_learning_rate: Adam learning rate of phase 2, normally well below the head's.

    Returns:
        A compiled model mapping `spec.feature_key` to class probabilities.

    Raises:
        ValueError: For an out-of-range value (see `models.transfer`).
        FileNotFoundError: If `weights` names no existing file.
    """
    plan = transfer.TransferPlan(
        pretrain=pretrain,
        source_labels=tuple(range(spec.num_classes // 2)),
        pretraining=transfer.Phase(pretrain_steps, pretrain_learning_rate),
        head=transfer.Phase(head_steps, head_learning_rate),
        fine_tuning=transfer.Phase(fine_tune_steps, fine_tune_learning_rate),
    )
    base_model = transfer.make_base(
        spec,
        base=base,
        weights=weights,
        image_size=image_size,
        num_blocks=num_blocks,
        filters=filters,
    )
    classifier = transfer.add_head(
        base_model, num_classes=spec.num_classes, dense_units=dense_units, dropout=dropout
    )
    classifier.transfer_plan = plan
    return transfer.compile_classifier(classifier, head_learning_rate)


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the transfer classifier, with their defaults.

    The base, its weights file, the image size and the step budgets are fixed values (set them
    in `[trainer.hyperparameters]`), so a search compares like with like.
    """
    return {
        "base": hp.Fixed("base", transfer.DLFORGE_BASE),
        "weights": hp.Fixed("weights", ""),
        "image_size": hp.Fixed("image_size", 32),
        "num_blocks": hp.Int("num_blocks", 1, 3, default=2),
        "filters": hp.Choice("filters", [16, 32, 64], default=32),
        "dense_units": hp.Choice("dense_units", [64, 128, 256], default=128),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.125, default=0.25),
        "pretrain": hp.Choice("pretrain", list(transfer.PRETRAIN_TASKS), default="source_classes"),
        "pretrain_steps": hp.Fixed("pretrain_steps", 300),
        "pretrain_learning_rate": hp.Float(
            "pretrain_learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3
        ),
        "head_steps": hp.Fixed("head_steps", 300),
        "head_learning_rate": hp.Float(
            "head_learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3
        ),
        "fine_tune_steps": hp.Fixed("fine_tune_steps", 300),
        "fine_tune_learning_rate": hp.Float(
            "fine_tune_learning_rate", 1e-5, 1e-3, sampling="log", default=2e-4
        ),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


def train(
    model: keras.Model,
    spec: TaskSpec,
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset,
    *,
    train_steps: int,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Trains a model of `make_model` by its plan: pre-training, head, fine-tuning.

    The base is pre-trained on the train split itself (its first half of labels, or every image
    for the autoencoder), so nothing outside the pipeline's data is used.

    Args:
        model: A model from `make_model`, built under the strategy's scope.
        spec: The task.
        train_dataset: Repeating (features, label) batches of the train split.
        eval_dataset: Validation batches, evaluated after each epoch of both phases.
        train_steps: The Trainer's step budget; unused, the plan's step budgets apply.
        epochs: Epochs each phase's steps are spread over.
        callbacks: Keras callbacks of both phases.

    Returns:
        The history (see `models.transfer.train_transfer`).
    """
    del train_steps  # The plan's explicit budgets (hyper-parameters) apply instead.
    return transfer.train_transfer(
        model,
        spec,
        model.transfer_plan,
        train_dataset,
        train_dataset,
        eval_dataset,
        epochs=epochs,
        callbacks=callbacks,
    )


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A batch of real digits, z-scored over the whole data set, and their labels."""
    from models.data import digits

    pixels, labels = digits.load_digits_arrays()
    rows = np.random.default_rng(seed).choice(len(labels), size=size, replace=False)
    values = pixels.astype(np.float32)
    inputs = (values[rows] - values.mean()) / values.std()
    return {spec.feature_key: inputs}, labels[rows]


def model_signatures(model: keras.Model, spec: TaskSpec) -> dict:
    """The classifier's serving signature over model inputs: probabilities and class ids."""

    @tf.function(input_signature=[tf.TensorSpec([None, spec.num_features], tf.float32)])
    def serve_dense(values):
        probabilities = model(values)
        return {
            export.PROBABILITIES: probabilities,
            export.CLASS_IDS: tf.argmax(probabilities, axis=-1),
        }

    return {export.DENSE_SIGNATURE: serve_dense.get_concrete_function()}
