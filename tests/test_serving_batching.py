"""Server-side batching: concurrent calls merge into one model call and split back by rows."""

import threading
import time

import numpy as np
import pytest

from serving import status
from serving.batching import BatchScheduler
from serving.client import ClientError, PredictionClient
from serving.config import BatchingParameters, ModelConfig, ServerOptions
from serving.server import ModelServer
from tests import serving_models


class FakeServable:
    """Records every model call; each output row is its input row times 10."""

    name, version = "fake", 1

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def run(self, signature_name, inputs, output_keys):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        self.calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 10}


def run_concurrently(function, arguments):
    results, errors = [None] * len(arguments), []

    def call(index):
        try:
            results[index] = function(*arguments[index])
        except Exception as error:  # Collected for the assertions.
            errors.append(error)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(arguments))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def test_concurrent_calls_merge_into_one_model_call_and_get_their_own_rows():
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=16, batch_timeout_micros=2_000_000, num_batch_threads=1)
    )
    servable = FakeServable()
    rows = [np.full((2, 3), index, np.float32) for index in range(8)]

    results, errors = run_concurrently(
        lambda x: scheduler.run(servable, "sig", {"x": x}, ["y"]), [(x,) for x in rows]
    )
    scheduler.stop()

    assert errors == []
    assert servable.calls == [16]  # 8 calls of 2 rows, one full batch: no timeout waited out.
    for x, result in zip(rows, results, strict=True):
        np.testing.assert_array_equal(result["y"], x * 10)


def test_a_batch_that_is_not_full_runs_after_the_timeout():
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=100, batch_timeout_micros=50_000, num_batch_threads=2)
    )
    servable = FakeServable()

    result = scheduler.run(servable, "sig", {"x": np.ones((3, 1), np.float32)}, ["y"])
    scheduler.stop()

    assert servable.calls == [3]
    np.testing.assert_array_equal(result["y"], np.full((3, 1), 10.0))


def test_calls_with_other_shapes_or_signatures_are_not_merged():
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=64, batch_timeout_micros=300_000, num_batch_threads=1)
    )
    servable = FakeServable()
    calls = [
        ("a", np.ones((1, 2), np.float32)),
        ("a", np.ones((1, 2), np.float32)),
        ("a", np.ones((1, 5), np.float32)),
        ("b", np.ones((1, 2), np.float32)),
    ]

    _, errors = run_concurrently(
        lambda signature, x: scheduler.run(servable, signature, {"x": x}, ["y"]), calls
    )
    scheduler.stop()

    assert errors == []
    assert sorted(servable.calls) == [1, 1, 2]


def test_a_call_larger_than_the_maximum_batch_size_fails():
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=4, num_batch_threads=1))

    with pytest.raises(status.ServingError) as raised:
        scheduler.run(FakeServable(), "sig", {"x": np.ones((5, 1))}, ["y"])
    scheduler.stop()

    assert raised.value.code == status.grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message == "Task size 5 is larger than maximum input batch size 4"


def wait_until(condition):
    for _ in range(3000):  # At most 30 s.
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not reached in 30 s")


def test_a_full_queue_refuses_with_unavailable():
    gate = threading.Event()
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=1, num_batch_threads=1, max_enqueued_batches=1)
    )
    servable = FakeServable(gate)
    arguments = (servable, "sig", {"x": np.ones((1, 1))}, ["y"])
    running = threading.Thread(target=scheduler.run, args=arguments)
    queued = threading.Thread(target=scheduler.run, args=arguments)
    try:
        running.start()
        wait_until(lambda: servable.entered.is_set())
        queued.start()
        wait_until(lambda: scheduler.queued_batches == 1)

        with pytest.raises(status.ServingError) as raised:
            scheduler.run(*arguments)
    finally:
        gate.set()
        running.join(30)
        queued.join(30)
        scheduler.stop()

    assert raised.value.code == status.grpc.StatusCode.UNAVAILABLE
    assert raised.value.message == (
        "The batch scheduling queue to which this task was submitted is full"
    )
    assert servable.calls == [1, 1]


