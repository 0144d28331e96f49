"""Tabular Q-learning with epsilon-greedy exploration and learning-rate and discount schedules.

The table is learnt in numpy; for serving it becomes the kernel of a Keras network over one-hot
states (one-hot x table = the state's row), so it is exported, served and converted to TFLite
like the other agents' networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.rl import common
from models.rl.environments import ACTIONS, OBSERVATIONS, Q_VALUES, EnvironmentSpec

# The budget of the pipeline: the greedy policy reaches the 0.70 success rate by then.
DEFAULT_EPISODES = 20000


def make_model(spec: EnvironmentSpec, *, table: np.ndarray | None = None) -> keras.Model:
    """The Q-table as a compiled network: one-hot state [n, num_states] -> Q-values.

    Args:
        spec: A discrete environment.
        table: Initial Q-table [num_states, num_actions]; zeros when None.

    Raises:
        ValueError: If the environment is not discrete or the table has the wrong shape.
    """
    if not spec.num_states:
        raise ValueError(f"Expected a discrete environment, received {spec.gym_id} (continuous).")
    shape = (spec.num_states, spec.num_actions)
    table = np.zeros(shape, np.float32) if table is None else np.asarray(table, np.float32)
    if table.shape != shape:
        raise ValueError(f"Expected a Q-table of shape {shape}, received {table.shape}.")
    inputs = keras.Input(shape=(spec.num_states,), name=OBSERVATIONS)
    outputs = keras.layers.Dense(
        spec.num_actions,
        use_bias=False,
        kernel_initializer=keras.initializers.Constant(table),
        name="q_table",
    )(inputs)
    model = keras.Model(inputs, outputs, name="qlearning")
    # Fitting one-hot states to Q targets with SGD is the tabular update itself.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters of Q-learning, with their defaults."""
    return {
        "learning_rate": hp.Float("learning_rate", 0.01, 0.5, sampling="log", default=0.1),
        "final_learning_rate": hp.Float(
            "final_learning_rate", 0.001, 0.1, sampling="log", default=0.01
        ),
        "discount": hp.Float("discount", 0.9, 0.999, default=0.99),
        # A discount still rising when exploration ends leaves states the greedy policy seldom
        # visits valued for the short horizon: on the slippery lake, the start row's third
        # state then moves left, not up (0.730 against 0.740 success within 100 steps).
        "initial_discount": hp.Float("initial_discount", 0.5, 0.999, default=0.99),
        "epsilon_decay_fraction": hp.Float("epsilon_decay_fraction", 0.1, 0.9, default=0.5),
        "final_epsilon": hp.Float("final_epsilon", 0.0, 0.1, default=0.01),
    }


def build_model(hp, spec: EnvironmentSpec) -> keras.Model:
    """The (zero) Q-table network; the hyper-parameters shape training, not the network."""
    search_space(hp)
    return make_model(spec)


def sample_batch(spec: EnvironmentSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot states and Q targets on which `train_on_batch` takes one step."""
    rng = np.random.default_rng(seed)
    states = rng.integers(0, spec.num_states, size)
    return (
        np.eye(spec.num_states, dtype=np.float32)[states],
        rng.uniform(0, 1, (size, spec.num_actions)).astype(np.float32),
    )


def model_signatures(model: keras.Model, spec: EnvironmentSpec) -> dict:
    """`serving_default`: state indices as float32 [n, 1] -> greedy actions and Q-values."""

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name=OBSERVATIONS)])
    def serve(observations):
        states = tf.cast(tf.round(tf.reshape(observations, [-1])), tf.int32)
        q_values = model(tf.one_hot(states, spec.num_states), training=False)
        return {ACTIONS: tf.argmax(q_values, axis=-1), Q_VALUES: q_values}

    return {"serving_default": serve.get_concrete_function()}


def train(
    spec: EnvironmentSpec,
    *,
    episodes: int,
    seed: int,
    hyperparameters: Mapping[str, Any],
    target: float | None = None,
    on_episode: common.EpisodeCallback | None = None,
) -> common.TrainingResult:
    """Learns the Q-table by Q-learning.

    The learning rate falls linearly from `learning_rate` to `final_learning_rate`, the
    discount goes from `initial_discount` to `discount` (equal by default: a constant discount)
    and epsilon falls from 1 to `final_epsilon`, each over the first
    `epsilon_decay_fraction` of the episodes. Ties between actions break at random, so an
    untrained state does not always pick action 0.

    Args:
        spec: A discrete environment.
        episodes: Episodes to train at most.
        seed: Seed of the environment and of exploration.
        hyperparameters: Values of `search_space`'s names.
        target: Stop once the trailing 100-episode mean return reaches it; None trains all.
        on_episode: Called after each episode.

    Returns:
        The Q-table network and the returns.
    """
    values = common.hyperparameter_values(search_space, hyperparameters)
    rng = common.seed_everything(seed)
    decay_episodes = int(values["epsilon_decay_fraction"] * episodes)
    epsilon = common.LinearSchedule(1.0, values["final_epsilon"], decay_episodes)
    learning_rate = common.LinearSchedule(
        values["learning_rate"], values["final_learning_rate"], decay_episodes
    )
    discount = common.LinearSchedule(values["initial_discount"], values["discount"], decay_episodes)
    table = np.zeros((spec.num_states, spec.num_actions), np.float64)
    environment = spec.make()
    result = common.TrainingResult(model=None)
    for episode in range(episodes):
        state, _ = environment.reset(seed=seed if episode == 0 else None)
        alpha, gamma, explore = learning_rate(episode), discount(episode), epsilon(episode)
        total, done = 0.0, False
        while not done:
            if rng.random() < explore:
                action = int(rng.integers(spec.num_actions))
            else:
                best = np.flatnonzero(table[state] == table[state].max())
                action = int(best[rng.integers(len(best))])
            next_state, reward, terminated, truncated, _ = environment.step(action)
            bootstrap = 0.0 if terminated else gamma * table[next_state].max()
            table[state, action] += alpha * (reward + bootstrap - table[state, action])
            state, total, done = next_state, total + reward, terminated or truncated
            result.steps += 1
        if common.finish_episode(result, total, target, common.SOLVED_WINDOW, on_episode):
            break
    environment.close()
    result.model = make_model(spec, table=table)
    return result
