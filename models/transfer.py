"""Transfer learning: pre-train a base, freeze it under a new head, then fine-tune it all.

A base maps the task's model input (`pixels_xf`, z-scored digits) to a feature vector, ending in
a layer named `FEATURES_LAYER`. It is either

- dlforge's own convolutional base, pre-trained in the same run on data of the pipeline itself:
  as a classifier of a *source* subset of the labels (digits 0-4), or as the encoder of a
  self-supervised autoencoder that reconstructs every training image; or
- a `keras.applications` network (ResNet50, VGG16, InceptionV3, MobileNetV2) with ImageNet
  weights read from a local file (never downloaded), behind a layer that adapts the 8x8x1
  z-scored digits to the network's input (per-image rescaling to 0..255, resize, three
  channels, the application's own `preprocess_input`).

Training then runs two phases on the *target* task, each with its own step budget and learning
rate: the base frozen while a new head learns (phase 1), then the base unfrozen at a low learning
rate (phase 2). The classifier shares the base's layers and is a plain Keras classifier over
`pixels_xf`, so it exports, serves and compresses like every other digits family.

`measure_transfer_gain` compares, on little labelled data of digits 5-9, a base pre-trained on
digits 0-4 with the same network trained from scratch on the same budget.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.spec import TaskSpec

FEATURES_LAYER = "features"
DLFORGE_BASE = "dlforge"
# What the dlforge base is pre-trained on: a classifier of the source labels, an autoencoder of
# every training image, or nothing (phase 1 then trains a head on a random frozen base).
PRETRAIN_TASKS = ("source_classes", "autoencoder", "none")


@dataclass(frozen=True)
class Application:
    """A `keras.applications` network usable as a base.

    Attributes:
        constructor: Name of the constructor in `keras.applications`, e.g. "MobileNetV2".
        module: Name of its module in `keras.applications`, which holds `preprocess_input`.
        min_image_size: Smallest input height and width the network accepts.
    """

    constructor: str
    module: str
    min_image_size: int


APPLICATIONS: dict[str, Application] = {
    "resnet50": Application("ResNet50", "resnet50", 32),
    "vgg16": Application("VGG16", "vgg16", 32),
    "inception_v3": Application("InceptionV3", "inception_v3", 75),
    "mobilenet_v2": Application("MobileNetV2", "mobilenet_v2", 32),
}
BASES = (DLFORGE_BASE, *APPLICATIONS)


@dataclass(frozen=True)
class Phase:
    """One training phase: how many steps, at which Adam learning rate."""

    steps: int
    learning_rate: float

    def __post_init__(self) -> None:
        if self.steps < 1 or self.learning_rate <= 0:
            raise ValueError(
                "Expected a phase of steps >= 1 and learning_rate > 0, received "
                f"steps={self.steps} and learning_rate={self.learning_rate}."
            )


@dataclass(frozen=True)
class TransferPlan:
    """How a transfer model is trained.

    Attributes:
        pretrain: One of `PRETRAIN_TASKS`.
        source_labels: Labels of the source task when `pretrain` is "source_classes"; they are
            renumbered 0..len-1 for the source head.
        pretraining: Steps and learning rate of the pre-training (unused when `pretrain` is
            "none").
        head: Phase 1, the base frozen.
        fine_tuning: Phase 2, the base unfrozen; its learning rate is normally well below the
            head's, so the pre-trained features are adjusted rather than overwritten.
    """

    pretrain: str
    source_labels: tuple[int, ...]
    pretraining: Phase
    head: Phase
    fine_tuning: Phase

    def __post_init__(self) -> None:
        if self.pretrain not in PRETRAIN_TASKS:
            raise ValueError(
                f"Expected pretrain in {list(PRETRAIN_TASKS)}, received {self.pretrain!r}."
            )
        if self.pretrain == "source_classes" and len(set(self.source_labels)) < 2:
            raise ValueError(
                "Expected at least 2 distinct source labels to pre-train a classifier on, "
                f"received {list(self.source_labels)}."
            )


@keras.utils.register_keras_serializable(package="dlforge")
class ImageNetAdapter(keras.layers.Layer):
    """Turns single-channel images of any scale into a `keras.applications` network's input.

    Each image is rescaled to 0..255 by its own minimum and maximum (the model input is
    z-scored, and the network was trained on 8-bit photographs), copied into three channels and
    passed through the application's `preprocess_input` (caffe, tf or torch scaling).
    """

    def __init__(self, application: str, **kwargs):
        super().__init__(**kwargs)
        check_application(application)
        self.application = application

    def call(self, images):
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        # A blank image (high == low) maps to 0 rather than to NaN.
        scaled = (images - low) * tf.math.divide_no_nan(255.0, high - low)
        rgb = tf.concat([scaled, scaled, scaled], axis=-1)
        module = getattr(keras.applications, APPLICATIONS[self.application].module)
        return module.preprocess_input(rgb)

    def get_config(self):
        return {**super().get_config(), "application": self.application}


def check_application(name: str) -> None:
    """Raises ValueError naming the valid applications if `name` is not one."""
    if name not in APPLICATIONS:
        raise ValueError(f"Expected a base in {sorted(APPLICATIONS)}, received {name!r}.")


def check_weights_file(path: str) -> None:
    """Checks that a local weights file exists; nothing is ever downloaded.

    Raises:
        FileNotFoundError: If `path` is not an existing file; the message names the path.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Expected a local weights file (.h5) at {path!r}, found none. dlforge never "
            "downloads weights: put the application's include_top=False weights file there "
            "(see docs/transfer.md) or leave weights empty to start from random weights."
        )


