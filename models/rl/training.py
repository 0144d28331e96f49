"""Training an agent from its settings: the entry point the agent trainer component calls."""

from __future__ import annotations

from models import registry
from models.rl import common
from models.rl.environments import EnvironmentSpec
from models.rl.settings import AgentSettings


def reward_threshold(settings: AgentSettings, spec: EnvironmentSpec) -> float:
    """The settings' threshold, or the environment's own when it is 0."""
    return settings.reward_threshold or spec.reward_threshold


def training_episodes(settings: AgentSettings) -> int:
    """The settings' episode budget, or the agent's `DEFAULT_EPISODES` when it is 0."""
    return settings.episodes or registry.get_family(settings.agent).DEFAULT_EPISODES


def evaluation_episodes(settings: AgentSettings, spec: EnvironmentSpec) -> int:
    """The settings' evaluation episodes, or the environment's default when it is 0."""
    return settings.eval_episodes or spec.evaluation_episodes


def train_agent(
    settings: AgentSettings,
    spec: EnvironmentSpec,
    on_episode: common.EpisodeCallback | None = None,
) -> common.TrainingResult:
    """Trains `settings.agent` on `spec` until the budget is spent or the environment is solved
    (trailing 100-episode mean return at the reward threshold).

    Raises:
        ValueError: If the agent is not built for this environment.
    """
    card = registry.get_card(settings.agent)
    if card.task != spec.name:
        raise ValueError(
            f"Expected an agent for {spec.name!r} among {registry.family_names(spec.name)}, "
            f"received {settings.agent!r} (built for {card.task!r})."
        )
    return registry.get_family(settings.agent).train(
        spec,
        episodes=training_episodes(settings),
        seed=settings.seed,
        hyperparameters=dict(settings.hyperparameters),
        target=reward_threshold(settings, spec),
        on_episode=on_episode,
    )
