"""Malformed requests (hypothesis): REST never answers 5xx and always a JSON error, gRPC answers
only client-error codes, and the server stays up."""

import http.client
import json

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.config import ModelConfig, ServerOptions
from serving.server import ModelServer
from tests import serving_models

PATHS = [
    "/v1/models/toy:predict",
    "/v1/models/toy:classify",
    "/v1/models/toy:regress",
    "/v1/models/toy/versions/1:predict",
    "/v1/models/toy/labels/stable:predict",
    "/v1/models/toy/metadata",
    "/v1/models/toy",
]
SIGNATURES = ["serving_default", "pairs_and_tags", "classify_x", "regress_x"]
KEYS = ["instances", "inputs", "signature_name", "examples", "context", "x", "pairs", "tag", "b64"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    # Surrogates included: a lone "\\ud800" escape is valid JSON text but no UTF-8 string.
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=24,
)
documents = st.dictionaries(
    st.sampled_from(KEYS),
    json_values | st.sampled_from(SIGNATURES) | st.just({"b64": "aGk="}),
    max_size=4,
)
bodies = (
    documents.map(lambda document: json.dumps(document).encode())
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=64)
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_fuzz")
    base = str(root / "base")
    serving_models.publish(serving_models.toy_model(str(root)), base, 1)
    options = ServerOptions(
        models=(ModelConfig("toy", base, labels={"stable": 1}),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
    )
    with ModelServer(options) as running:
        yield running


def send(server, method, path, body):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=st.sampled_from(["POST", "GET", "PUT"]), path=st.sampled_from(PATHS), body=bodies)
def test_malformed_requests_get_a_json_error_and_no_5xx(server, method, path, body):
    status, payload = send(server, method, path, body)

    assert status < 500, payload
    document = json.loads(payload)
    assert (status == 200) != ("error" in document)


def test_the_server_is_healthy_after_the_fuzz(server):
    status, payload = send(server, "POST", PATHS[0], b'{"instances": [1.0]}')

    assert (status, json.loads(payload)) == (200, {"predictions": [2.5]})


tensor_protos = st.builds(
    lambda dtype, dims, floats, content, strings: tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in dims]
        ),
        float_val=floats,
        tensor_content=content,
        string_val=strings,
    ),
    st.sampled_from(
        [
            types_pb2.DT_FLOAT,
            types_pb2.DT_STRING,
            types_pb2.DT_INT64,
            types_pb2.DT_BOOL,
            types_pb2.DT_INVALID,
            types_pb2.DT_VARIANT,
        ]
    ),
    st.lists(st.integers(min_value=-2, max_value=3), max_size=3),
    st.lists(st.floats(width=32), max_size=4),
    st.binary(max_size=16),
    st.lists(st.binary(max_size=4), max_size=3),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    signature=st.sampled_from(["", *SIGNATURES, "nope"]),
    inputs=st.dictionaries(
        st.sampled_from(["x", "pairs", "tag", "inputs", "y"]), tensor_protos, max_size=2
    ),
)
def test_malformed_grpc_predict_requests_get_client_errors(server, signature, inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = signature
    for alias, tensor in inputs.items():
        request.inputs[alias].CopyFrom(tensor)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(request, timeout=30)
        except grpc.RpcError as error:
            assert error.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
            ), error.details()