def make_dlforge_base(
    spec: TaskSpec, *, num_blocks: int = 2, filters: int = 32, kernel_size: int = 3
) -> keras.Model:
    """Builds dlforge's convolutional base: conv blocks and global average pooling.

    Each block is Conv2D(filters * 2**block) -> ReLU -> MaxPool(2) while the map is larger than
    2x2. There is no batch normalisation: a frozen base must compute the same features in
    training and inference, and batch statistics of a few labelled images would not settle.

    Args:
        spec: An image task.
        num_blocks: Number of convolution blocks, >= 1.
        filters: Filters of the first block; each block doubles them.
        kernel_size: Convolution kernel size.

    Returns:
        An uncompiled model from `spec.feature_key` to the feature vector (layer `FEATURES_LAYER`).

    Raises:
        ValueError: If the task is not an image task or a size is below 1.
    """
    if spec.image_shape is None:
        raise ValueError(f"Expected an image task for a transfer base, received {spec.name!r}.")
    if num_blocks < 1 or filters < 1 or kernel_size < 1:
        raise ValueError(
            "Expected num_blocks, filters and kernel_size >= 1, received "
            f"{num_blocks}, {filters} and {kernel_size}."
        )
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    hidden = keras.layers.Reshape(spec.image_shape, name="image")(inputs)
    for block in range(num_blocks):
        hidden = keras.layers.Conv2D(
            filters * 2**block, kernel_size, padding="same", activation="relu", name=f"conv_{block}"
        )(hidden)
        if min(hidden.shape[1], hidden.shape[2]) > 2:
            hidden = keras.layers.MaxPooling2D(2, name=f"pool_{block}")(hidden)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(hidden)
    return keras.Model(inputs, features, name="dlforge_base")


