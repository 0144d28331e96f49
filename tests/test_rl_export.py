"""The policy export: one serving contract for every agent, the same actions in-process, from
the SavedModel and from its TFLite model."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from models import registry
from models.rl import environments, export, qlearning

CARTPOLE = environments.get_environment("cartpole")
FROZENLAKE = environments.get_environment("frozenlake")
AGENTS = {
    "dqn": CARTPOLE,
    "reinforce": CARTPOLE,
    "actor_critic": CARTPOLE,
    "qlearning": FROZENLAKE,
}
OUTPUTS = {
    "dqn": "q_values",
    "reinforce": "probabilities",
    "actor_critic": "probabilities",
    "qlearning": "q_values",
}


def _observations(spec, size=32):
    if spec.num_states:
        return np.arange(spec.num_states, dtype=np.float32)[:, None]
    return np.random.default_rng(0).normal(0, 1, (size, spec.observation_size)).astype(np.float32)


def _model(agent):
    spec = AGENTS[agent]
    if agent == "qlearning":
        # A table whose best action differs between states.
        table = np.random.default_rng(1).uniform(size=(spec.num_states, spec.num_actions))
        return qlearning.make_model(spec, table=table)
    return registry.get_family(agent).build_model(keras_tuner.HyperParameters(), spec)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_savedmodel_and_tflite_serve_the_contract_with_the_same_actions(agent, tmp_path):
    spec = AGENTS[agent]
    model = _model(agent)
    path = str(tmp_path / "policy")
    export.export_policy(agent, model, spec, path)

    signature = tf.saved_model.load(path).signatures["serving_default"]
    assert set(signature.structured_outputs) == {"actions", OUTPUTS[agent]}
    (input_spec,) = signature.structured_input_signature[1].values()
    assert input_spec.name == "observations"
    assert input_spec.shape.as_list() == [None, spec.observation_size]
    assert input_spec.dtype == tf.float32
    assert signature.structured_outputs["actions"].dtype == tf.int64

    observations = _observations(spec)
    outputs = signature(observations=tf.constant(observations))
    values = outputs[OUTPUTS[agent]].numpy()
    np.testing.assert_array_equal(outputs["actions"].numpy(), values.argmax(axis=1))
    in_process = registry.get_family(agent).model_signatures(model, spec)["serving_default"]
    np.testing.assert_allclose(
        in_process(tf.constant(observations))[OUTPUTS[agent]].numpy(), values, rtol=1e-6
    )
    tflite = export.tflite_policy(export.convert_to_tflite(path))
    np.testing.assert_array_equal(
        tflite(observations), export.saved_model_policy(path)(observations)
    )


def test_qlearning_policy_serves_each_state_row_of_the_table(tmp_path):
    table = np.random.default_rng(2).uniform(size=(16, 4)).astype(np.float32)
    path = str(tmp_path / "policy")
    export.export_policy(
        "qlearning", qlearning.make_model(FROZENLAKE, table=table), FROZENLAKE, path
    )
    outputs = tf.saved_model.load(path).signatures["serving_default"](
        observations=tf.constant([[3.0], [0.0], [15.0]])
    )
    np.testing.assert_allclose(outputs["q_values"].numpy(), table[[3, 0, 15]])
    np.testing.assert_array_equal(outputs["actions"].numpy(), table[[3, 0, 15]].argmax(axis=1))


def test_evaluate_plays_side_by_side_like_one_by_one():
    rng = np.random.default_rng(0)
    table = rng.uniform(size=(16, 4))

    def policy(observations):
        return table[observations[:, 0].astype(int)].argmax(axis=1)

    side_by_side = environments.evaluate(FROZENLAKE, policy, 20, seed=5)
    one_by_one = [environments.play_episode(FROZENLAKE, policy, 5 + index) for index in range(20)]
    assert side_by_side == one_by_one
    assert 0 < sum(side_by_side) < 20  # a slippery lake: some episodes succeed, not all
