"""What every agent shares: schedules, the training result, the solved test, seeding; and what
the policy-gradient agents (REINFORCE, actor-critic) share: their networks, serving signature
and action sampling."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.rl.environments import ACTIONS, OBSERVATIONS, PROBABILITIES, EnvironmentSpec

# Episodes over which the trailing mean return is taken (gymnasium's "solved" convention).
SOLVED_WINDOW = 100


@dataclass(frozen=True)
class LinearSchedule:
    """A value going linearly from `start` to `end` over `duration` steps, then staying."""

    start: float
    end: float
    duration: int

    def __call__(self, step: int) -> float:
        if self.duration <= 0 or step >= self.duration:
            return self.end
        return self.start + (self.end - self.start) * step / self.duration


@dataclass
class TrainingResult:
    """What training gives back.

    Attributes:
        model: The trained Keras network (the one exported for serving).
        returns: Undiscounted return of every training episode, in order.
        steps: Environment steps taken in all.
        solved_at: Episodes (1-based) after which the trailing mean return first reached the
            target, or None.
    """

    model: keras.Model
    returns: list[float] = field(default_factory=list)
    steps: int = 0
    solved_at: int | None = None


def seed_everything(seed: int) -> np.random.Generator:
    """Seeds Python, numpy and TensorFlow (weights) and returns the agent's own generator."""
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    return np.random.default_rng(seed)


def trailing_mean(returns: list[float], window: int = SOLVED_WINDOW) -> float:
    """Mean of the last `window` returns (of all of them while there are fewer)."""
    return float(np.mean(returns[-window:])) if returns else 0.0


def is_solved(returns: list[float], target: float | None, window: int = SOLVED_WINDOW) -> bool:
    """Whether the last `window` episodes (a full window) reach `target` on average."""
    return (
        target is not None and len(returns) >= window and trailing_mean(returns, window) >= target
    )


def hyperparameter_values(search_space: Callable, overrides: Mapping[str, Any]) -> dict:
    """The search space's defaults with `overrides` on top.

    Raises:
        ValueError: If an override names no hyper-parameter of the search space.
    """
    import keras_tuner

    values = search_space(keras_tuner.HyperParameters())
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"Expected hyper-parameters among {sorted(values)}, received {unknown}.")
    return {**values, **overrides}


EpisodeCallback = Callable[[int, float], None]
"""Called after each training episode with its index (0-based) and return."""


def finish_episode(
    result: TrainingResult,
    episode_return: float,
    target: float | None,
    window: int,
    on_episode: EpisodeCallback | None,
) -> bool:
    """Records an episode's return; returns whether training should stop (target reached)."""
    result.returns.append(episode_return)
    if on_episode is not None:
        on_episode(len(result.returns) - 1, episode_return)
    if result.solved_at is None and is_solved(result.returns, target, window):
        result.solved_at = len(result.returns)
        return True
    return False


def dense_network(
    input_size: int,
    output_size: int,
    *,
    num_layers: int,
    units: int,
    output_activation: str | None,
    name: str,
    seed: int,
) -> keras.Model:
    """A multi-layer perceptron with seeded Glorot weights (reproducible without global state)."""
    inputs = keras.Input(shape=(input_size,), name="observations")
    hidden = inputs
    for index in range(num_layers):
        hidden = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + index),
            name=f"dense_{index}",
        )(hidden)
    outputs = keras.layers.Dense(
        output_size,
        activation=output_activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + num_layers),
        name="outputs",
    )(hidden)
    return keras.Model(inputs, outputs, name=name)


def policy_network(
    spec: EnvironmentSpec,
    *,
    num_layers: int,
    units: int,
    learning_rate: float,
    seed: int,
    name: str,
) -> keras.Model:
    """The compiled softmax policy of the policy-gradient agents: observation -> probabilities.

    Compiled with the cross-entropy of the taken actions: `train_on_batch(observations,
    actions, sample_weight=advantages)` is a policy-gradient step.

    Args:
        spec: The environment.
        num_layers: Hidden layers, >= 1.
        units: Width of each hidden layer, >= 1.
        learning_rate: Adam step size, > 0.
        seed: Seed of the initial weights.
        name: Name of the Keras model.

    Raises:
        ValueError: For a value outside the ranges above.
    """
    if num_layers < 1 or units < 1 or learning_rate <= 0:
        raise ValueError(
            "Expected num_layers >= 1, units >= 1 and learning_rate > 0, received "
            f"{num_layers}, {units} and {learning_rate}."
        )
    model = dense_network(
        spec.model_input_size,
        spec.num_actions,
        num_layers=num_layers,
        units=units,
        output_activation="softmax",
        name=name,
        seed=seed,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy"
    )
    return model


def value_network(
    spec: EnvironmentSpec, *, num_layers: int, units: int, learning_rate: float, seed: int
) -> keras.Model:
    """The compiled state-value network of the policy-gradient agents: observation -> V(s)."""
    model = dense_network(
        spec.model_input_size,
        1,
        num_layers=num_layers,
        units=units,
        output_activation=None,
        name="value",
        seed=seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="huber")
    return model


def policy_batch(spec: EnvironmentSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and taken actions on which a policy network's `train_on_batch` takes one
    step (the `sample_batch` of the policy-gradient agents)."""
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 1, (size, spec.model_input_size)).astype(np.float32),
        rng.integers(0, spec.num_actions, size).astype(np.int64),
    )


def policy_signatures(model: keras.Model, spec: EnvironmentSpec) -> dict:
    """`serving_default` of a policy network: observations -> the most probable actions and the
    probabilities (the `model_signatures` of the policy-gradient agents)."""

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


def observation_encoder(spec: EnvironmentSpec) -> Callable[[Any], np.ndarray]:
    """A gymnasium observation as the network's input row: one-hot when the states are
    discrete, else the float32 observation vector."""
    if spec.num_states:
        identity = np.eye(spec.num_states, dtype=np.float32)
        return lambda observation: identity[int(observation)]
    return lambda observation: np.asarray(observation, np.float32)


def make_policy_sampler(
    policy: keras.Model, spec: EnvironmentSpec, rng: np.random.Generator
) -> Callable[[np.ndarray], int]:
    """An action sampled from `policy`'s probabilities for one encoded observation.

    The probabilities come from one compiled call; the draw uses the agent's generator (by the
    cumulative sum), which keeps runs reproducible.
    """

    @tf.function(input_signature=[tf.TensorSpec([1, spec.model_input_size], tf.float32)])
    def action_probabilities(observation):
        return policy(observation, training=False)[0]

    def sample(observation: np.ndarray) -> int:
        probabilities = action_probabilities(observation[None, :]).numpy().astype(np.float64)
        action = int(np.searchsorted(np.cumsum(probabilities), rng.random() * probabilities.sum()))
        return min(action, spec.num_actions - 1)

    return sample
