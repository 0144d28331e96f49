"""Tests of `models.strategy`: TF_CONFIG, the chief, multi-worker and TPU strategies.

The multi-worker test starts two worker processes on 127.0.0.1 that train together under
MultiWorkerMirroredStrategy, as the replicas of a Vertex AI custom job do (Vertex AI sets
TF_CONFIG in each).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from models import strategy

CLUSTER = {"chief": ["host-a:2222"], "worker": ["host-b:2222", "host-c:2222"]}


def _config(kind: str, index: int, cluster=CLUSTER) -> dict:
    return {"cluster": cluster, "task": {"type": kind, "index": index}}


def test_no_tf_config_is_no_cluster_and_its_own_chief():
    assert strategy.check_tf_config(None) is None
    assert strategy.check_tf_config("") is None
    assert strategy.is_chief(None) is True
    assert strategy.export_dir("/out/model", None) == "/out/model"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Expected TF_CONFIG to be JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', "to hold a 'cluster' and a 'task' object"),
        (json.dumps(_config("worker", 2)), "task to be one of its cluster's members"),
        (json.dumps(_config("evaluator", 0)), "task to be one of its cluster's members"),
    ],
)
def test_a_malformed_tf_config_is_refused_saying_what_was_found(text, message):
    with pytest.raises(ValueError, match=message):
        strategy.check_tf_config(text)


def test_the_chief_task_saves_the_model_and_the_workers_save_aside():
    chief = strategy.check_tf_config(json.dumps(_config("chief", 0)))
    worker = strategy.check_tf_config(json.dumps(_config("worker", 1)))

    assert strategy.export_dir("gs://b/model", chief) == "gs://b/model"
    assert strategy.export_dir("gs://b/model", worker) == "gs://b/model-worker-worker-1"
    # Without a chief task, worker 0 is the chief.
    workers_only = {"worker": ["a:1", "b:1"]}
    assert strategy.is_chief(_config("worker", 0, workers_only)) is True
    assert strategy.is_chief(_config("worker", 0)) is False


def test_unknown_strategy_lists_every_strategy():
    with pytest.raises(ValueError, match="'multi_worker_mirrored', 'tpu'\\], received 'ps'"):
        strategy.make_strategy("ps")


def test_tpu_strategy_without_a_tpu_is_a_clear_error():
    with pytest.raises(ValueError, match="Expected a reachable TPU at tpu_address='local'"):
        strategy.make_strategy("tpu")


WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    from models.strategy import make_strategy

    distribution = make_strategy("multi_worker_mirrored")
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(int(sys.argv[1]))  # each worker reads other data
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]
    with distribution.scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(4,))])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(16)
    history = model.fit(data, epochs=3, steps_per_epoch=4, verbose=0)
    print(json.dumps({
        "replicas": distribution.num_replicas_in_sync,
        "kernel": model.layers[0].kernel.numpy().ravel().round(6).tolist(),
        "loss": history.history["loss"],
    }))
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_workers_train_one_model_in_sync():
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(_config("worker", index, cluster)),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, str(index)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert [result["replicas"] for result in results] == [2, 2]
    # Gradients are all-reduced: both workers end with the same weights though their data differ.
    assert results[0]["kernel"] == results[1]["kernel"]
    assert results[0]["loss"][-1] < results[0]["loss"][0]
