"""Plays seeded episodes with an exported policy and decides its blessing.

The blessing follows TFX's Evaluator: a `ModelBlessing` with the custom property `blessed`
(1 or 0) and an empty `BLESSED` or `NOT_BLESSED` file under its URI, so the Pusher and the
latest-blessed-model resolver read it like the Evaluator's.
"""

from __future__ import annotations

import numpy as np

from components import storage
from components.anomaly_gate.executor import markdown_table
from models.rl import environments, export
from models.rl.environments import EnvironmentSpec

EVALUATION_FILE = "evaluation.json"
BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"


def evaluate_policy(
    saved_model_dir: str,
    spec: EnvironmentSpec,
    *,
    episodes: int,
    seed: int,
    reward_threshold: float,
) -> dict:
    """Mean and standard deviation of the return of the SavedModel's greedy policy.

    Args:
        saved_model_dir: The exported policy.
        spec: The environment.
        episodes: Episodes to play, seeded `seed`, `seed + 1`, ...
        seed: Seed of the first episode.
        reward_threshold: Lowest mean return that is blessed.

    Returns:
        The evaluation: the returns, their mean and standard deviation, the threshold and
        whether the mean reaches it.
    """
    returns = environments.evaluate(
        spec, export.saved_model_policy(saved_model_dir), episodes, seed
    )
    mean = float(np.mean(returns))
    return {
        "environment": spec.gym_id,
        "environment_kwargs": dict(spec.kwargs),
        "metric": spec.metric,
        "episodes": episodes,
        "seed": seed,
        "mean_return": round(mean, 4),
        "std_return": round(float(np.std(returns)), 4),
        "min_return": float(np.min(returns)),
        "max_return": float(np.max(returns)),
        "reward_threshold": reward_threshold,
        "blessed": mean >= reward_threshold,
        "returns": [float(value) for value in returns],
    }


def write_outputs(evaluation: dict, evaluation_dir: str, blessing_dir: str) -> None:
    """Writes `evaluation.json` and the blessing's `BLESSED` or `NOT_BLESSED` file."""
    storage.write_json(storage.join(evaluation_dir, EVALUATION_FILE), evaluation)
    marker = BLESSED_FILE if evaluation["blessed"] else NOT_BLESSED_FILE
    storage.write_text(storage.join(blessing_dir, marker), "")


def metric_values(evaluation: dict) -> dict[str, float]:
    """The evaluation's figures (returns, threshold, episodes, 1 or 0 for blessed), for the
    Kubeflow and Vertex consoles."""
    names = ("mean_return", "std_return", "min_return", "max_return", "reward_threshold")
    return {
        **{name: float(evaluation[name]) for name in names},
        "episodes": float(evaluation["episodes"]),
        "blessed": float(evaluation["blessed"]),
    }


def summary_markdown(evaluation: dict) -> str:
    """The blessing and the returns as Markdown."""
    verdict = "blessed" if evaluation["blessed"] else "not blessed"
    relation = ">=" if evaluation["blessed"] else "<"
    return (
        f"## Policy evaluation: {verdict}\n\n"
        f"Mean return {evaluation['mean_return']} {relation} threshold "
        f"{evaluation['reward_threshold']} over {evaluation['episodes']} "
        f"{evaluation['environment']} episode(s) from seed {evaluation['seed']}.\n\n"
        + markdown_table(
            ("mean return", "std", "min", "max", "threshold"),
            [
                (
                    evaluation["mean_return"],
                    evaluation["std_return"],
                    evaluation["min_return"],
                    evaluation["max_return"],
                    evaluation["reward_threshold"],
                )
            ],
        )
    )
