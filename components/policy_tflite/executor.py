"""The TFLite model of a policy, checked against its SavedModel on the states it visits.

The SavedModel's `serving_default` converts with builtin ops only (no quantization: a
policy's argmax can flip on a small change of its Q-values or probabilities, and the networks
are a few KB). The SavedModel's greedy policy plays seeded episodes; every observation it meets
goes through both models, and the device model is blessed only when every action agrees. The
output matches the Compressor's contract, so the TFLitePusher publishes it: `model.tflite`,
`metadata.json` (input, outputs, `recipe`, `source_model_uri`) and `report.json`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from components import storage
from components.anomaly_gate.executor import markdown_table
from components.compressor.executor import METADATA_FILE, MODEL_FILE, REPORT_FILE
from models.rl import environments, export
from models.rl.environments import EnvironmentSpec

RECIPE = "float"


def _tensor_metadata(name: str, detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "name": name,
        "shape": [int(size) for size in detail["shape_signature"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


def tensor_metadata(model: bytes) -> dict:
    """Name, shape, dtype and quantization of the TFLite policy's input and outputs."""
    runner = tf.lite.Interpreter(model_content=model).get_signature_runner(export.SIGNATURE)
    ((name, detail),) = runner.get_input_details().items()
    return {
        "input": {"signature": export.SIGNATURE, **_tensor_metadata(name, detail)},
        "outputs": [
            _tensor_metadata(output, output_detail)
            for output, output_detail in sorted(runner.get_output_details().items())
        ],
    }


def visited_observations(
    spec: EnvironmentSpec, policy: environments.Policy, episodes: int, seed: int
) -> np.ndarray:
    """Every observation `policy` is asked about while playing seeded episodes."""
    seen = []

    def recording(observations: np.ndarray) -> np.ndarray:
        seen.append(np.asarray(observations, np.float32))
        return policy(observations)

    environments.evaluate(spec, recording, episodes, seed)
    return np.concatenate(seen)


def convert_policy(
    saved_model_dir: str,
    spec: EnvironmentSpec,
    output_dir: str,
    *,
    episodes: int,
    seed: int,
    source_model_uri: str,
) -> dict:
    """Converts the policy, checks its actions and writes the device model when they agree.

    Args:
        saved_model_dir: The blessed policy SavedModel.
        spec: Its environment.
        output_dir: The TFLiteModel artifact's folder.
        episodes: Episodes whose observations are checked (seeded `seed`, `seed + 1`, ...).
        seed: Seed of the first one.
        source_model_uri: URI of the Model artifact (recorded in the metadata).

    Returns:
        The report: sizes, the observations checked, how many actions agree, and `parity`
        (whether all do, which blesses the device model).
    """
    model = export.convert_to_tflite(saved_model_dir)
    saved_model = export.saved_model_policy(saved_model_dir)
    observations = visited_observations(spec, saved_model, episodes, seed)
    expected = saved_model(observations)
    received = export.tflite_policy(model)(observations)
    agreeing = int(np.sum(expected == received))
    report = {
        "recipe": RECIPE,
        "size_bytes": len(model),
        "environment": spec.gym_id,
        "episodes": episodes,
        "seed": seed,
        "observations_checked": len(observations),
        "actions_agreeing": agreeing,
        "parity": agreeing == len(observations),
        "chosen": RECIPE if agreeing == len(observations) else None,
    }
    if report["parity"]:
        storage.write_bytes(storage.join(output_dir, MODEL_FILE), model)
        storage.write_json(
            storage.join(output_dir, METADATA_FILE),
            {
                **tensor_metadata(model),
                "recipe": RECIPE,
                "size_bytes": len(model),
                # The Compressor's contract has the device model's accuracy; a policy's is the
                # share of visited states where it takes the SavedModel's action.
                "accuracy": agreeing / len(observations),
                "environment": spec.gym_id,
                "source_model_uri": source_model_uri,
            },
        )
    storage.write_json(storage.join(output_dir, REPORT_FILE), report)
    return report


def metric_values(report: dict) -> dict[str, float]:
    """The conversion's figures (size, states checked, share of agreeing actions), for the
    Kubeflow and Vertex consoles."""
    return {
        "size_kb": report["size_bytes"] / 1024,
        "observations_checked": float(report["observations_checked"]),
        "actions_agreeing": float(report["actions_agreeing"]),
        "agreement": report["actions_agreeing"] / report["observations_checked"],
    }


def summary_markdown(report: dict | None) -> str:
    """The device model's verdict and figures as Markdown; `report` is None when the policy
    was not blessed (nothing was converted)."""
    if report is None:
        return (
            "## Policy device model: not converted\n\n"
            "The AgentEvaluator did not bless the policy, so it was not converted.\n"
        )
    verdict = "blessed" if report["parity"] else "not blessed: actions differ"
    return (
        f"## Policy device model: {verdict}\n\n"
        f"The TFLite model ({report['recipe']}, builtin ops) and the SavedModel chose actions "
        f"for every state of {report['episodes']} {report['environment']} episode(s) from seed "
        f"{report['seed']}.\n\n"
        + markdown_table(
            ("size (KB)", "states checked", "actions agreeing", "agreement"),
            [
                (
                    f"{report['size_bytes'] / 1024:.1f}",
                    report["observations_checked"],
                    report["actions_agreeing"],
                    f"{report['actions_agreeing'] / report['observations_checked']:.4f}",
                )
            ],
        )
    )
