"""Deep Q-network: a Keras Q-network trained from a replay buffer of n-step transitions against
a target network, with the Huber loss, epsilon decay, Double DQN's target and, as an option, a
dueling head.

Speed on a few CPU cores comes from running every tensor step as a compiled `tf.function` with
a fixed input signature (acting on one observation, one gradient step, the target update):
no `model.predict` or `fit` per environment step, and once training runs, one compiled call per
environment step (the gradient step also returns the next greedy action).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from models.keras_lib import keras
from models.rl import common
from models.rl.environments import ACTIONS, OBSERVATIONS, Q_VALUES, EnvironmentSpec

# The budget of the pipeline: DQN solves CartPole-v1 in 177-339 episodes with seeds 0-7
# (benchmarks/rl.py, docs/rl.md); 600 is the target.
DEFAULT_EPISODES = 600


def make_model(
    spec: EnvironmentSpec,
    *,
    num_layers: int = 2,
    units: int = 128,
    learning_rate: float = 1e-3,
    dueling: bool = False,
    seed: int = 0,
) -> keras.Model:
    """Builds the compiled Q-network: observation -> one Q-value per action.

    Args:
        spec: The environment.
        num_layers: Hidden layers, >= 1.
        units: Width of each hidden layer, >= 1.
        learning_rate: Adam step size, > 0.
        dueling: Whether the last layer is a dueling head: a state value plus mean-zero
            action advantages (Wang et al., 2016).
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
        spec.num_actions + 1 if dueling else spec.num_actions,
        num_layers=num_layers,
        units=units,
        output_activation=None,
        name="dqn",
        seed=seed,
    )
    if dueling:
        model = keras.Model(model.input, DuelingHead(name="q_values")(model.output), name="dqn")
    # Clipping the gradient norm keeps one large TD error from wrecking the network.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=10.0), loss=keras.losses.Huber()
    )
    return model


class DuelingHead(keras.layers.Layer):
    """[value, advantage per action] -> Q-values value + advantage - mean advantage.

    Centring the advantages makes the split identifiable: the value stream learns the state's
    value from every transition, whichever action it took.
    """

    def call(self, inputs):
        value, advantages = inputs[:, :1], inputs[:, 1:]
        return value + advantages - tf.reduce_mean(advantages, axis=-1, keepdims=True)


NETWORK_HYPERPARAMETERS = ("num_layers", "units", "learning_rate", "dueling")


def search_space(hp) -> dict:
    """The tunable hyper-parameters of DQN (network and training), with their defaults."""
    return {
        "num_layers": hp.Int("num_layers", 1, 3, default=2),
        "units": hp.Choice("units", [64, 128, 256], default=256),
        "learning_rate": hp.Float("learning_rate", 1e-4, 3e-3, sampling="log", default=5e-4),
        "discount": hp.Float("discount", 0.9, 0.999, default=0.99),
        "batch_size": hp.Choice("batch_size", [32, 64, 128], default=64),
        "buffer_size": hp.Choice("buffer_size", [10000, 50000, 100000], default=100000),
        "warmup_steps": hp.Int("warmup_steps", 100, 5000, sampling="log", default=500),
        "epsilon_decay_steps": hp.Int(
            "epsilon_decay_steps", 1000, 50000, sampling="log", default=2000
        ),
        "final_epsilon": hp.Float("final_epsilon", 0.0, 0.1, default=0.02),
        "target_update_period": hp.Int(
            "target_update_period", 1, 1000, sampling="log", default=500
        ),
        "target_update_rate": hp.Float(
            "target_update_rate", 0.001, 1.0, sampling="log", default=1.0
        ),
        "train_frequency": hp.Int("train_frequency", 1, 4, default=1),
        "double_dqn": hp.Boolean("double_dqn", default=True),
        "dueling": hp.Boolean("dueling", default=False),
        "n_step": hp.Int("n_step", 1, 5, default=3),
        "gradient_steps": hp.Int("gradient_steps", 1, 4, default=1),
    }


def build_model(hp, spec: EnvironmentSpec) -> keras.Model:
    """Builds the Q-network for one KerasTuner trial."""
    values = search_space(hp)
    return make_model(spec, **{name: values[name] for name in NETWORK_HYPERPARAMETERS})


