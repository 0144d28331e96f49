"""Advantage actor-critic (A2C) with generalized advantage estimation and an entropy bonus.

The actor is a softmax policy network, the critic a separate state-value network. The agent
does not wait for the end of an episode: every `rollout_steps` steps (and at the episode's end)
the critic's values turn the rollout's rewards into GAE(lambda) advantages, bootstrapped from
the value of the next observation unless the episode terminated (a time-limit truncation
bootstraps). The critic takes one step towards the lambda-returns, the actor one along
log pi(a|s) x advantage plus `entropy_coefficient` x the policy's entropy. Both steps are one
compiled `tf.function` over the rollout (any length: no retracing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.rl import common
from models.rl.environments import EnvironmentSpec

# The budget of the pipeline: the actor-critic solves CartPole-v1 well within it
# (benchmarks/rl.py).
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
    """Builds the compiled actor: observation -> action probabilities.

    Compiled with the cross-entropy of the taken actions: `train_on_batch(observations,
    actions, sample_weight=advantages)` is a policy-gradient step.

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
        name="actor_critic",
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the actor-critic, with their defaults."""
    return {
        "num_layers": hp.Int("num_layers", 1, 2, default=1),
        "units": hp.Choice("units", [32, 64, 128, 256], default=128),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3),
        "value_learning_rate": hp.Float(
            "value_learning_rate", 1e-4, 3e-2, sampling="log", default=5e-3
        ),
        "discount": hp.Float("discount", 0.9, 0.999, default=0.99),
        "gae_lambda": hp.Float("gae_lambda", 0.0, 1.0, default=0.95),
        "rollout_steps": hp.Choice("rollout_steps", [5, 16, 32, 64, 128], default=32),
        "entropy_coefficient": hp.Float("entropy_coefficient", 0.0, 0.05, default=0.01),
        "normalize_advantages": hp.Boolean("normalize_advantages", default=True),
    }


def build_model(hp, spec: EnvironmentSpec) -> keras.Model:
    """Builds the actor for one KerasTuner trial."""
    values = search_space(hp)
    return make_model(spec, **{name: values[name] for name in NETWORK_HYPERPARAMETERS})


# Observations and taken actions for one `train_on_batch` step; `serving_default`: observations
# -> the most probable actions and the probabilities (the same contract as REINFORCE's).
sample_batch = common.policy_batch
model_signatures = common.policy_signatures


def generalized_advantages(
    rewards: tf.Tensor,
    values: tf.Tensor,
    bootstrap_value: tf.Tensor,
    discount: float,
    gae_lambda: float,
) -> tuple[tf.Tensor, tf.Tensor]:
    """GAE(lambda) advantages and the critic's lambda-return targets of one rollout.

    delta_t = r_t + discount * V(s_{t+1}) - V(s_t), with V(s_T) = `bootstrap_value` after the
    last step, and A_t = delta_t + discount * gae_lambda * A_{t+1}. `gae_lambda` 0 gives the
    one-step TD error, 1 the discounted return minus V(s_t).

    Args:
        rewards: float32 [T], the rollout's rewards.
        values: float32 [T], the critic's V(s_t).
        bootstrap_value: float32 scalar, the value after the last step (0 when it terminated).
        discount: The discount factor.
        gae_lambda: The GAE trade-off between bias (0) and variance (1).

    Returns:
        The advantages A_t and the targets A_t + V(s_t), float32 [T] each.
    """
    next_values = tf.concat([values[1:], tf.reshape(bootstrap_value, [1])], axis=0)
    deltas = rewards + discount * next_values - values
    advantages = tf.scan(
        lambda following, delta: delta + discount * gae_lambda * following,
        deltas,
        initializer=tf.constant(0.0, deltas.dtype),
        reverse=True,
    )
    return advantages, advantages + values


def make_update(
    policy: keras.Model,
    value: keras.Model,
    *,
    discount: float,
    gae_lambda: float,
    entropy_coefficient: float,
    normalize_advantages: bool,
):
    """A compiled actor-critic update over one rollout; returns the actor's loss.

    The returned function takes the rollout's observations [T, size], actions [T] and rewards
    [T], the observation after its last step [1, size], and `bootstrap` (1.0, or 0.0 when the
    last step terminated the episode).
    """
    value_loss_function = keras.losses.Huber()
    size = policy.input_shape[-1]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, size], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([1, size], tf.float32),
            tf.TensorSpec([], tf.float32),
        ]
    )
    def update(observations, actions, rewards, next_observation, bootstrap):
        bootstrap_value = bootstrap * value(next_observation, training=False)[0, 0]
        with tf.GradientTape() as value_tape:
            values = tf.squeeze(value(observations, training=True), axis=-1)
            advantages, targets = generalized_advantages(
                rewards, tf.stop_gradient(values), bootstrap_value, discount, gae_lambda
            )
            value_loss = value_loss_function(targets, values)
        value_gradients = value_tape.gradient(value_loss, value.trainable_variables)
        value.optimizer.apply_gradients(
            zip(value_gradients, value.trainable_variables, strict=True)
        )
        if normalize_advantages:
            mean, variance = tf.nn.moments(advantages, axes=[0])
            advantages = (advantages - mean) / (tf.sqrt(variance) + 1e-8)
        with tf.GradientTape() as policy_tape:
            probabilities = policy(observations, training=True)
            log_probabilities = tf.math.log(probabilities + 1e-8)
            taken = tf.gather(log_probabilities, actions, axis=1, batch_dims=1)
            entropy = -tf.reduce_sum(probabilities * log_probabilities, axis=-1)
            policy_loss = -tf.reduce_mean(taken * advantages + entropy_coefficient * entropy)
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
    """Trains an advantage actor-critic agent.

    Args:
        spec: The environment.
        episodes: Episodes to train at most.
        seed: Seed of the weights, the environment and the sampled actions.
        hyperparameters: Values of `search_space`'s names.
        target: Stop once the trailing 100-episode mean return reaches it; None trains all.
        on_episode: Called after each episode.

    Returns:
        The actor (the policy network) and the returns.
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
    update = make_update(
        policy,
        value,
        discount=values["discount"],
        gae_lambda=values["gae_lambda"],
        entropy_coefficient=values["entropy_coefficient"],
        normalize_advantages=values["normalize_advantages"],
    )
    encode = common.observation_encoder(spec)
    sample_action = common.make_policy_sampler(policy, spec, rng)

    environment = spec.make()
    result = common.TrainingResult(model=policy)
    for episode in range(episodes):
        raw, _ = environment.reset(seed=seed if episode == 0 else None)
        observation = encode(raw)
        observations, actions, rewards, total, done = [], [], [], 0.0, False
        while not done:
            action = sample_action(observation)
            raw, reward, terminated, truncated, _ = environment.step(action)
            next_observation = encode(raw)
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            total += float(reward)
            done = terminated or truncated
            if done or len(rewards) == values["rollout_steps"]:
                update(
                    np.asarray(observations, np.float32),
                    np.asarray(actions, np.int32),
                    np.asarray(rewards, np.float32),
                    next_observation[None, :],
                    np.float32(0.0 if terminated else 1.0),
                )
                result.steps += len(rewards)
                observations, actions, rewards = [], [], []
            observation = next_observation
        if common.finish_episode(result, total, target, common.SOLVED_WINDOW, on_episode):
            break
    environment.close()
    return result