def make_application(
    name: str,
    *,
    image_size: int,
    weights: str = "",
    alpha: float = 1.0,
) -> keras.Model:
    """Builds a `keras.applications` network without its top, from a local weights file.

    Args:
        name: One of `APPLICATIONS`.
        image_size: Input height and width, at least the application's minimum.
        weights: Path of a local `include_top=False` weights file (e.g. Keras' ImageNet
            `..._notop.h5`), or "" for random weights.
        alpha: Width multiplier; MobileNetV2 only.

    Returns:
        The network, from [batch, image_size, image_size, 3] to its last feature map.

    Raises:
        ValueError: For an unknown name, a too small image size, or alpha set for a network
            that has none.
        FileNotFoundError: If `weights` names no existing file.
    """
    check_application(name)
    application = APPLICATIONS[name]
    if image_size < application.min_image_size:
        raise ValueError(
            f"Expected an image_size >= {application.min_image_size} for {name}, "
            f"received {image_size}."
        )
    if alpha != 1.0 and name != "mobilenet_v2":
        raise ValueError(f"Expected alpha 1.0 for {name} (only mobilenet_v2 has one), got {alpha}.")
    if weights:
        check_weights_file(weights)
    options = {"alpha": alpha} if name == "mobilenet_v2" else {}
    # Keras loads a weights path given as `weights` itself, matching layers in order.
    return getattr(keras.applications, application.constructor)(
        include_top=False,
        weights=weights or None,
        input_shape=(image_size, image_size, 3),
        **options,
    )


def make_application_base(
    spec: TaskSpec,
    name: str,
    *,
    image_size: int,
    weights: str = "",
    alpha: float = 1.0,
) -> keras.Model:
    """Builds a base from a `keras.applications` network over the task's model input.

    The network runs in inference mode (`training=False`) even when unfrozen, as Keras' own
    transfer-learning guide advises: its batch normalisation keeps the ImageNet statistics
    instead of re-estimating them on a few digits.

    Args:
        spec: An image task.
        name: One of `APPLICATIONS`.
        image_size: Height and width the digits are resized to (bilinear).
        weights: Local weights file, or "" for random weights (see `make_application`).
        alpha: MobileNetV2's width multiplier.

    Returns:
        An uncompiled model from `spec.feature_key` to the feature vector (layer
        `FEATURES_LAYER`); the application is its layer named after the application.

    Raises:
        ValueError, FileNotFoundError: See `make_application`.
    """
    if spec.image_shape is None:
        raise ValueError(f"Expected an image task for a transfer base, received {spec.name!r}.")
    network = make_application(name, image_size=image_size, weights=weights, alpha=alpha)
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    images = keras.layers.Reshape(spec.image_shape, name="image")(inputs)
    images = keras.layers.Resizing(image_size, image_size, name="resize")(images)
    images = ImageNetAdapter(name, name="imagenet_adapter")(images)
    feature_map = network(images, training=False)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(feature_map)
    return keras.Model(inputs, features, name=f"{name}_base")


def make_base(
    spec: TaskSpec,
    *,
    base: str = DLFORGE_BASE,
    weights: str = "",
    image_size: int = 32,
    num_blocks: int = 2,
    filters: int = 32,
) -> keras.Model:
    """Builds the base named `base`: dlforge's (`make_dlforge_base`) or an application's.

    Raises:
        ValueError: For an unknown base, or weights given for the dlforge base (which is
            pre-trained in the run, not loaded).
    """
    if base == DLFORGE_BASE:
        if weights:
            raise ValueError(
                f"Expected no weights file for the {DLFORGE_BASE!r} base (it is pre-trained in "
                f"the run), received {weights!r}."
            )
        return make_dlforge_base(spec, num_blocks=num_blocks, filters=filters)
    if base not in APPLICATIONS:
        raise ValueError(f"Expected a base in {list(BASES)}, received {base!r}.")
    return make_application_base(spec, base, image_size=image_size, weights=weights)


def add_head(
    base: keras.Model,
    *,
    num_classes: int,
    dense_units: int = 128,
    dropout: float = 0.25,
    name: str = "transfer",
) -> keras.Model:
    """A new classifier head on the base's features; the model shares the base's layers.

    Args:
        base: A base from `make_base`.
        num_classes: Width of the softmax layer.
        dense_units: Width of the head's hidden ReLU layer.
        dropout: Dropout rate before the softmax layer, in [0, 1).
        name: Model name.

    Returns:
        An uncompiled model from the base's input to class probabilities (layer
        "probabilities").
    """
    if dense_units < 1 or num_classes < 2 or not 0 <= dropout < 1:
        raise ValueError(
            "Expected dense_units >= 1, num_classes >= 2 and dropout in [0, 1), received "
            f"{dense_units}, {num_classes} and {dropout}."
        )
    hidden = keras.layers.Dense(dense_units, activation="relu", name=f"{name}_dense")(base.output)
    if dropout:
        hidden = keras.layers.Dropout(dropout, name=f"{name}_dropout")(hidden)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(hidden)
    return keras.Model(base.input, outputs, name=name)