def test_a_deadline_passing_in_the_queue_fails_with_deadline_exceeded():
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=64, batch_timeout_micros=5_000_000, num_batch_threads=1)
    )
    servable = FakeServable()

    with pytest.raises(status.ServingError) as raised:
        scheduler.run(servable, "sig", {"x": np.ones((1, 1))}, ["y"], time.monotonic() + 0.05)
    scheduler.stop()

    assert raised.value.code == status.grpc.StatusCode.DEADLINE_EXCEEDED
    assert servable.calls == []


def test_a_deadline_runs_its_batch_early_and_only_the_late_call_fails():
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=64, batch_timeout_micros=5_000_000, num_batch_threads=1)
    )
    servable = FakeServable()
    patient = scheduler.submit(servable, "sig", {"x": np.ones((2, 1))}, ["y"])
    began = time.monotonic()
    hurried = scheduler.submit(servable, "sig", {"x": np.ones((1, 1))}, ["y"], began + 0.05)

    with pytest.raises(status.ServingError) as raised:
        hurried.result(30)
    outputs = patient.result(30)
    waited = time.monotonic() - began
    scheduler.stop()

    assert raised.value.code == status.grpc.StatusCode.DEADLINE_EXCEEDED
    assert waited < 4  # The batch ran at the deadline, not at its 5 s timeout.
    assert servable.calls == [2]
    np.testing.assert_array_equal(outputs["y"], np.full((2, 1), 10.0))


def test_a_call_cancelled_while_it_waits_is_left_out_of_its_batch():
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=64, batch_timeout_micros=200_000, num_batch_threads=1)
    )
    servable = FakeServable()
    gone = scheduler.submit(servable, "sig", {"x": np.ones((3, 1))}, ["y"])
    kept = scheduler.submit(servable, "sig", {"x": np.ones((1, 1))}, ["y"])

    assert gone.cancel()
    assert kept.result(30)["y"].shape == (1, 1)
    scheduler.stop()
    assert servable.calls == [1]


def test_the_server_merges_concurrent_rest_requests_and_reports_batch_sizes(tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(serving_models.toy_model(str(tmp_path)), base, 1)
    options = ServerOptions(
        models=(ModelConfig("toy", base),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
        batching=BatchingParameters(
            max_batch_size=8, batch_timeout_micros=1_000_000, num_batch_threads=1
        ),
    )
    with ModelServer(options) as server:
        clients = [PredictionClient(f"127.0.0.1:{server.rest_port}") for _ in range(8)]
        results, errors = run_concurrently(
            lambda client, value: client.predict("toy", np.array([value], np.float32)),
            [(client, float(index)) for index, client in enumerate(clients)],
        )
        metrics = server.core.metrics.render()
        for client in clients:
            client.close()

    assert errors == []
    assert [float(result.outputs["y"][0]) for result in results] == [
        index / 2 + 2 for index in range(8)
    ]
    labels = '{model_name="toy",version="1"} '
    batch_count = ":tensorflow:serving:batching_session:processed_batch_size_count" + labels
    batch_sum = ":tensorflow:serving:batching_session:processed_batch_size_sum" + labels
    lines = metrics.splitlines()
    assert f"{batch_sum}8" in lines
    assert f"{batch_count}1" in lines


def test_a_rest_request_waiting_past_its_timeout_answers_504(tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(serving_models.toy_model(str(tmp_path)), base, 1)
    options = ServerOptions(
        models=(ModelConfig("toy", base),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
        rest_api_timeout_ms=100,
        batching=BatchingParameters(
            max_batch_size=64, batch_timeout_micros=5_000_000, num_batch_threads=1
        ),
    )
    with (
        ModelServer(options) as server,
        PredictionClient(f"127.0.0.1:{server.rest_port}") as client,
    ):
        began = time.monotonic()
        with pytest.raises(ClientError) as raised:
            client.predict("toy", np.array([1.0], np.float32))

    assert time.monotonic() - began < 4
    assert (raised.value.code, raised.value.message) == (
        504,
        "Deadline exceeded before the batch ran.",
    )
