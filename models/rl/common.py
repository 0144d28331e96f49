"""What every agent shares: schedules, the training result, the solved test, seeding."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from models.keras_lib import keras

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
