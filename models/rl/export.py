"""The serving contract of every agent's policy, and running a policy from its SavedModel.

`serving_default`: `observations` float32 [n, observation_size] -> `actions` int64 [n] (the
greedy action) and `q_values` (value-based agents) or `probabilities` (policy-gradient agents),
float32 [n, num_actions]. TF Serving / `dlforge serve` serve it as it is, and it converts to a
TFLite model with builtin ops.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import registry
from models.keras_lib import keras
from models.rl.environments import ACTIONS, OBSERVATIONS, EnvironmentSpec, Policy

SIGNATURE = "serving_default"


def export_policy(agent: str, model: keras.Model, spec: EnvironmentSpec, path: str) -> None:
    """Saves the agent's network as a SavedModel serving `SIGNATURE`.

    Args:
        agent: The agent family (its `model_signatures` defines the signature).
        model: The trained network.
        spec: The environment it acts in.
        path: The SavedModel folder to write.
    """
    signatures = registry.get_family(agent).model_signatures(model, spec)
    tf.saved_model.save(model, path, signatures=signatures)


def saved_model_policy(path: str) -> Policy:
    """The greedy policy of an exported SavedModel, as a function of numpy observations."""
    serve = tf.saved_model.load(path).signatures[SIGNATURE]

    def policy(observations: np.ndarray) -> np.ndarray:
        outputs = serve(**{OBSERVATIONS: tf.constant(observations, tf.float32)})
        return outputs[ACTIONS].numpy()

    return policy


def convert_to_tflite(path: str) -> bytes:
    """Converts the SavedModel's `SIGNATURE` to a TFLite model with builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def tflite_policy(model: bytes) -> Policy:
    """The greedy policy of a TFLite model converted by `convert_to_tflite`."""
    runner = tf.lite.Interpreter(model_content=model).get_signature_runner(SIGNATURE)

    def policy(observations: np.ndarray) -> np.ndarray:
        return runner(**{OBSERVATIONS: np.asarray(observations, np.float32)})[ACTIONS]

    return policy
