"""Benchmark of the agents: episodes and wall time until each environment is solved.

Run with `.venv/bin/python benchmarks/rl.py [--seed N] [--agents dqn,reinforce,...]`.
Each agent trains with its default hyper-parameters and its pipeline budget
(`DEFAULT_EPISODES`) until the trailing 100-episode mean return of its training episodes
reaches the environment's threshold (475 on CartPole-v1; a 0.70 success rate on the slippery
4x4 FrozenLake-v1), then its greedy policy plays seeded evaluation episodes (100 on CartPole,
1000 on FrozenLake), as the pipeline's AgentEvaluator does. It prints one table.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from models import registry
from models.rl import environments

AGENTS = ("dqn", "reinforce", "actor_critic", "qlearning")
EVALUATION_SEED = 1000


def measure(agent: str, seed: int) -> dict:
    """Trains one agent until solved or out of budget, then evaluates its greedy policy."""
    card = registry.get_card(agent)
    module = registry.get_family(agent)
    spec = environments.get_environment(card.task)
    started = time.monotonic()
    result = module.train(
        spec,
        episodes=module.DEFAULT_EPISODES,
        seed=seed,
        hyperparameters={},
        target=spec.reward_threshold,
    )
    seconds = time.monotonic() - started
    serve = module.model_signatures(result.model, spec)["serving_default"]
    returns = environments.evaluate(
        spec,
        lambda observations: serve(tf.constant(observations))["actions"].numpy(),
        spec.evaluation_episodes,
        EVALUATION_SEED,
    )
    return {
        "agent": agent,
        "environment": spec.gym_id,
        "budget": module.DEFAULT_EPISODES,
        "solved_at": result.solved_at,
        "episodes": len(result.returns),
        "steps": result.steps,
        "seconds": seconds,
        "threshold": spec.reward_threshold,
        "metric": spec.metric,
        "evaluation_episodes": spec.evaluation_episodes,
        "evaluation_mean": float(np.mean(returns)),
        "evaluation_std": float(np.std(returns)),
    }


def table(rows: list[dict]) -> str:
    """The results as one aligned text table."""
    header = (
        "agent", "environment", "threshold", "solved at (episodes)", "budget", "steps",
        "wall s", "greedy evaluation (mean +- std)",
    )  # fmt: skip
    lines = [header]
    for row in rows:
        evaluation = f"{row['evaluation_mean']:.3f} +- {row['evaluation_std']:.3f}"
        lines.append(
            (
                row["agent"],
                row["environment"],
                f"{row['threshold']:g} ({row['metric']})",
                str(row["solved_at"]) if row["solved_at"] else f"not within {row['budget']}",
                str(row["budget"]),
                str(row["steps"]),
                f"{row['seconds']:.1f}",
                f"{evaluation} over {row['evaluation_episodes']}",
            )
        )
    widths = [max(len(line[index]) for line in lines) for index in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agents", default=",".join(AGENTS))
    arguments = parser.parse_args()
    rows = []
    for agent in arguments.agents.split(","):
        rows.append(measure(agent, arguments.seed))
        print(f"{agent}: done in {rows[-1]['seconds']:.1f} s", flush=True)
    print(
        f"\nCPU cores: {os.cpu_count()}; solved = trailing 100-episode mean return of the "
        "training episodes at the threshold"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
