"""Keras comes from models.keras_lib, which keeps AutoGraph out of tf_keras' own code."""

import tensorflow as tf
from tensorflow.python.autograph.impl import conversion

from models.families import cnn
from models.keras_lib import keras
from tests.test_layering import REPOSITORY, imported_roots


def test_autograph_leaves_tf_keras_alone_and_still_converts_our_code():
    assert conversion.is_allowlisted(keras.Model.train_step)
    assert conversion.is_allowlisted(keras.layers.Dense(1).call)
    assert not conversion.is_allowlisted(cnn.make_model)


def test_a_layer_with_python_control_flow_on_tensors_still_trains():
    """Keras converts a layer's own `call` explicitly, so `if` on a tensor still works."""

    class ClipNegative(keras.layers.Layer):
        def call(self, inputs):
            if tf.reduce_min(inputs) < 0:
                return tf.nn.relu(inputs)
            return inputs

    model = keras.Sequential([keras.Input((2,)), ClipNegative(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(tf.constant([[-1.0, 2.0]] * 8), tf.ones((8, 1)), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_only_keras_lib_imports_tf_keras():
    sources = [
        path
        for folder in ("models", "components", "pipelines", "serving", "benchmarks")
        for path in (REPOSITORY / folder).rglob("*.py")
    ]
    direct = [
        str(path.relative_to(REPOSITORY))
        for path in sources
        if "tf_keras" in imported_roots(path) and path != REPOSITORY / "models" / "keras_lib.py"
    ]
    assert direct == []
