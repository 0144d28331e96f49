"""A real dlforge export served: parity across runtimes, tf.Examples over REST, the CLI.

The model is an untrained perceptron exported by models/training.save_model (both serving
signatures, the transform graph inside), built once per test process.
"""

import base64
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.pusher import executor as pusher_executor
from components.pusher import warmup as pusher_warmup
from models import edge_runner, export
from pipelines import cli
from serving.client import PredictionClient
from serving.config import ModelConfig, ServerOptions
from serving.server import ModelServer
from tests import fixtures, serving_models


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory, transform_output):
    root = str(tmp_path_factory.mktemp("digits_model"))
    return serving_models.digits_model(root, transform_output)


@pytest.fixture(scope="module")
def server(digits_model, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("digits_serving") / "digits")
    push = pusher_executor.push_model(digits_model, base, "uri://trainer/model/1")
    options = ServerOptions(
        models=(ModelConfig("digits", base),), grpc_port=0, rest_api_port=0, poll_wait_seconds=0
    )
    with ModelServer(options) as running:
        running.pushed_version = int(push.version)
        yield running


@pytest.fixture(scope="module")
def batch(digits_sample):
    pixels, _ = digits_sample
    return pixels[:6].astype(np.float32)


def test_the_pusher_writes_warmup_requests_for_the_dense_signature(server, digits_model):
    pushed = os.path.join(server.options.models[0].base_path, str(server.pushed_version))

    records = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(os.path.join(pushed, pusher_warmup.WARMUP_FILE))
    ]

    assert [log.predict_log.request.model_spec.signature_name for log in records] == [
        export.DENSE_SIGNATURE
    ] * len(pusher_warmup.WARMUP_BATCH_SIZES)
    values = [
        tf.make_ndarray(log.predict_log.request.inputs[export.DENSE_INPUT]) for log in records
    ]
    assert [value.shape for value in values] == [
        (size, 64) for size in pusher_warmup.WARMUP_BATCH_SIZES
    ]
    assert all(not value.any() for value in values)
    assert records == pusher_warmup.warmup_requests(digits_model)


def test_in_process_rest_grpc_and_tflite_give_the_same_answers(server, digits_model, batch):
    loaded = tf.saved_model.load(digits_model)
    expected = loaded.signatures[export.DENSE_SIGNATURE](inputs=tf.constant(batch))
    expected_probabilities = expected[export.PROBABILITIES].numpy()
    converter = tf.lite.TFLiteConverter.from_saved_model(
        digits_model, signature_keys=[export.DENSE_SIGNATURE]
    )
    edge = edge_runner.EdgeModel(converter.convert())

    answers = {"tflite": edge.predict(batch)}
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        with PredictionClient(f"127.0.0.1:{port}", protocol) as client:
            prediction = client.predict("digits", batch, signature_name=export.DENSE_SIGNATURE)
        assert prediction.version == server.pushed_version
        answers[protocol] = prediction.outputs

    for name, outputs in answers.items():
        np.testing.assert_allclose(
            outputs[export.PROBABILITIES], expected_probabilities, atol=1e-5, err_msg=name
        )
        np.testing.assert_array_equal(
            np.asarray(outputs[export.CLASS_IDS]).reshape(-1),
            expected[export.CLASS_IDS].numpy(),
            err_msg=name,
        )


def test_serialized_examples_in_b64_reach_the_default_signature(server, batch):
    examples = fixtures.raw_examples(batch.astype(np.int64))
    body = {"instances": [{"b64": base64.b64encode(example).decode()} for example in examples]}

    with PredictionClient(f"127.0.0.1:{server.rest_port}") as client:
        dense = client.predict("digits", batch, signature_name=export.DENSE_SIGNATURE)
        document, _ = client._rest("POST", "/v1/models/digits:predict", body)

    probabilities = np.array([row[export.PROBABILITIES] for row in document["predictions"]])
    np.testing.assert_allclose(probabilities, dense.outputs[export.PROBABILITIES], atol=1e-5)


@pytest.mark.parametrize("use_grpc", [False, True])
def test_dlforge_predict_prints_labels_and_probabilities(server, batch, tmp_path, capsys, use_grpc):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(batch[:2].tolist()))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([f"digit {index}" for index in range(10)]))
    port = server.grpc_port if use_grpc else server.rest_port
    argv = [
        "predict",
        "--server",
        f"127.0.0.1:{port}",
        "--model",
        "digits",
        "--input",
        str(rows),
        "--labels",
        str(labels),
    ] + (["--grpc"] if use_grpc else [])

    code = cli.main(argv)

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == f"model digits version {server.pushed_version}"
    assert [line.split(":")[0] for line in lines[1:]] == ["0", "1"]
    assert all(" digit " in line and "(probability 0." in line for line in lines[1:])


def test_dlforge_predict_takes_an_npy_file_and_an_image(server, batch, tmp_path, capsys):
    from PIL import Image

    np.save(tmp_path / "rows.npy", batch[:3])
    image = (255 - batch[0].reshape(8, 8) / 16 * 255).astype(np.uint8)  # Dark ink on white.
    Image.fromarray(image).resize((32, 32), Image.NEAREST).save(tmp_path / "digit.png")
    server_address = f"127.0.0.1:{server.rest_port}"

    assert (
        cli.main(
            [
                "predict",
                "--server",
                server_address,
                "--model",
                "digits",
                "--input",
                str(tmp_path / "rows.npy"),
            ]
        )
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 1 + 3
    assert (
        cli.main(
            [
                "predict",
                "--server",
                server_address,
                "--model",
                "digits",
                "--input",
                str(tmp_path / "digit.png"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1].startswith("0: ")


def test_dlforge_predict_errors_exit_2_with_one_line(server, tmp_path, capsys):
    rows = tmp_path / "rows.json"
    rows.write_text("[[1, 2, 3]]")
    server_address = f"127.0.0.1:{server.rest_port}"

    wrong_width = cli.main(
        ["predict", "--server", server_address, "--model", "digits", "--input", str(rows)]
    )
    unknown_model = cli.main(
        ["predict", "--server", server_address, "--model", "nope", "--input", str(rows)]
    )

    errors = capsys.readouterr().err.splitlines()
    assert (wrong_width, unknown_model) == (2, 2)
    assert errors[0].startswith("dlforge: error: 400: input 'inputs': expected shape [-1,64]")
    assert errors[1] == ("dlforge: error: 404: Servable not found for request: Latest(nope)")