def add_decoder(base: keras.Model, spec: TaskSpec, *, dense_units: int = 128) -> keras.Model:
    """An autoencoder: the base encodes an image, a dense decoder reconstructs its input."""
    hidden = keras.layers.Dense(dense_units, activation="relu", name="decoder_dense")(base.output)
    reconstruction = keras.layers.Dense(spec.num_features, name="reconstruction")(hidden)
    return keras.Model(base.input, reconstruction, name="autoencoder")


def base_of(classifier: keras.Model) -> keras.Model:
    """The base inside a classifier from `add_head`, sharing its layers (and weights)."""
    return keras.Model(classifier.input, classifier.get_layer(FEATURES_LAYER).output)


def compile_classifier(model: keras.Model, learning_rate: float) -> keras.Model:
    """Compiles a classifier with Adam, sparse cross-entropy and accuracy; returns it."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def select_labels(
    dataset: tf.data.Dataset, labels: Sequence[int], *, batch_size: int, training: bool
) -> tf.data.Dataset:
    """Keeps the examples of some labels, renumbered by their position in `labels`.

    Args:
        dataset: Batches of (features, label), e.g. from `models.training.make_dataset`.
        labels: The labels to keep; label `labels[i]` becomes `i`.
        batch_size: Batch size of the result.
        training: Drop a last partial batch (the input repeats) when True.

    Returns:
        Batches of (features, renumbered label).
    """
    wanted = tf.constant(list(labels), tf.int64)

    def matches(label):
        return tf.equal(tf.cast(label, tf.int64), wanted)

    return (
        dataset.unbatch()
        .filter(lambda features, label: tf.reduce_any(matches(label)))
        .map(lambda features, label: (features, tf.argmax(matches(label), output_type=tf.int64)))
        .batch(batch_size, drop_remainder=training)
    )


def batch_size_of(dataset: tf.data.Dataset, default: int = 64) -> int:
    """The static batch size of a dataset of (features, label) batches, else `default`."""
    size = dataset.element_spec[1].shape[0]
    return int(size) if size is not None else default


def _fit(model, dataset, phase: Phase, *, epochs: int, validation_data=None, callbacks=()):
    epochs = max(1, min(epochs, phase.steps))
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=math.ceil(phase.steps / epochs),
        validation_data=validation_data,
        callbacks=list(callbacks),
        verbose=0,
    )
    return {key: [float(value) for value in values] for key, values in history.history.items()}


def pretrain(
    base: keras.Model,
    spec: TaskSpec,
    train_dataset: tf.data.Dataset,
    plan: TransferPlan,
    *,
    epochs: int = 1,
) -> dict[str, list[float]]:
    """Pre-trains the base on the source task of the plan, from the training data only.

    Args:
        base: The base; it is trained in place (its layers are shared with the classifier).
        spec: The task.
        train_dataset: Repeating batches of (features, label) of the pipeline's train split.
        plan: What to pre-train on and for how long.
        epochs: Epochs the pre-training steps are spread over.

    Returns:
        The pre-training history with keys prefixed "pretrain_" (empty for "none").
    """
    if plan.pretrain == "none":
        return {}
    base.trainable = True
    with base.distribute_strategy.scope():
        if plan.pretrain == "source_classes":
            model = compile_classifier(
                add_head(base, num_classes=len(plan.source_labels), name="source"),
                plan.pretraining.learning_rate,
            )
            dataset = select_labels(
                train_dataset,
                plan.source_labels,
                batch_size=batch_size_of(train_dataset),
                training=True,
            )
        else:
            model = add_decoder(base, spec)
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=plan.pretraining.learning_rate),
                loss=keras.losses.MeanSquaredError(),
            )
            dataset = train_dataset.map(
                lambda features, label: (features, features[spec.feature_key])
            )
    history = _fit(model, dataset, plan.pretraining, epochs=epochs)
    return {f"pretrain_{key}": values for key, values in history.items()}


def train_transfer(
    classifier: keras.Model,
    spec: TaskSpec,
    plan: TransferPlan,
    pretrain_dataset: tf.data.Dataset,
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset | None = None,
    *,
    epochs: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Pre-trains the classifier's base, trains the head on a frozen base, then fine-tunes.

    Args:
        classifier: A model from `add_head`; trained in place.
        spec: The task.
        plan: The pre-training and the two phases.
        pretrain_dataset: Repeating (features, label) batches the base is pre-trained on.
        train_dataset: Repeating (features, label) batches of the target task.
        eval_dataset: Target validation batches evaluated after each epoch, if any.
        epochs: Epochs each phase's steps are spread over.
        callbacks: Keras callbacks of both target phases (e.g. TensorBoard).

    Returns:
        The history: "pretrain_*" keys, then the target keys ("loss", "accuracy",
        "val_loss", ...) over phase 1's epochs followed by phase 2's.
    """
    base = base_of(classifier)
    history = pretrain(base, spec, pretrain_dataset, plan, epochs=epochs)
    phases = []
    for trainable, phase in ((False, plan.head), (True, plan.fine_tuning)):
        base.trainable = trainable
        # Recompiling makes the new trainable state and learning rate take effect.
        with classifier.distribute_strategy.scope():
            compile_classifier(classifier, phase.learning_rate)
        phases.append(
            _fit(
                classifier,
                train_dataset,
                phase,
                epochs=epochs,
                validation_data=eval_dataset,
                callbacks=callbacks,
            )
        )
    for key in phases[0]:
        history[key] = phases[0][key] + phases[1][key]
    return history


