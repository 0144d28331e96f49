"""Versions: polling, warmup, hot swap under load, failed loads, unloading, base-path safety."""

import os
import threading
import time
import typing

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.pusher import warmup as pusher_warmup
from serving.client import PredictionClient
from serving.config import ALL, ModelConfig, ServerOptions, VersionPolicy
from serving.manager import ModelManager, version_folders
from serving.servable import Servable
from serving.server import ModelServer
from tests import serving_models


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return serving_models.toy_model(str(tmp_path_factory.mktemp("toy_versions")))


def states(server, name="toy"):
    return {
        version: state.state for version, state in server.core.manager.version_states(name).items()
    }


def wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


AVAILABLE, END = 30, 50


def options(base, **model):
    return ServerOptions(
        models=(ModelConfig("toy", base, **model),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0.1,
    )


def test_a_new_version_replaces_the_old_and_a_broken_one_does_not(toy, tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(toy, base, 1)
    with ModelServer(options(base)) as server:
        client = PredictionClient(f"127.0.0.1:{server.rest_port}")
        assert client.predict("toy", np.array([1.0])).version == 1

        serving_models.publish(toy, base, 2)
        assert wait_for(lambda: states(server) == {1: END, 2: AVAILABLE})
        assert client.predict("toy", np.array([1.0])).version == 2

        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a model")
        serving_models.publish(str(broken), base, 3)
        assert wait_for(lambda: 3 in states(server) and states(server)[3] == END)

        failed = server.core.manager.version_states("toy")[3]
        assert failed.error_message
        assert states(server)[2] == AVAILABLE
        assert client.predict("toy", np.array([1.0])).version == 2
        client.close()


def test_removed_versions_unload_under_the_all_policy(toy, tmp_path):
    base = str(tmp_path / "base")
    for version in (1, 2):
        serving_models.publish(toy, base, version)
    with ModelServer(options(base, policy=VersionPolicy(kind=ALL))) as server:
        assert states(server) == {1: AVAILABLE, 2: AVAILABLE}

        os.rename(os.path.join(base, "2"), os.path.join(base, ".removed-2"))

        assert wait_for(lambda: states(server) == {1: AVAILABLE, 2: END})
        with pytest.raises(Exception, match="Specific\\(toy, 2\\)"):
            server.core.servable("toy", 2, None)


def test_no_request_fails_while_versions_swap_under_load(toy, tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(toy, base, 1)
    failures, served = [], []
    stop = threading.Event()
    with ModelServer(options(base)) as server:

        def hammer(protocol, port):
            with PredictionClient(f"127.0.0.1:{port}", protocol) as client:
                for _ in range(5000):  # Bounded: the swaps end long before.
                    if stop.is_set():
                        return
                    try:
                        prediction = client.predict("toy", np.array([2.0], np.float32))
                        np.testing.assert_allclose(prediction.outputs["y"], [3.0])
                        served.append(prediction.version)
                    except Exception as error:  # Every failure is counted.
                        failures.append(repr(error))

        threads = [
            threading.Thread(target=hammer, args=(protocol, port))
            for protocol, port in [("rest", server.rest_port)] * 2
            + [("grpc", server.grpc_port)] * 2
        ]
        for thread in threads:
            thread.start()
        for version in (2, 3, 4):
            time.sleep(0.3)
            serving_models.publish(toy, base, version)
            assert wait_for(lambda v=version: states(server).get(v) == AVAILABLE)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert failures == []
    assert {1, 4} <= set(served)
    assert len(served) > 100


def test_pusher_warmup_file_holds_zero_requests_for_numeric_signatures(toy, tmp_path):
    logs = pusher_warmup.warmup_requests(toy)

    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default"
    ] * len(pusher_warmup.WARMUP_BATCH_SIZES)
    assert [tf.make_ndarray(log.predict_log.request.inputs["x"]).tolist() for log in logs] == [
        [0.0] * size for size in pusher_warmup.WARMUP_BATCH_SIZES
    ]


class CountingServable(Servable):
    calls: typing.ClassVar[list] = []

    def run(self, signature_name, inputs, output_keys):
        CountingServable.calls.append(
            (self.version, signature_name, len(next(iter(inputs.values()))))
        )
        return super().run(signature_name, inputs, output_keys)


def test_a_version_is_warmed_up_before_it_serves(toy, tmp_path):
    model = str(tmp_path / "model")
    serving_models.publish(toy, str(tmp_path), 0)
    os.rename(str(tmp_path / "0"), model)
    assert pusher_warmup.write_warmup_file(model) == len(pusher_warmup.WARMUP_BATCH_SIZES)
    base = str(tmp_path / "base")
    serving_models.publish(model, base, 5)
    CountingServable.calls = []

    manager = ModelManager(options(base).models, loader=CountingServable)
    manager.poll_once()

    assert CountingServable.calls == [
        (5, "serving_default", size) for size in pusher_warmup.WARMUP_BATCH_SIZES
    ]
    assert manager.get("toy").version == 5


def test_a_failing_warmup_request_fails_the_load_and_the_old_version_stays(toy, tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(toy, base, 1)
    bad = str(tmp_path / "bad")
    serving_models.publish(toy, str(tmp_path), 0)
    os.rename(str(tmp_path / "0"), bad)
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.inputs["not_an_input"].CopyFrom(tf.make_tensor_proto([1.0]))
    os.makedirs(os.path.join(bad, "assets.extra"))
    with tf.io.TFRecordWriter(os.path.join(bad, pusher_warmup.WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())
    manager = ModelManager(options(base).models)
    manager.poll_once()

    serving_models.publish(bad, base, 2)
    manager.poll_once()

    failed = manager.version_states("toy")[2]
    assert failed.state == END
    assert "Sent extra: {not_an_input}" in failed.error_message
    assert manager.get("toy").version == 1


def test_version_folders_outside_the_base_path_are_refused(toy, tmp_path):
    base = tmp_path / "base"
    serving_models.publish(toy, str(base), 1)
    outside = tmp_path / "elsewhere"
    serving_models.publish(toy, str(outside), 9)
    os.symlink(outside / "9", base / "9")
    (base / "not-a-version").mkdir()

    assert version_folders(str(base)) == {1: str(base / "1")}
