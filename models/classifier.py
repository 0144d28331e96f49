"""What the classifier families share: optimizers and losses by name, the softmax head, and
the family surface's sample batch and signatures for image classification."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.spec import TaskSpec

DENSE_SIGNATURE = "serving_dense"

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
LOSSES = ("sparse_categorical_crossentropy", "categorical_hinge", "mean_squared_error")


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Builds an optimizer by name.

    Args:
        name: "sgd" (plain mini-batch SGD), "momentum" (mini-batch SGD with Nesterov momentum
            0.9), "rmsprop" or "adam".
        learning_rate: Step size, > 0.

    Returns:
        A new Keras optimizer.

    Raises:
        ValueError: For an unknown name or a learning rate <= 0.
    """
    if learning_rate <= 0:
        raise ValueError(f"Expected a learning_rate > 0, received {learning_rate}.")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"Expected an optimizer in {list(OPTIMIZERS)}, received {name!r}.")


@keras.utils.register_keras_serializable(package="dlforge")
class OneHotLoss(keras.losses.Loss):
    """Applies a loss that wants one-hot targets to integer class labels."""

    def __init__(self, base_loss: str, num_classes: int, **kwargs):
        super().__init__(name=kwargs.pop("name", f"one_hot_{base_loss}"), **kwargs)
        self.base_loss = base_loss
        self.num_classes = num_classes
        self._loss_fn = keras.losses.get(base_loss)

    def call(self, y_true, y_pred):
        import tensorflow as tf

        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        return self._loss_fn(tf.one_hot(labels, self.num_classes), y_pred)

    def get_config(self):
        return {
            **super().get_config(),
            "base_loss": self.base_loss,
            "num_classes": self.num_classes,
        }


def make_loss(name: str, num_classes: int) -> keras.losses.Loss:
    """Builds a classification loss over integer labels and softmax outputs.

    Args:
        name: "sparse_categorical_crossentropy", "categorical_hinge" or "mean_squared_error"
            (the Brier score of the predicted distribution).
        num_classes: Number of classes, used to one-hot the labels for the last two.

    Returns:
        A Keras loss.

    Raises:
        ValueError: For an unknown name.
    """
    if name == "sparse_categorical_crossentropy":
        return keras.losses.SparseCategoricalCrossentropy()
    if name in ("categorical_hinge", "mean_squared_error"):
        return OneHotLoss(name, num_classes)
    raise ValueError(f"Expected a loss in {list(LOSSES)}, received {name!r}.")


def finish_classifier(
    inputs: keras.KerasTensor,
    hidden: keras.KerasTensor,
    *,
    name: str,
    num_classes: int,
    optimizer: str,
    learning_rate: float,
    loss: str,
) -> keras.Model:
    """Adds the softmax layer on `hidden` and compiles the model with an accuracy metric.

    Args:
        inputs: The model's input tensor.
        hidden: The last hidden representation.
        name: Model name.
        num_classes: Width of the softmax layer.
        optimizer: One of `OPTIMIZERS`.
        learning_rate: Step size.
        loss: One of `LOSSES`.

    Returns:
        The compiled model, whose output layer is named "probabilities".
    """
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(hidden)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=make_loss(loss, num_classes),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real digits rows, z-scored as Transform does, with their labels.

    Args:
        spec: The digits task.
        size: Rows, drawn without replacement.
        seed: Seed of the draw.

    Returns:
        (inputs float32 [size, num_features], labels int64 [size]).
    """
    from models.data.digits import load_digits_arrays

    pixels, labels = load_digits_arrays()
    rows = np.random.default_rng(seed).choice(len(pixels), size, replace=False)
    values = pixels.astype(np.float32)
    scaled = (values - values.mean()) / values.std()
    return scaled[rows, : spec.num_features], labels[rows]


def model_signatures(model: keras.Model, spec: TaskSpec) -> dict:
    """`serving_dense` over the model input: z-scored values -> probabilities and class ids.

    (The pipeline's export puts the transform in front of it; see `models.export`.)
    """

    @tf.function(input_signature=[tf.TensorSpec([None, spec.num_features], tf.float32)])
    def serve(values):
        probabilities = model(values)
        return {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=-1)}

    return {DENSE_SIGNATURE: serve.get_concrete_function()}
