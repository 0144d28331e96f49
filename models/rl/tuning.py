"""KerasTuner search over an agent's hyper-parameters: each trial trains on a small budget and
reports the mean return of its last episodes."""

from __future__ import annotations

import keras_tuner
import numpy as np

from models import registry
from models.rl.environments import EnvironmentSpec

OBJECTIVE = "mean_return"


class AgentTuner(keras_tuner.Tuner):
    """A Tuner whose trial trains an agent, not a `model.fit`.

    Args:
        agent: The agent family; its `search_space` is searched.
        spec: The environment.
        episodes: Training episodes of one trial.
        scored_episodes: The trial's score is the mean return of its last `scored_episodes`.
        seed: Seed of every trial's training (the same for all, so trials differ only by
            their hyper-parameters).
        oracle: A KerasTuner oracle (random search, Bayesian optimisation); its objective
            must be `keras_tuner.Objective("mean_return", "max")`.
        **kwargs: KerasTuner Tuner arguments (directory, project_name, overwrite, ...).
    """

    def __init__(
        self,
        agent: str,
        spec: EnvironmentSpec,
        *,
        episodes: int,
        scored_episodes: int,
        seed: int,
        oracle: keras_tuner.Oracle,
        **kwargs,
    ):
        if scored_episodes < 1 or scored_episodes > episodes:
            raise ValueError(
                f"Expected 1 <= scored_episodes <= episodes ({episodes}), received "
                f"{scored_episodes}."
            )
        self.agent_module = registry.get_family(agent)
        self.spec = spec
        self.episodes = episodes
        self.scored_episodes = scored_episodes
        self.seed = seed
        super().__init__(oracle=oracle, **kwargs)

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        """Trains with the trial's hyper-parameters and scores the last episodes."""
        result = self.agent_module.train(
            self.spec,
            episodes=self.episodes,
            seed=self.seed,
            hyperparameters=self.agent_module.search_space(trial.hyperparameters),
        )
        return {OBJECTIVE: float(np.mean(result.returns[-self.scored_episodes :]))}

    def save_model(self, trial_id, model, step=0) -> None:
        """Agents are not saved per trial: the best hyper-parameters are retrained."""

    def load_model(self, trial):
        """Not supported: see `save_model`.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError("AgentTuner keeps hyper-parameters, not trained agents.")


def random_search(
    agent: str,
    spec: EnvironmentSpec,
    *,
    trials: int,
    episodes: int,
    scored_episodes: int,
    seed: int,
    directory: str,
    fixed: dict | None = None,
) -> keras_tuner.HyperParameters:
    """Searches `trials` random points of the agent's space and returns the best values.

    Args:
        fixed: Hyper-parameters held at these values (not searched).
    """
    hyperparameters = registry.make_hyperparameters(agent, fixed)
    tuner = AgentTuner(
        agent,
        spec,
        episodes=episodes,
        scored_episodes=scored_episodes,
        seed=seed,
        oracle=keras_tuner.oracles.RandomSearchOracle(
            objective=keras_tuner.Objective(OBJECTIVE, "max"),
            max_trials=trials,
            seed=seed,
            hyperparameters=hyperparameters,
        ),
        directory=directory,
        project_name=f"{spec.name}_{agent}",
        overwrite=True,
    )
    tuner.search()
    return tuner.get_best_hyperparameters(1)[0]
