"""The RL pipelines end to end: train -> evaluate -> push -> TFLite -> push, then the pushed
policy served by `dlforge serve` plays an episode through REST, one request per action."""

import json
import os
import pathlib

import numpy as np
import pytest
from tfx import v1 as tfx

from components.agent_evaluator.executor import EVALUATION_FILE
from components.agent_trainer.executor import CURVE_FILE, PLOT_FILE
from models.rl import environments, export
from pipelines import config as config_lib
from pipelines import rl
from serving.client import PredictionClient
from serving.config import ModelConfig, ServerOptions
from serving.server import ModelServer

pytestmark = pytest.mark.e2e


def _run(home, pipeline, family, agent):
    config = config_lib.from_mapping(
        {"pipeline": pipeline, "home": str(home), "trainer": {"family": family}, "agent": agent}
    )
    tfx.orchestration.LocalDagRunner().run(rl.create_pipeline(config))
    return config


def _only(folder):
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def _json(*parts):
    return json.loads(pathlib.Path(*parts).read_text())


def _versions(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    # A tiny budget and a threshold an early policy meets: the run blesses and pushes.
    return _run(
        tmp_path_factory.mktemp("rl_home"),
        "cartpole",
        "reinforce",
        {"episodes": 20, "seed": 0, "eval_episodes": 5, "reward_threshold": 9.0},
    )


def test_cartpole_blesses_and_pushes_the_policy_and_its_tflite_model(cartpole):
    assert cartpole.pipeline_name == "cartpole_reinforce"
    root = cartpole.pipeline_root
    curve = _json(_only(f"{root}/AgentTrainer/model_run"), CURVE_FILE)
    assert curve["agent"] == "reinforce" and curve["episodes"] == 20 and len(curve["returns"]) == 20
    assert pathlib.Path(_only(f"{root}/AgentTrainer/model_run"), PLOT_FILE).read_bytes()[:4] == (
        b"\x89PNG"
    )
    evaluation_dir = _only(f"{root}/AgentEvaluator/evaluation")
    evaluation = _json(evaluation_dir, EVALUATION_FILE)
    assert evaluation["episodes"] == 5 and evaluation["reward_threshold"] == 9.0
    assert evaluation["mean_return"] == pytest.approx(np.mean(evaluation["returns"]))
    assert evaluation["blessed"] is (evaluation["mean_return"] >= 9.0) is True
    assert os.listdir(_only(f"{root}/AgentEvaluator/blessing")) == ["BLESSED"]

    (version,) = _versions(cartpole.serving_dir)
    pushed = os.path.join(cartpole.serving_dir, version)
    assert os.path.exists(os.path.join(pushed, "saved_model.pb"))
    assert os.path.exists(os.path.join(pushed, "assets.extra", "tf_serving_warmup_requests"))
    spec = environments.get_environment("cartpole")
    # The pushed policy plays the evaluator's episodes to the evaluator's returns.
    assert (
        environments.evaluate(spec, export.saved_model_policy(pushed), 5, 1000)
        == (evaluation["returns"])
    )

    (device_version,) = _versions(cartpole.tflite_dir)
    device = os.path.join(cartpole.tflite_dir, device_version)
    metadata = _json(device, "metadata.json")
    assert metadata["input"]["shape"] == [-1, 4] and metadata["recipe"] == "float"
    assert {output["name"] for output in metadata["outputs"]} == {"actions", "probabilities"}
    tflite = export.tflite_policy(pathlib.Path(device, "model.tflite").read_bytes())
    observations = np.random.default_rng(0).normal(0, 0.1, (64, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        tflite(observations), export.saved_model_policy(pushed)(observations)
    )


def test_an_episode_played_through_the_server_matches_the_savedmodel(cartpole):
    spec = environments.get_environment("cartpole")
    (version,) = _versions(cartpole.serving_dir)
    in_process = export.saved_model_policy(os.path.join(cartpole.serving_dir, version))
    options = ServerOptions(
        models=(ModelConfig(cartpole.model_name, cartpole.serving_dir),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
    )
    requests = []
    with (
        ModelServer(options) as server,
        PredictionClient(f"127.0.0.1:{server.rest_port}") as client,
    ):

        def served(observations):
            requests.append(observations)
            prediction = client.predict(cartpole.model_name, {"observations": observations})
            assert prediction.version == int(version)
            return prediction.outputs["actions"]

        through_server = environments.play_episode(spec, served, seed=7)
    assert through_server == environments.play_episode(spec, in_process, seed=7)
    assert len(requests) == through_server  # one request per step, a reward of 1 per step


def test_frozenlake_below_its_threshold_is_not_blessed_and_nothing_is_pushed(tmp_path):
    # 1,500 episodes do not reach the 0.70 success rate on the slippery lake.
    config = _run(tmp_path, "frozenlake", "qlearning", {"episodes": 1500, "eval_episodes": 200})
    root = config.pipeline_root
    evaluation = _json(_only(f"{root}/AgentEvaluator/evaluation"), EVALUATION_FILE)
    assert evaluation["metric"] == "success_rate" and evaluation["reward_threshold"] == 0.7
    assert evaluation["mean_return"] < 0.7 and evaluation["blessed"] is False
    assert os.listdir(_only(f"{root}/AgentEvaluator/blessing")) == ["NOT_BLESSED"]
    assert _versions(config.serving_dir) == [] and _versions(config.tflite_dir) == []
