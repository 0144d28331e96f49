"""Typed settings of an agent's training and evaluation, handed to the RL components."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models import registry
from models.settings import build_from_dict, check_field_types

# The families that are agents, and the environments (pipelines) they train on.
AGENT_PIPELINES = ("cartpole", "frozenlake")


def check_agent(name: str) -> None:
    """Checks that `name` is a registered agent family.

    Raises:
        ValueError: If it is not; the message lists the agents.
    """
    agents = sorted(
        name for pipeline in AGENT_PIPELINES for name in registry.family_names(pipeline)
    )
    if name not in agents:
        raise ValueError(f"Expected an agent in {agents}, received {name!r}.")


@dataclass(frozen=True)
class AgentSettings:
    """How an agent is trained and when it is blessed.

    Attributes:
        agent: Agent family name: "dqn", "reinforce" or "actor_critic" (cartpole), "qlearning"
            (frozenlake); "" for the pipeline's model family (`PipelineConfig.trainer.family`).
        episodes: Training episodes at most (0: the agent's `DEFAULT_EPISODES`); training
            stops earlier once the trailing 100-episode mean return reaches the reward
            threshold.
        seed: Seed of the weights, the environment and exploration.
        eval_episodes: Episodes the evaluator plays with the exported policy, seeded (0: the
            environment's `evaluation_episodes`, 100 for CartPole, 1000 for FrozenLake).
        eval_seed: Seed of the first evaluation episode (the others follow it).
        reward_threshold: Mean evaluation return that is blessed; 0 takes the environment's
            own (`spec.reward_threshold`: 475 for CartPole-v1, 0.70 for FrozenLake-v1, where the
            mean return is the success rate).
        hyperparameters: Fixed values for some of the agent's hyper-parameters (its
            `search_space` names); the others take their defaults.
    """

    agent: str = ""
    episodes: int = 0
    seed: int = 0
    eval_episodes: int = 0
    eval_seed: int = 1000
    reward_threshold: float = 0.0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.agent:
            check_agent(self.agent)
        for name in ("episodes", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"Expected {name} >= 1 (or 0 for the default), received {getattr(self, name)}."
                )
        if self.reward_threshold < 0:
            raise ValueError(
                "Expected reward_threshold >= 0 (0: the environment's own), received "
                f"{self.reward_threshold}."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (a TFX component parameter)."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        values["hyperparameters"] = dict(self.hyperparameters)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AgentSettings:
        """Builds settings from a dict, rejecting unknown keys.

        Raises:
            ValueError: For a key that is not a field, or an invalid value.
        """
        return build_from_dict(cls, values, "agent settings")
