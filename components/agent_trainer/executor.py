"""Trains an agent, exports its policy in the Trainer's layout, and writes its training curve."""

from __future__ import annotations

import base64
import html
import io
import time

import numpy as np

# The object API with the Agg canvas, not pyplot: no display and no global figure state on a
# pipeline worker.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from components import storage
from models.rl import common, export, training
from models.rl.environments import EnvironmentSpec
from models.rl.settings import AgentSettings

CURVE_FILE = "training_curve.json"
PLOT_FILE = "training_curve.png"


def train_and_export(
    spec: EnvironmentSpec, settings: AgentSettings, model_dir: str, curve_dir: str
) -> dict:
    """Trains `settings.agent` on `spec`, exports the policy and writes the training curve.

    Args:
        spec: The environment.
        settings: Agent, budget, seed and hyper-parameters.
        model_dir: The SavedModel folder to write (`<model uri>/Format-Serving`).
        curve_dir: Folder (or URI) of `training_curve.json` (every episode's return, the
            trailing mean, when the target was reached) and `training_curve.png`.

    Returns:
        The training curve document.
    """
    started = time.monotonic()
    result = training.train_agent(settings, spec)
    seconds = time.monotonic() - started
    export.export_policy(settings.agent, result.model, spec, model_dir)
    threshold = training.reward_threshold(settings, spec)
    curve = {
        "agent": settings.agent,
        "environment": spec.gym_id,
        "environment_kwargs": dict(spec.kwargs),
        "settings": settings.to_dict(),
        "episodes": len(result.returns),
        "budget_episodes": training.training_episodes(settings),
        "steps": result.steps,
        "seconds": round(seconds, 2),
        "reward_threshold": threshold,
        "solved_at": result.solved_at,
        "final_trailing_mean": round(common.trailing_mean(result.returns), 4),
        "returns": [float(value) for value in result.returns],
    }
    storage.write_json(storage.join(curve_dir, CURVE_FILE), curve)
    storage.write_bytes(storage.join(curve_dir, PLOT_FILE), curve_png(curve))
    return curve


def curve_png(curve: dict) -> bytes:
    """Draws every episode's return, their trailing 100-episode mean and the threshold.

    Returns:
        The PNG image.
    """
    returns = np.asarray(curve["returns"], np.float64)
    episodes = np.arange(1, len(returns) + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(returns)])
    starts = np.maximum(0, episodes - common.SOLVED_WINDOW)
    trailing = (cumulative[episodes] - cumulative[starts]) / (episodes - starts)
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot(episodes, returns, color="tab:blue", alpha=0.35, linewidth=0.8, label="episode")
    axes.plot(
        episodes,
        trailing,
        color="tab:blue",
        linewidth=1.8,
        label=f"trailing {common.SOLVED_WINDOW}-episode mean",
    )
    axes.axhline(
        curve["reward_threshold"], color="tab:gray", linestyle="--", label="reward threshold"
    )
    if curve["solved_at"] is not None:
        axes.axvline(curve["solved_at"], color="tab:green", linestyle=":", label="solved")
    axes.set_xlabel("episode")
    axes.set_ylabel("return")
    axes.set_title(f"{curve['agent']} on {curve['environment']}")
    axes.legend(loc="best", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def metric_values(curve: dict) -> dict[str, float]:
    """The run's figures (episodes, steps, seconds, the final trailing mean, the episode that
    solved the environment or -1), for the Kubeflow and Vertex consoles."""
    return {
        "episodes": float(curve["episodes"]),
        "steps": float(curve["steps"]),
        "seconds": float(curve["seconds"]),
        "final_trailing_mean": float(curve["final_trailing_mean"]),
        "reward_threshold": float(curve["reward_threshold"]),
        "solved_at": float(-1 if curve["solved_at"] is None else curve["solved_at"]),
    }


def summary_html(curve: dict, picture: bytes) -> str:
    """The run in one self-contained HTML page (the training curve inline), for the consoles."""
    solved = (
        f"solved at episode {curve['solved_at']}"
        if curve["solved_at"] is not None
        else "not solved within the budget"
    )
    title = f"{curve['agent']} on {curve['environment']}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}</style></head><body>"
        f"<h2>{html.escape(title)}: {solved}</h2>"
        f"<p>{curve['episodes']} of {curve['budget_episodes']} episodes, {curve['steps']} steps, "
        f"{curve['seconds']} s. Final trailing {common.SOLVED_WINDOW}-episode mean return "
        f"{curve['final_trailing_mean']} (threshold {curve['reward_threshold']}).</p>"
        f"<p><img alt='training curve' src='data:image/png;base64,"
        f"{base64.b64encode(picture).decode('ascii')}'></p></body></html>\n"
    )
