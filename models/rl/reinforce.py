"""REINFORCE (Monte-Carlo policy gradient) with a learnt state-value baseline.

After each episode the policy takes one step along the gradient of sum_t log pi(a_t | s_t) *
(G_t - V(s_t)), and the value network one step towards the returns G_t. Subtracting the
baseline leaves the gradient unbiased and lowers its variance. Both steps are one compiled
`tf.function` over the whole episode (any length: no retracing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.rl import common
from models.rl.environments import ACTIONS, OBSERVATIONS, PROBABILITIES, EnvironmentSpec

# The budget of the pipeline: REINFORCE solves CartPole-v1 well within it (benchmarks/rl.py).
DEFAULT_EPISODES = 1000

NETWORK_HYPERPARAMETERS = ("num_layers", "units", "learning_rate")


def make_model(
    spec: EnvironmentSpec,
    *,
    num_layers: int = 1,
    units: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> keras.Model:
    """Builds the compiled policy network: observation -> action probabilities.

    Compiled with the cross-entropy of the taken actions: `train_on_batch(observations,
    actions, sample_weight=advantages)` is a REINFORCE step.

    Args:
        spec: The environment.
        num_layers: Hidden layers, >= 1.
        units: Width of each hidden layer, >= 1.
        learning_rate: Adam step size, > 0.
        seed: Seed of the initial weights.

    Raises:
        ValueError: For a value outside the ranges above.
    """
    if num_layers < 1 or units < 1 or learning_rate <= 0:
        raise ValueError(
            "Expected num_layers >= 1, units >= 1 and learning_rate > 0, received "
            f"{num_layers}, {units} and {learning_rate}."
        )
    model = common.dense_network(
        spec.model_input_size,
        spec.num_actions,
        num_layers=num_layers,
        units=units,
        output_activation="softmax",
        name="reinforce",
        seed=seed,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy"
    )
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters of REINFORCE, with their defaults."""
    return {
        "num_layers": hp.Int("num_layers", 1, 2, default=1),
        "units": hp.Choice("units", [32, 64, 128, 256], default=128),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3),
        "value_learning_rate": hp.Float(
            "value_learning_rate", 1e-4, 3e-2, sampling="log", default=5e-3
        ),
        "discount": hp.Float("discount", 0.9, 0.999, default=0.99),
        "normalize_advantages": hp.Boolean("normalize_advantages", default=True),
    }


def build_model(hp, spec: EnvironmentSpec) -> keras.Model:
    """Builds the policy network for one KerasTuner trial."""
    values = search_space(hp)
    return make_model(spec, **{name: values[name] for name in NETWORK_HYPERPARAMETERS})


