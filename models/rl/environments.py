"""The environments agents train on (gymnasium's built-in ones: nothing to download), and
playing seeded episodes with any policy."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

# Name of the serving signature's input and outputs, the same for every agent.
OBSERVATIONS = "observations"
ACTIONS = "actions"
Q_VALUES = "q_values"
PROBABILITIES = "probabilities"


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an agent needs to know about its environment.

    Observations are served as float32 rows of `observation_size` values: the observation
    vector of a continuous environment, or the state index (as one float) of a discrete one.

    Attributes:
        name: The dlforge pipeline name, e.g. "cartpole".
        gym_id: The gymnasium id, e.g. "CartPole-v1".
        kwargs: Keyword arguments of `gymnasium.make`, e.g. {"is_slippery": True}.
        observation_size: Values per served observation row.
        num_states: Number of states of a discrete observation space; 0 when continuous.
        num_actions: Number of discrete actions.
        metric: What the mean return measures: "mean_return", or "success_rate" when the only
            reward is 1 for reaching the goal.
        evaluation_episodes: Episodes an evaluation plays by default: enough that the mean's
            standard error is small against the margin a good policy has over the threshold.
    """

    name: str
    gym_id: str
    observation_size: int
    num_actions: int
    metric: str
    num_states: int = 0
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    evaluation_episodes: int = 100

    @property
    def model_input_size(self) -> int:
        """Width of the network's input: one-hot states when discrete, else the observation."""
        return self.num_states or self.observation_size

    @property
    def reward_threshold(self) -> float:
        """The environment's own threshold (gymnasium's `spec.reward_threshold`)."""
        return float(gym.spec(self.gym_id).reward_threshold)

    def with_kwargs(self, **kwargs: Any) -> EnvironmentSpec:
        """The same environment with other `gymnasium.make` arguments (e.g. not slippery).

        Raises:
            ValueError: If the arguments change the observation or action space.
        """
        changed = dataclasses.replace(self, kwargs={**self.kwargs, **kwargs})
        environment = changed.make()
        states = getattr(environment.observation_space, "n", 0)
        if states != self.num_states or environment.action_space.n != self.num_actions:
            raise ValueError(
                f"Expected {self.gym_id} arguments that keep {self.num_states} states and "
                f"{self.num_actions} actions, received {kwargs} giving {states} and "
                f"{environment.action_space.n}."
            )
        return changed

    def make(self) -> gym.Env:
        """A new environment instance."""
        return gym.make(self.gym_id, **self.kwargs)

    def encode(self, observation: Any) -> np.ndarray:
        """One observation as the float32 row the policy is served."""
        return np.asarray(observation, np.float32).reshape(self.observation_size)

    def to_json(self) -> str:
        """The spec as a JSON string (a TFX component parameter)."""
        return json.dumps({"name": self.name, "kwargs": dict(self.kwargs)}, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> EnvironmentSpec:
        """The spec `to_json` wrote."""
        values = json.loads(text)
        spec = get_environment(values["name"])
        return spec.with_kwargs(**values["kwargs"]) if values["kwargs"] else spec


ENVIRONMENTS: dict[str, EnvironmentSpec] = {
    "cartpole": EnvironmentSpec("cartpole", "CartPole-v1", 4, 2, "mean_return"),
    "frozenlake": EnvironmentSpec(
        "frozenlake",
        "FrozenLake-v1",
        1,
        4,
        "success_rate",
        num_states=16,
        kwargs={"map_name": "4x4", "is_slippery": True},
        # A success rate p over n episodes has a standard error of sqrt(p (1 - p) / n): 0.014
        # at n = 1000, against a best policy's ~0.74 and the 0.70 threshold.
        evaluation_episodes=1000,
    ),
}


def get_environment(name: str) -> EnvironmentSpec:
    """Returns an environment by its pipeline name.

    Raises:
        ValueError: If `name` is unknown; the message lists the known ones.
    """
    if name not in ENVIRONMENTS:
        raise ValueError(f"Expected an environment in {sorted(ENVIRONMENTS)}, received {name!r}.")
    return ENVIRONMENTS[name]


# A policy maps a batch of served observation rows [n, observation_size] to actions [n].
Policy = Callable[[np.ndarray], np.ndarray]


def play_episode(spec: EnvironmentSpec, policy: Policy, seed: int) -> float:
    """Plays one episode from `reset(seed=seed)`, asking `policy` for every action.

    Returns:
        The undiscounted return.
    """
    environment = spec.make()
    observation, _ = environment.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = int(policy(spec.encode(observation)[None, :])[0])
        observation, reward, terminated, truncated, _ = environment.step(action)
        total += float(reward)
        done = terminated or truncated
    environment.close()
    return total


def evaluate(spec: EnvironmentSpec, policy: Policy, episodes: int, seed: int) -> list[float]:
    """Returns of `episodes` episodes seeded `seed`, `seed + 1`, ... (reproducible).

    The episodes are played side by side, so the policy is asked once per step for every
    episode still running (one batch): the same returns as `play_episode` one by one, with far
    fewer calls of a served or exported model.
    """
    environments = [spec.make() for _ in range(episodes)]
    observations = [
        environment.reset(seed=seed + index)[0] for index, environment in enumerate(environments)
    ]
    totals = [0.0] * episodes
    running = list(range(episodes))
    while running:
        actions = policy(np.stack([spec.encode(observations[index]) for index in running]))
        still_running = []
        for index, action in zip(running, actions, strict=True):
            observation, reward, terminated, truncated, _ = environments[index].step(int(action))
            observations[index] = observation
            totals[index] += float(reward)
            if not (terminated or truncated):
                still_running.append(index)
        running = still_running
    for environment in environments:
        environment.close()
    return totals
