"""Optimizers and losses selectable by name, and the shared softmax head."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import classifier
from models.families import mlp
from models.tasks import DIGITS


@pytest.mark.parametrize(
    ("name", "expected_class", "momentum"),
    [
        ("sgd", keras.optimizers.SGD, 0.0),
        ("momentum", keras.optimizers.SGD, 0.9),
        ("rmsprop", keras.optimizers.RMSprop, None),
        ("adam", keras.optimizers.Adam, None),
    ],
)
def test_optimizers_by_name(name, expected_class, momentum):
    optimizer = classifier.make_optimizer(name, 0.05)
    assert isinstance(optimizer, expected_class)
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == momentum


def test_unknown_optimizer_and_bad_learning_rate_are_clear_errors():
    with pytest.raises(ValueError, match=r"Expected an optimizer in \['sgd'.*received 'lbfgs'"):
        classifier.make_optimizer("lbfgs", 0.1)
    with pytest.raises(ValueError, match="Expected a learning_rate > 0, received 0"):
        classifier.make_optimizer("adam", 0)


def test_losses_take_integer_labels_and_match_their_one_hot_definitions():
    labels = tf.constant([0, 2, 1])
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    one_hot = tf.one_hot(labels, 3)
    cases = {
        "sparse_categorical_crossentropy": keras.losses.categorical_crossentropy,
        "categorical_hinge": keras.losses.categorical_hinge,
        "mean_squared_error": keras.losses.mean_squared_error,
    }
    for name, reference in cases.items():
        loss = classifier.make_loss(name, num_classes=3)
        expected = float(tf.reduce_mean(reference(one_hot, probabilities)))
        assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5), name


def test_one_hot_loss_survives_serialisation():
    loss = classifier.make_loss("categorical_hinge", num_classes=10)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, classifier.OneHotLoss)
    assert (restored.base_loss, restored.num_classes) == ("categorical_hinge", 10)


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"Expected a loss in \[.*'categorical_hinge'.*received 'l1'"
    ):
        classifier.make_loss("l1", num_classes=10)


@pytest.mark.parametrize("loss", classifier.LOSSES)
def test_mlp_learns_with_every_loss(loss):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(256, 64)).astype("float32")
    labels = inputs[:, :10].argmax(axis=1)
    model = mlp.make_model(DIGITS, loss=loss, learning_rate=0.01, dropout=0.0)
    history = model.fit({DIGITS.feature_key: inputs}, labels, epochs=8, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > history.history["accuracy"][0] + 0.2
