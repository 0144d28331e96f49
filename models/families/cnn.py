"""Convolutional network: conv blocks (conv, batch norm, pooling, dropout) and a dense head."""

from __future__ import annotations

from models.classifier import finish_classifier, model_signatures, sample_batch
from models.keras_lib import keras
from models.spec import TaskSpec


def make_model(
    spec: TaskSpec,
    *,
    num_blocks: int = 2,
    filters: int = 32,
    kernel_size: int = 3,
    batch_norm: bool = True,
    dropout: float = 0.25,
    dense_units: int = 128,
    optimizer: str = "adam",
    learning_rate: float = 2e-3,
    loss: str = "sparse_categorical_crossentropy",
) -> keras.Model:
    """Builds a compiled CNN classifier for an image task.

    Each block is Conv2D(filters * 2**block) -> [BatchNorm] -> ReLU -> MaxPool(2) -> Dropout; the
    head is global average pooling, a dense ReLU layer, dropout and a softmax layer. Pooling stops
    once the feature map is 2x2, so small images (8x8 digits) take any number of blocks.

    Args:
        spec: The task; `spec.image_shape` must be set.
        num_blocks: Number of convolution blocks, >= 1.
        filters: Filters of the first block; each block doubles them.
        kernel_size: Convolution kernel size.
        batch_norm: Whether to normalise each convolution's output.
        dropout: Dropout rate after each block and in the head, in [0, 1).
        dense_units: Width of the dense head layer.
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.
        loss: One of `models.classifier.LOSSES`.

    Returns:
        A compiled model mapping `spec.feature_key` to class probabilities.

    Raises:
        ValueError: If the task is not an image task or a value is out of range.
    """
    if spec.image_shape is None:
        raise ValueError(f"Expected an image task for the CNN, received task {spec.name!r}.")
    if num_blocks < 1 or filters < 1 or kernel_size < 1 or dense_units < 1:
        raise ValueError(
            "Expected num_blocks, filters, kernel_size and dense_units >= 1, received "
            f"{num_blocks}, {filters}, {kernel_size} and {dense_units}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    hidden = keras.layers.Reshape(spec.image_shape, name="image")(inputs)
    for block in range(num_blocks):
        hidden = keras.layers.Conv2D(
            filters * 2**block,
            kernel_size,
            padding="same",
            use_bias=not batch_norm,
            name=f"conv_{block}",
        )(hidden)
        if batch_norm:
            # Momentum 0.9, not Keras' 0.99: the moving statistics must settle within the few
            # hundred steps a small data set trains for.
            hidden = keras.layers.BatchNormalization(momentum=0.9, name=f"batch_norm_{block}")(
                hidden
            )
        hidden = keras.layers.Activation("relu", name=f"relu_{block}")(hidden)
        if min(hidden.shape[1], hidden.shape[2]) > 2:
            hidden = keras.layers.MaxPooling2D(2, name=f"pool_{block}")(hidden)
        if dropout:
            hidden = keras.layers.Dropout(dropout, name=f"dropout_{block}")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D(name="global_pool")(hidden)
    hidden = keras.layers.Dense(dense_units, activation="relu", name="dense")(hidden)
    if dropout:
        hidden = keras.layers.Dropout(dropout, name="dropout_head")(hidden)
    return finish_classifier(
        inputs,
        hidden,
        name="cnn",
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        num_classes=spec.num_classes,
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the CNN, with their defaults."""
    return {
        "num_blocks": hp.Int("num_blocks", 1, 3, default=2),
        "filters": hp.Choice("filters", [16, 32, 64], default=32),
        "batch_norm": hp.Boolean("batch_norm", default=True),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.125, default=0.25),
        "dense_units": hp.Choice("dense_units", [64, 128, 256], default=128),
        "optimizer": hp.Choice("optimizer", ["adam", "rmsprop", "momentum"], default="adam"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


__all__ = ["build_model", "make_model", "model_signatures", "sample_batch", "search_space"]