def sample_batch(spec: EnvironmentSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and Q targets on which `train_on_batch` takes one step."""
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 1, (size, spec.model_input_size)).astype(np.float32),
        rng.normal(0, 1, (size, spec.num_actions)).astype(np.float32),
    )


def model_signatures(model: keras.Model, spec: EnvironmentSpec) -> dict:
    """`serving_default`: observations [n, observation_size] -> greedy actions and Q-values."""

    @tf.function(
        input_signature=[tf.TensorSpec([None, spec.observation_size], tf.float32, OBSERVATIONS)]
    )
    def serve(observations):
        q_values = model(_model_inputs(observations, spec), training=False)
        return {ACTIONS: tf.argmax(q_values, axis=-1), Q_VALUES: q_values}

    return {"serving_default": serve.get_concrete_function()}


def _model_inputs(observations: tf.Tensor, spec: EnvironmentSpec) -> tf.Tensor:
    if not spec.num_states:
        return observations
    states = tf.cast(tf.round(tf.reshape(observations, [-1])), tf.int32)
    return tf.one_hot(states, spec.num_states)


class ReplayBuffer:
    """A fixed-size ring of transitions, sampled uniformly.

    A transition may span n environment steps: its reward is then the discounted sum of their
    rewards and its `discount` the factor of the value of the state it ends in (discount ** n).

    Args:
        capacity: Transitions kept; the oldest is overwritten first.
        observation_size: Values per observation.
    """

    def __init__(self, capacity: int, observation_size: int):
        if capacity < 1:
            raise ValueError(f"Expected a capacity >= 1, received {capacity}.")
        self.capacity = capacity
        self.observations = np.zeros((capacity, observation_size), np.float32)
        self.next_observations = np.zeros((capacity, observation_size), np.float32)
        self.actions = np.zeros(capacity, np.int32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.discounts = np.zeros(capacity, np.float32)
        self.added = 0

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def add(
        self,
        observation: np.ndarray,
        action: int,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
        discount: float,
    ) -> None:
        """Stores one transition. `terminated` is a true end (no bootstrapping); a time-limit
        truncation is not, so it is stored as False. `discount` multiplies the value of
        `next_observation` in the TD target."""
        index = self.added % self.capacity
        self.observations[index] = observation
        self.actions[index] = action
        self.rewards[index] = reward
        self.next_observations[index] = next_observation
        self.terminated[index] = float(terminated)
        self.discounts[index] = discount
        self.added += 1

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """(observations, actions, rewards, next_observations, terminated, discounts) of a
        uniform batch.

        Raises:
            ValueError: If the buffer is empty.
        """
        if not len(self):
            raise ValueError("Expected transitions in the replay buffer, found none.")
        indices = rng.integers(0, len(self), batch_size)
        return (
            self.observations[indices],
            self.actions[indices],
            self.rewards[indices],
            self.next_observations[indices],
            self.terminated[indices],
            self.discounts[indices],
        )


class NStepWindow:
    """Turns an episode's one-step transitions into n-step ones (as Rainbow does, Hessel et al.,
    2018): rewards reach the values of earlier states n times faster than one step at a time.

    The transition from step t carries r_t + discount r_{t+1} + ... + discount^(n-1) r_{t+n-1}
    and ends in the observation after step t+n-1, whose value the TD target discounts by
    discount^n. At the episode's end the last transitions are shorter: a window never crosses
    into the next episode, and each keeps the episode's `terminated` (a time-limit truncation
    still bootstraps, from the last observation, by discount^(steps left)).

    Args:
        steps: n, >= 1 (1: plain one-step transitions).
        discount: The return's discount factor.
    """

    def __init__(self, steps: int, discount: float):
        if steps < 1:
            raise ValueError(f"Expected n_step >= 1, received {steps}.")
        self.steps = steps
        self.discount = discount
        self.pending: collections.deque = collections.deque()

    def push(
        self,
        observation: np.ndarray,
        action: int,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> list[tuple]:
        """Adds one environment step; returns the transitions it completes, each as the
        arguments of `ReplayBuffer.add`."""
        self.pending.append((observation, action, reward))
        completed = []
        if len(self.pending) == self.steps:
            completed.append(self._transition(next_observation, terminated))
            self.pending.popleft()
        if terminated or truncated:
            while self.pending:
                completed.append(self._transition(next_observation, terminated))
                self.pending.popleft()
        return completed

    def _transition(self, next_observation: np.ndarray, terminated: bool) -> tuple:
        observation, action, _ = self.pending[0]
        total = sum(self.discount**index * item[2] for index, item in enumerate(self.pending))
        return (
            observation,
            action,
            total,
            next_observation,
            terminated,
            self.discount ** len(self.pending),
        )


def td_targets(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    discounts: tf.Tensor,
    next_online_q: tf.Tensor,
    next_target_q: tf.Tensor,
    double_dqn: bool,
) -> tf.Tensor:
    """TD targets: r + discount * (1 - terminated) * value of the next state.

    The next state's value is the target network's largest Q-value (DQN), or the target
    network's Q-value of the online network's best action (Double DQN: choosing and valuing the
    action with different networks counters the max's overestimation). For an n-step
    transition r is the discounted sum of its n rewards and discount the n-th power.
    """
    if double_dqn:
        best = tf.argmax(next_online_q, axis=-1, output_type=tf.int32)
        next_value = tf.gather(next_target_q, best, axis=1, batch_dims=1)
    else:
        next_value = tf.reduce_max(next_target_q, axis=-1)
    return rewards + discounts * (1.0 - terminated) * next_value


def make_train_step(online: keras.Model, target: keras.Model, *, double_dqn: bool):
    """A compiled gradient step of the online network's Huber TD loss.

    The step also returns the greedy action of one more observation under the updated
    weights: the training loop passes the observation it acts on next, which saves a second
    compiled call per environment step (about a fifth of a step's time on 2 cores).

    Returns:
        A function of (observations, actions, rewards, next_observations, terminated,
        discounts, acting_observation [1, input size]) -> (loss, greedy action).
    """
    loss_function = keras.losses.Huber()
    optimizer = online.optimizer
    size = online.input_shape[-1]
    vector = tf.TensorSpec([None, size], tf.float32)
    scalars = tf.TensorSpec([None], tf.float32)
    signature = [vector, tf.TensorSpec([None], tf.int32), scalars, vector, scalars, scalars]

    @tf.function(input_signature=[*signature, tf.TensorSpec([1, size], tf.float32)])
    def train_step(
        observations, actions, rewards, next_observations, terminated, discounts, acting_observation
    ):
        targets = td_targets(
            rewards,
            terminated,
            discounts,
            online(next_observations, training=False),
            target(next_observations, training=False),
            double_dqn,
        )
        with tf.GradientTape() as tape:
            q_values = online(observations, training=True)
            taken = tf.gather(q_values, actions, axis=1, batch_dims=1)
            loss = loss_function(tf.stop_gradient(targets), taken)
        gradients = tape.gradient(loss, online.trainable_variables)
        optimizer.apply_gradients(zip(gradients, online.trainable_variables, strict=True))
        # Automatic control dependencies order this read after the variables' update.
        return loss, tf.argmax(online(acting_observation, training=False)[0])

    return train_step


def make_target_update(online: keras.Model, target: keras.Model, rate: float):
    """A compiled Polyak update target <- rate * online + (1 - rate) * target (1: a copy)."""

    @tf.function
    def update():
        for target_weight, online_weight in zip(
            target.trainable_variables, online.trainable_variables, strict=True
        ):
            target_weight.assign(rate * online_weight + (1.0 - rate) * target_weight)

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
    """Trains a DQN agent.

    Args:
        spec: The environment.
        episodes: Episodes to train at most.
        seed: Seed of the weights, the environment, exploration and replay sampling.
        hyperparameters: Values of `search_space`'s names.
        target: Stop once the trailing 100-episode mean return reaches it; None trains all.
        on_episode: Called after each episode.

    Returns:
        The online Q-network and the returns.
    """
    values = common.hyperparameter_values(search_space, hyperparameters)
    rng = common.seed_everything(seed)
    network = {name: values[name] for name in NETWORK_HYPERPARAMETERS}
    online = make_model(spec, **network, seed=seed)
    target_network = make_model(spec, **network, seed=seed)
    target_network.set_weights(online.get_weights())
    train_step = make_train_step(online, target_network, double_dqn=values["double_dqn"])
    update_target = make_target_update(online, target_network, values["target_update_rate"])
    epsilon = common.LinearSchedule(1.0, values["final_epsilon"], values["epsilon_decay_steps"])
    buffer = ReplayBuffer(values["buffer_size"], spec.model_input_size)
    window = NStepWindow(values["n_step"], values["discount"])
    encode = _encoder(spec)

    @tf.function(input_signature=[tf.TensorSpec([1, spec.model_input_size], tf.float32)])
    def greedy_action(observation):
        return tf.argmax(online(observation, training=False)[0])

    environment = spec.make()
    result = common.TrainingResult(model=online)
    for episode in range(episodes):
        raw, _ = environment.reset(seed=seed if episode == 0 else None)
        observation = encode(raw)
        # The greedy action of `observation` under the current weights, when a train step
        # has computed it.
        greedy = None
        total, done = 0.0, False
        while not done:
            if rng.random() < epsilon(result.steps):
                action = int(rng.integers(spec.num_actions))
            else:
                action = int(greedy_action(observation[None, :]) if greedy is None else greedy)
            raw, reward, terminated, truncated, _ = environment.step(action)
            next_observation = encode(raw)
            for transition in window.push(
                observation, action, reward, next_observation, terminated, truncated
            ):
                buffer.add(*transition)
            observation, total, done = next_observation, total + reward, terminated or truncated
            result.steps += 1
            greedy = None
            if len(buffer) >= values["warmup_steps"]:
                if result.steps % values["train_frequency"] == 0:
                    for _ in range(values["gradient_steps"]):
                        batch = buffer.sample(values["batch_size"], rng)
                        _, greedy = train_step(*batch, observation[None, :])
                if result.steps % values["target_update_period"] == 0:
                    update_target()
        if common.finish_episode(result, total, target, common.SOLVED_WINDOW, on_episode):
            break
    environment.close()
    return result


def _encoder(spec: EnvironmentSpec):
    """Raw observation -> network input (one-hot for a discrete environment)."""
    if spec.num_states:
        identity = np.eye(spec.num_states, dtype=np.float32)
        return lambda raw: identity[int(raw)]
    return lambda raw: np.asarray(raw, np.float32)