@dataclass(frozen=True)
class TransferGain:
    """What `measure_transfer_gain` measured (mean test accuracies over the seeds).

    Attributes:
        pretrain: What the base was pre-trained on.
        labelled_per_class: Labelled training images per target class.
        pretrained_accuracy: Test accuracy on the target classes with the pre-trained base.
        scratch_accuracy: The same network trained from scratch on the same labelled images and
            steps.
        pretrained_accuracies: Per seed.
        scratch_accuracies: Per seed.
        seconds: Wall time of the whole measurement.
    """

    pretrain: str
    labelled_per_class: int
    pretrained_accuracy: float
    scratch_accuracy: float
    pretrained_accuracies: tuple[float, ...]
    scratch_accuracies: tuple[float, ...]
    seconds: float

    @property
    def gain(self) -> float:
        """Accuracy points won by pre-training (pre-trained minus scratch)."""
        return self.pretrained_accuracy - self.scratch_accuracy


def _digits_splits():
    """The digits train and test splits of the pipeline (70/15/15, seed 0), z-scored."""
    from models.data import digits

    pixels, labels = digits.load_digits_arrays()
    indices = digits.split_indices(labels, digits.SplitFractions(), seed=0)
    train_pixels = pixels[indices["train"]].astype(np.float32)
    # The pipeline's Transform: one mean and variance over every pixel of the train split.
    mean, std = train_pixels.mean(), train_pixels.std()

    def split(name):
        return (pixels[indices[name]].astype(np.float32) - mean) / std, labels[indices[name]]

    return split("train"), split("test")


def _repeating(features: np.ndarray, labels: np.ndarray, feature_key: str, seed: int, batch_size):
    dataset = tf.data.Dataset.from_tensor_slices(({feature_key: features}, labels))
    return dataset.shuffle(len(labels), seed=seed).repeat().batch(batch_size, drop_remainder=True)


