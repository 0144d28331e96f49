"""The serving contract of exported classifiers, defined once.

Two signatures, both ending in the same transform graph and model:
- `serving_default`: serialized tf.Examples of raw features (what TF Serving's classify/predict
  clients and TFMA send) -> probabilities and class ids;
- `serving_dense`: a dense float tensor of raw feature values in a fixed order (for clients that
  send plain numbers, and for TFLite conversion, which cannot parse tf.Examples).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

DEFAULT_SIGNATURE = "serving_default"
DENSE_SIGNATURE = "serving_dense"
EXAMPLES_INPUT = "examples"
DENSE_INPUT = "inputs"
PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"


def _outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
    return {PROBABILITIES: probabilities, CLASS_IDS: tf.argmax(probabilities, axis=-1)}


def make_signatures(
    model: keras.Model,
    transform_output: tft.TFTransformOutput,
    *,
    label_key: str,
    dense_keys: Sequence[str],
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Builds the serving signatures of a classifier trained on transformed features.

    Args:
        model: The trained model; it takes the transformed features.
        transform_output: The Transform graph the model was trained behind.
        label_key: Raw label feature, left out of what serving parses.
        dense_keys: Raw features, in the column order of the dense signature's input; each must
            be a fixed-length scalar feature in the raw schema.

    Returns:
        Signature name -> concrete function, for `model.save(..., signatures=...)`.
    """
    model.tft_layer = transform_output.transform_features_layer()
    raw_spec = dict(transform_output.raw_feature_spec())
    raw_spec.pop(label_key, None)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(serialized):
        features = tf.io.parse_example(serialized, raw_spec)
        return _outputs(model(model.tft_layer(features)))

    @tf.function(
        input_signature=[tf.TensorSpec([None, len(dense_keys)], tf.float32, name=DENSE_INPUT)]
    )
    def serve_dense(values):
        features = {
            key: tf.cast(tf.round(values[:, index : index + 1]), raw_spec[key].dtype)
            if raw_spec[key].dtype.is_integer
            else tf.cast(values[:, index : index + 1], raw_spec[key].dtype)
            for index, key in enumerate(dense_keys)
        }
        return _outputs(model(model.tft_layer(features)))

    return {
        DEFAULT_SIGNATURE: serve_examples.get_concrete_function(),
        DENSE_SIGNATURE: serve_dense.get_concrete_function(),
    }