def sample_batch(spec: EnvironmentSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and taken actions on which `train_on_batch` takes one step."""
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 1, (size, spec.model_input_size)).astype(np.float32),
        rng.integers(0, spec.num_actions, size).astype(np.int64),
    )


def model_signatures(model: keras.Model, spec: EnvironmentSpec) -> dict:
    """`serving_default`: observations -> the most probable actions and the probabilities."""

    @tf.function(
        input_signature=[tf.TensorSpec([None, spec.observation_size], tf.float32, OBSERVATIONS)]
    )
    def serve(observations):
        inputs = observations
        if spec.num_states:
            states = tf.cast(tf.round(tf.reshape(observations, [-1])), tf.int32)
            inputs = tf.one_hot(states, spec.num_states)
        probabilities = model(inputs, training=False)
        return {ACTIONS: tf.argmax(probabilities, axis=-1), PROBABILITIES: probabilities}

    return {"serving_default": serve.get_concrete_function()}


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """G_t = r_t + discount * G_{t+1}, for every step of one episode."""
    returns = np.zeros(len(rewards), np.float32)
    running = 0.0
    for index in range(len(rewards) - 1, -1, -1):
        running = rewards[index] + discount * running
        returns[index] = running
    return returns


def make_update(policy: keras.Model, value: keras.Model, *, normalize_advantages: bool):
    """A compiled REINFORCE-with-baseline update over one episode; returns the policy loss."""
    value_loss_function = keras.losses.Huber()
    size = policy.input_shape[-1]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, size], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
        ]
    )
    def update(observations, actions, returns):
        with tf.GradientTape() as value_tape:
            baseline = tf.squeeze(value(observations, training=True), axis=-1)
            value_loss = value_loss_function(returns, baseline)
        value_gradients = value_tape.gradient(value_loss, value.trainable_variables)
        value.optimizer.apply_gradients(
            zip(value_gradients, value.trainable_variables, strict=True)
        )
        advantages = tf.stop_gradient(returns - baseline)
        if normalize_advantages:
            mean, variance = tf.nn.moments(advantages, axes=[0])
            advantages = (advantages - mean) / (tf.sqrt(variance) + 1e-8)
        with tf.GradientTape() as policy_tape:
            probabilities = policy(observations, training=True)
            taken = tf.gather(probabilities, actions, axis=1, batch_dims=1)
            policy_loss = -tf.reduce_mean(tf.math.log(taken + 1e-8) * advantages)
        policy_gradients = policy_tape.gradient(policy_loss, policy.trainable_variables)
        policy.optimizer.apply_gradients(
            zip(policy_gradients, policy.trainable_variables, strict=True)
        )
        return policy_loss

    return update


def train(
    spec: EnvironmentSpec,
    *,
    episodes: int,
    seed: int,
    hyperparameters: Mapping[str, Any],
    target: float | None = None,
    on_episode: common.EpisodeCallback | None = None,
) -> common.TrainingResult:
    """Trains a REINFORCE agent with a value baseline.

    Args:
        spec: The environment.
        episodes: Episodes to train at most.
        seed: Seed of the weights, the environment and the sampled actions.
        hyperparameters: Values of `search_space`'s names.
        target: Stop once the trailing 100-episode mean return reaches it; None trains all.
        on_episode: Called after each episode.

    Returns:
        The policy network and the returns.
    """
    values = common.hyperparameter_values(search_space, hyperparameters)
    rng = common.seed_everything(seed)
    policy = make_model(spec, **{name: values[name] for name in NETWORK_HYPERPARAMETERS}, seed=seed)
    value = common.dense_network(
        spec.model_input_size,
        1,
        num_layers=values["num_layers"],
        units=values["units"],
        output_activation=None,
        name="value",
        seed=seed + 1000,
    )
    value.compile(optimizer=keras.optimizers.Adam(values["value_learning_rate"]), loss="huber")
    update = make_update(policy, value, normalize_advantages=values["normalize_advantages"])
    identity = np.eye(spec.num_states, dtype=np.float32) if spec.num_states else None

    @tf.function(input_signature=[tf.TensorSpec([1, spec.model_input_size], tf.float32)])
    def action_probabilities(observation):
        return policy(observation, training=False)[0]

    environment = spec.make()
    result = common.TrainingResult(model=policy)
    for episode in range(episodes):
        raw, _ = environment.reset(seed=seed if episode == 0 else None)
        observations, actions, rewards, done = [], [], [], False
        while not done:
            observation = identity[int(raw)] if identity is not None else np.float32(raw)
            probabilities = action_probabilities(observation[None, :]).numpy().astype(np.float64)
            # Sampling by the cumulative sum with the agent's generator keeps runs reproducible.
            action = int(
                np.searchsorted(np.cumsum(probabilities), rng.random() * probabilities.sum())
            )
            action = min(action, spec.num_actions - 1)
            raw, reward, terminated, truncated, _ = environment.step(action)
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            done = terminated or truncated
        result.steps += len(rewards)
        update(
            np.asarray(observations, np.float32),
            np.asarray(actions, np.int32),
            discounted_returns(np.asarray(rewards, np.float32), values["discount"]),
        )
        if common.finish_episode(
            result, float(sum(rewards)), target, common.SOLVED_WINDOW, on_episode
        ):
            break
    environment.close()
    return result