def measure_transfer_gain(
    *,
    labelled_per_class: int = 10,
    pretrain_task: str = "source_classes",
    source_labels: Sequence[int] = (0, 1, 2, 3, 4),
    target_labels: Sequence[int] = (5, 6, 7, 8, 9),
    pretraining: Phase = Phase(400, 2e-3),
    head: Phase = Phase(150, 2e-3),
    fine_tuning: Phase = Phase(150, 1e-3),
    seeds: Sequence[int] = (0, 1, 2),
    filters: int = 32,
    batch_size: int = 32,
) -> TransferGain:
    """Measures what pre-training buys on a target task with little labelled data.

    Both models see the same `labelled_per_class` images of each target label (from the digits
    train split, the pipeline's 70/15/15 split) for the same `head.steps + fine_tuning.steps`
    steps: the pre-trained one as the two phases (head on the frozen pre-trained base, then
    fine-tuning), the scratch one with every layer trainable at the head's learning rate. The
    base is pre-trained on the train images of `source_labels` (or, for "autoencoder", on every
    train image without labels). Accuracy is measured on the test split's target images.

    Args:
        labelled_per_class: Labelled target images per class.
        pretrain_task: "source_classes" or "autoencoder".
        source_labels: Labels of the source task.
        target_labels: Labels of the target task (renumbered 0..n-1).
        pretraining: Steps and learning rate of the pre-training.
        head: Phase 1.
        fine_tuning: Phase 2.
        seeds: One measurement per seed (labelled images, initial weights, shuffling).
        filters: Filters of the dlforge base's first block.
        batch_size: Batch size of every phase.

    Returns:
        The mean and per-seed test accuracies of both models.
    """
    from models.tasks import DIGITS

    if pretrain_task not in ("source_classes", "autoencoder"):
        raise ValueError(
            f"Expected pretrain_task 'source_classes' or 'autoencoder', received {pretrain_task!r}."
        )
    start = time.monotonic()
    (train_x, train_y), (test_x, test_y) = _digits_splits()
    test_rows = np.isin(test_y, target_labels)
    test_x = test_x[test_rows]
    test_y = np.searchsorted(np.asarray(target_labels), test_y[test_rows])
    plan = TransferPlan(pretrain_task, tuple(source_labels), pretraining, head, fine_tuning)
    pretrained, scratch = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        labelled = np.concatenate(
            [
                rng.choice(np.flatnonzero(train_y == label), labelled_per_class, replace=False)
                for label in target_labels
            ]
        )
        target_x = train_x[labelled]
        target_y = np.searchsorted(np.asarray(target_labels), train_y[labelled])
        if pretrain_task == "source_classes":
            source_rows = np.isin(train_y, source_labels)
        else:
            source_rows = np.ones(len(train_y), bool)
        source = _repeating(
            train_x[source_rows], train_y[source_rows], DIGITS.feature_key, seed, batch_size
        )
        target = _repeating(target_x, target_y, DIGITS.feature_key, seed, batch_size)

        keras.utils.set_random_seed(seed)
        classifier = add_head(
            make_dlforge_base(DIGITS, filters=filters), num_classes=len(target_labels)
        )
        train_transfer(classifier, DIGITS, plan, source, target)
        pretrained.append(_accuracy(classifier, test_x, test_y))

        keras.utils.set_random_seed(seed)
        baseline = compile_classifier(
            add_head(make_dlforge_base(DIGITS, filters=filters), num_classes=len(target_labels)),
            head.learning_rate,
        )
        _fit(baseline, target, Phase(head.steps + fine_tuning.steps, head.learning_rate), epochs=1)
        scratch.append(_accuracy(baseline, test_x, test_y))
    return TransferGain(
        pretrain=pretrain_task,
        labelled_per_class=labelled_per_class,
        pretrained_accuracy=float(np.mean(pretrained)),
        scratch_accuracy=float(np.mean(scratch)),
        pretrained_accuracies=tuple(pretrained),
        scratch_accuracies=tuple(scratch),
        seconds=time.monotonic() - start,
    )


def _accuracy(model: keras.Model, features: np.ndarray, labels: np.ndarray) -> float:
    probabilities = model.predict(features, batch_size=256, verbose=0)
    return float(np.mean(probabilities.argmax(axis=1) == labels))
