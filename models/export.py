"""The serving contract of exported classifiers and forecasters, defined once.

Two signatures, both ending in the same model behind the same preprocessing:
- `serving_default`: serialized tf.Examples of raw features (what TF Serving's classify/predict
  clients and TFMA send) -> probabilities and class ids (a classifier), or the forecast in the
  label's raw unit (a regression model: the transform's scaling of the label is undone); the
  transform graph is inside;
- `serving_dense`: a dense float tensor of raw feature values in a fixed order (for clients that
  send plain numbers, and for TFLite conversion, which cannot parse tf.Examples). It applies the
  transform graph's own per-column affine map (read off the graph at export and checked), in
  float, with no int64 round trip: a TFLite model of it is one multiply and one add before the
  network, which full-integer quantization handles, instead of 64 slices, rounds and casts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.keras_lib import keras

DEFAULT_SIGNATURE = "serving_default"
DENSE_SIGNATURE = "serving_dense"
EXAMPLES_INPUT = "examples"
DENSE_INPUT = "inputs"
PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"
FORECAST = "forecast"
# How closely the transform graph must match slope * value + intercept on a probe row.
AFFINE_TOLERANCE = 1e-4


def _outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
    return {PROBABILITIES: probabilities, CLASS_IDS: tf.argmax(probabilities, axis=-1)}


def dense_affine_map(
    transform_layer: keras.layers.Layer,
    raw_spec: dict,
    dense_keys: Sequence[str],
    feature_key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The transform graph's map from dense raw values to the model input, per column.

    The graph is evaluated on a row of zeros and a row of ones, which gives each column's
    intercept and slope, and then on a row of other whole values, which must match
    `slope * value + intercept`.

    Args:
        transform_layer: `TFTransformOutput.transform_features_layer()`.
        raw_spec: Raw feature spec (without the label).
        dense_keys: Raw features, in column order; each a fixed-length scalar feature.
        feature_key: The transformed feature the model takes.

    Returns:
        (slope, intercept), float32 arrays of shape [len(dense_keys)].

    Raises:
        ValueError: If the transform does not map the columns one to one and affinely onto
            `feature_key` (e.g. a vocabulary or a bucketisation), so the dense path cannot
            reproduce it.
    """

    def transformed(row: np.ndarray) -> np.ndarray:
        features = {
            key: tf.cast([[row[index]]], raw_spec[key].dtype)
            for index, key in enumerate(dense_keys)
        }
        return np.asarray(transform_layer(features)[feature_key], np.float64).reshape(-1)

    width = len(dense_keys)
    intercept = transformed(np.zeros(width))
    if intercept.shape != (width,):
        raise ValueError(
            f"Expected the transform to map {width} raw features onto {width} values of "
            f"{feature_key!r}, received {intercept.size} values."
        )
    slope = transformed(np.ones(width)) - intercept
    probe = (np.arange(width) * 7) % 13 + 2.0
    if not np.allclose(
        transformed(probe), probe * slope + intercept, rtol=AFFINE_TOLERANCE, atol=AFFINE_TOLERANCE
    ):
        raise ValueError(
            f"Expected a transform that scales and shifts each raw feature into {feature_key!r} "
            "(like a z-score), received one that does not: the dense signature cannot apply it."
        )
    return slope.astype(np.float32), intercept.astype(np.float32)


def label_affine_map(
    transform_layer: keras.layers.Layer,
    raw_spec: dict,
    dense_keys: Sequence[str],
    label_key: str,
    label_spec: tf.io.FixedLenFeature,
) -> tuple[float, float]:
    """The transform graph's map of a float label onto the transformed label the model fits.

    The graph is evaluated with the label at 0 and 1 (slope and intercept) and at a third value,
    which must match `slope * value + intercept`; the raw features are zeros.

    Args:
        transform_layer: `TFTransformOutput.transform_features_layer()`.
        raw_spec: Raw feature spec (without the label).
        dense_keys: Raw features the transform needs beside the label.
        label_key: The raw label, which the transform also outputs under this name.
        label_spec: The label's raw feature spec.

    Returns:
        (slope, intercept) of the label's scaling.

    Raises:
        ValueError: If the transform does not output the label, scales it to nothing (slope 0),
            or maps it other than affinely.
    """

    def transformed(value: float) -> float:
        features = {key: tf.zeros([1, 1], raw_spec[key].dtype) for key in dense_keys}
        features[label_key] = tf.cast([[value]], label_spec.dtype)
        outputs = transform_layer(features)
        if label_key not in outputs:
            raise ValueError(
                f"Expected the transform to output the label {label_key!r}, received only "
                f"{sorted(outputs)}."
            )
        return float(np.asarray(outputs[label_key], np.float64).reshape(-1)[0])

    intercept = transformed(0.0)
    slope = transformed(1.0) - intercept
    probe = 7.0
    if slope == 0 or not np.isclose(
        transformed(probe), probe * slope + intercept, rtol=AFFINE_TOLERANCE, atol=AFFINE_TOLERANCE
    ):
        raise ValueError(
            f"Expected a transform that scales and shifts the label {label_key!r} (so serving can "
            f"undo it), received one that maps it with slope {slope} or not affinely."
        )
    return slope, intercept


def make_signatures(
    model: keras.Model,
    transform_output: tft.TFTransformOutput,
    *,
    label_key: str,
    dense_keys: Sequence[str],
    kind: str = "classification",
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Builds the serving signatures of a model trained on transformed features.

    Args:
        model: The trained model; it takes one transformed feature (its input's name).
        transform_output: The Transform graph the model was trained behind.
        label_key: Raw label feature, left out of what serving parses.
        dense_keys: Raw features, in the column order of the dense signature's input; each must
            be a fixed-length scalar feature in the raw schema, mapped affinely (per column)
            onto the model's input.
        kind: "classification" (outputs probabilities and class ids) or "regression" (outputs
            the forecast, the model's output mapped back through the label's scaling, see
            `label_affine_map`).

    Returns:
        Signature name -> concrete function, for `model.save(..., signatures=...)`.

    Raises:
        ValueError: If the model has more than one input, or the transform is not affine per
            column (see `dense_affine_map`) or, for regression, on the label.
    """
    if len(model.inputs) != 1:
        raise ValueError(
            f"Expected a model with one input, received {len(model.inputs)}: {model.input_names}."
        )
    model.tft_layer = transform_output.transform_features_layer()
    raw_spec = dict(transform_output.raw_feature_spec())
    label_spec = raw_spec.pop(label_key, None)
    slope, intercept = dense_affine_map(model.tft_layer, raw_spec, dense_keys, model.input_names[0])
    outputs = _outputs
    if kind == "regression":
        label_slope, label_intercept = label_affine_map(
            model.tft_layer, raw_spec, dense_keys, label_key, label_spec
        )

        def outputs(predictions: tf.Tensor) -> dict[str, tf.Tensor]:
            return {FORECAST: (tf.reshape(predictions, [-1]) - label_intercept) / label_slope}

    elif kind != "classification":
        raise ValueError(f"Expected a kind in ['classification', 'regression'], received {kind!r}.")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(serialized):
        features = tf.io.parse_example(serialized, raw_spec)
        return outputs(model(model.tft_layer(features)))

    @tf.function(
        input_signature=[tf.TensorSpec([None, len(dense_keys)], tf.float32, name=DENSE_INPUT)]
    )
    def serve_dense(values):
        return outputs(model(values * slope + intercept))

    return {
        DEFAULT_SIGNATURE: serve_examples.get_concrete_function(),
        DENSE_SIGNATURE: serve_dense.get_concrete_function(),
    }
