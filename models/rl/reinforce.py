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
from models.rl.environments import EnvironmentSpec

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
    return common.policy_network(
        spec,
        num_layers=num_layers,
        units=units,
        learning_rate=learning_rate,
        seed=seed,
        name="reinforce",
    )


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


# Observations and taken actions for one `train_on_batch` step; `serving_default`: observations
# -> the most probable actions and the probabilities.
sample_batch = common.policy_batch
model_signatures = common.policy_signatures


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
    value = common.value_network(
        spec,
        num_layers=values["num_layers"],
        units=values["units"],
        learning_rate=values["value_learning_rate"],
        seed=seed + 1000,
    )
    update = make_update(policy, value, normalize_advantages=values["normalize_advantages"])
    encode = common.observation_encoder(spec)
    sample_action = common.make_policy_sampler(policy, spec, rng)

    environment = spec.make()
    result = common.TrainingResult(model=policy)
    for episode in range(episodes):
        raw, _ = environment.reset(seed=seed if episode == 0 else None)
        observations, actions, rewards, done = [], [], [], False
        while not done:
            observation = encode(raw)
            action = sample_action(observation)
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
