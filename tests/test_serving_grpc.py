"""TF Serving's gRPC contract on `dlforge serve`, through the stubs of tensorflow-serving-api."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.config import ALL, ModelConfig, ServerOptions, VersionPolicy
from serving.server import ModelServer
from tests import serving_models


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_grpc")
    model = serving_models.toy_model(str(root))
    base = str(root / "base")
    for version in (7, 9):
        serving_models.publish(model, base, version)
    options = ServerOptions(
        models=(ModelConfig("toy", base, policy=VersionPolicy(kind=ALL), labels={"stable": 7}),),
        grpc_port=0,
        poll_wait_seconds=0,
    )
    with (
        ModelServer(options) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as opened,
    ):
        yield opened


@pytest.fixture
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict_request(name="toy", signature="", values=(1.0, 2.0), **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            request.model_spec.version_label = value
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(values, np.float32)))
    return request


def examples_input(request, *values):
    for value in values:
        example = example_pb2.Example()
        example.features.feature["x"].float_list.value.append(value)
        request.input.example_list.examples.add().CopyFrom(example)
    return request


def failure(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value.code(), raised.value.details()


def test_predict_answers_with_the_resolved_model_spec(predictions):
    response = predictions.Predict(predict_request(), timeout=30)

    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [2.5, 3.0])
    assert (response.model_spec.name, response.model_spec.version.value) == ("toy", 9)
    assert response.model_spec.signature_name == "serving_default"


def test_predict_by_version_and_label(predictions):
    by_version = predictions.Predict(predict_request(version=7), timeout=30)
    by_label = predictions.Predict(predict_request(label="stable"), timeout=30)

    assert by_version.model_spec.version.value == by_label.model_spec.version.value == 7


def test_predict_output_filter_returns_only_the_asked_outputs(predictions):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "pairs_and_tags"
    request.inputs["pairs"].CopyFrom(tf.make_tensor_proto(np.ones((1, 2), np.float32)))
    request.inputs["tag"].CopyFrom(tf.make_tensor_proto(np.array([b"\xff\x00"], dtype=object)))
    request.output_filter.append("tag_bytes")

    response = predictions.Predict(request, timeout=30)

    assert list(response.outputs) == ["tag_bytes"]
    assert tf.make_ndarray(response.outputs["tag_bytes"]).tolist() == [b"\xff\x00"]


def _missing_input():
    request = predict_request(signature="pairs_and_tags")
    return request


def _bad_filter():
    request = predict_request()
    request.output_filter.append("z")
    return request


@pytest.mark.parametrize(
    ("request_factory", "code", "message"),
    [
        (
            lambda: predict_request(name="nope"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            lambda: predict_request(name=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ModelSpec has no name specified.",
        ),
        (
            lambda: predict_request(version=8),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(toy, 8)",
        ),
        (
            lambda: predict_request(label="beta"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: beta",
        ),
        (
            lambda: predict_request(signature="nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
        (
            _missing_input,
            grpc.StatusCode.INVALID_ARGUMENT,
            "input size does not match signature: 1!=2 len({x}) != len({pairs,tag}). Sent extra: "
            "{x}. Missing but required: {pairs,tag}.",
        ),
        (
            _bad_filter,
            grpc.StatusCode.INVALID_ARGUMENT,
            "output tensor alias not found in signature: z Outputs expected to be in the set {y}.",
        ),
    ],
)
def test_predict_errors(predictions, request_factory, code, message):
    assert failure(predictions.Predict, request_factory()) == (code, message)


def test_classify_and_regress(predictions):
    classify = examples_input(classification_pb2.ClassificationRequest(), 0.25)
    classify.model_spec.name = "toy"
    classify.model_spec.signature_name = "classify_x"
    regress = examples_input(regression_pb2.RegressionRequest(), 0.5, 2.0)
    regress.model_spec.name = "toy"
    regress.model_spec.signature_name = "regress_x"

    classes = predictions.Classify(classify, timeout=30).result.classifications[0].classes
    values = predictions.Regress(regress, timeout=30).result.regressions

    assert [(entry.label, entry.score) for entry in classes] == [("pos", 0.25), ("neg", 0.75)]
    assert [entry.value for entry in values] == [2.0, 5.0]


def test_classify_errors(predictions):
    wrong_method = examples_input(classification_pb2.ClassificationRequest(), 1.0)
    wrong_method.model_spec.name = "toy"
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = "toy"
    empty.model_spec.signature_name = "classify_x"

    assert failure(predictions.Classify, wrong_method) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    )
    assert failure(predictions.Classify, empty) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Input is empty.",
    )


def test_get_model_metadata(predictions):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "toy"

    response = predictions.GetModelMetadata(request, timeout=30)

    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert response.model_spec.version.value == 9
    assert signatures.signature_def["regress_x"].method_name == "tensorflow/serving/regress"


@pytest.mark.parametrize(
    ("fields", "name", "message"),
    [
        ([], "toy", "GetModelMetadataRequest must specify at least one metadata_field"),
        (["graph"], "toy", "Metadata field graph is not supported"),
        (["signature_def"], None, "Missing ModelSpec"),
    ],
)
def test_get_model_metadata_errors(predictions, fields, name, message):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    if name is not None:
        request.model_spec.name = name

    assert failure(predictions.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
    )


def test_get_model_status(channel):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "toy"
    unknown = get_model_status_pb2.GetModelStatusRequest()
    unknown.model_spec.name = "nope"

    response = models.GetModelStatus(request, timeout=30)

    assert [(entry.version, entry.state) for entry in response.model_version_status] == [
        (9, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (7, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
    ]
    assert failure(models.GetModelStatus, unknown) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )


def test_multi_inference_is_not_implemented(predictions):
    code, _ = failure(predictions.MultiInference, inference_pb2.MultiInferenceRequest())

    assert code == grpc.StatusCode.UNIMPLEMENTED
