"""Small SavedModels for the serving tests, built once per test process.

- `toy_model`: a TF1-style SavedModel (built in a graph, no training) with the signature kinds
  TF Serving distinguishes: a one-input predict `serving_default` (y = x / 2 + 2), a
  two-input predict signature with a `*_bytes` output, a classify and a regress signature.
- `digits_model`: a real dlforge export (models/training.save_model: `serving_default` on
  serialized tf.Examples and `serving_dense` on [n, 64] floats) of an untrained perceptron.
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

_BUILT: dict[str, str] = {}


def toy_model(root: str) -> str:
    """Builds the toy SavedModel under `root` (once) and returns its folder."""
    if "toy" in _BUILT:
        return _BUILT["toy"]
    path = os.path.join(root, "toy")
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None], name="x")
        half_plus_two = tf.identity(x / 2.0 + 2.0, name="y")
        pairs = v1.placeholder(tf.float32, [None, 2], name="pairs")
        tag = v1.placeholder(tf.string, [None], name="tag")
        doubled = tf.identity(pairs * 2.0, name="doubled")
        tag_bytes = tf.identity(tag, name="tag_bytes")
        serialized = v1.placeholder(tf.string, [None], name="examples")
        features = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32)})
        scores = tf.stack([features["x"], 1.0 - features["x"]], axis=1, name="scores")
        classes = tf.tile(tf.constant([["pos", "neg"]]), [tf.shape(serialized)[0], 1])
        regression = tf.expand_dims(features["x"] * 2.0 + 1.0, 1, name="regression")
        info = v1.saved_model.utils.build_tensor_info
        signatures = {
            "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": half_plus_two}),
            "pairs_and_tags": v1.saved_model.predict_signature_def(
                {"pairs": pairs, "tag": tag}, {"doubled": doubled, "tag_bytes": tag_bytes}
            ),
            "classify_x": v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)},
                {"scores": info(scores), "classes": info(classes)},
                "tensorflow/serving/classify",
            ),
            "regress_x": v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)},
                {"outputs": info(regression)},
                "tensorflow/serving/regress",
            ),
        }
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()
    _BUILT["toy"] = path
    return path


def digits_model(root: str, transform_output, family: str = "perceptron") -> str:
    """Exports an untrained model of `family` for digits under `root` (once per family)."""
    if family in _BUILT:
        return _BUILT[family]
    import keras_tuner

    from models import registry, training
    from models.tasks import DIGITS

    tf.keras.utils.set_random_seed(0)
    model = registry.get_family(family).build_model(keras_tuner.HyperParameters(), DIGITS)
    path = os.path.join(root, f"digits_{family}")
    training.save_model(model, transform_output, DIGITS, path)
    _BUILT[family] = path
    return path


def dense_noop_model(root: str) -> str:
    """A model with dlforge's `serving_dense` signature that computes nothing (zeros out)."""
    if "noop" in _BUILT:
        return _BUILT["noop"]

    class NoOp(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="inputs")])
        def dense(self, inputs):
            rows = tf.shape(inputs)[0]
            return {"probabilities": tf.zeros([rows, 10]), "class_ids": tf.zeros([rows], tf.int64)}

    path = os.path.join(root, "noop")
    module = NoOp()
    tf.saved_model.save(module, path, signatures={"serving_dense": module.dense})
    _BUILT["noop"] = path
    return path


def publish(model_dir: str, base_path: str, version: int) -> str:
    """Copies a model into `<base_path>/<version>` with one rename, as the Pusher does."""
    os.makedirs(base_path, exist_ok=True)
    staging = os.path.join(base_path, f".staging-{version}")
    shutil.copytree(model_dir, staging)
    destination = os.path.join(base_path, str(version))
    os.rename(staging, destination)
    return destination
