"""TF Serving's REST contract on `dlforge serve`: URLs, bodies, status codes, errors, order.

Expected messages are TF Serving's (model_servers/http_rest_api_handler.cc, util/json_tensor.cc,
model_servers/server_core.cc); the toy model has the signature kinds TF Serving tells apart.
"""

import http.client
import json

import pytest

from serving.config import ALL, ModelConfig, ServerOptions, VersionPolicy
from serving.server import ModelServer
from tests import serving_models


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_rest")
    model = serving_models.toy_model(str(root))
    base = str(root / "base")
    for version in (7, 9):
        serving_models.publish(model, base, version)
    options = ServerOptions(
        models=(
            ModelConfig(
                "toy", base, policy=VersionPolicy(kind=ALL), labels={"stable": 7, "canary": 9}
            ),
        ),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
        max_body_bytes=4096,
    )
    with ModelServer(options) as running:
        yield running


def request(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        data = body.encode() if isinstance(body, str) else body
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        payload = response.read().decode()
        return response.status, payload, dict(response.getheaders())
    finally:
        connection.close()


def call(server, method, path, body=None):
    status, payload, _ = request(server, method, path, body)
    return status, json.loads(payload) if payload else None


def test_status_lists_every_version_newest_first(server):
    status, document = call(server, "GET", "/v1/models/toy")

    assert status == 200
    assert document == {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for version in ("9", "7")
        ]
    }


def test_status_of_one_version(server):
    status, document = call(server, "GET", "/v1/models/toy/versions/7")

    assert status == 200
    assert [entry["version"] for entry in document["model_version_status"]] == ["7"]


def test_metadata_of_the_latest_version_and_of_a_label(server):
    status, latest = call(server, "GET", "/v1/models/toy/metadata")
    _, stable = call(server, "GET", "/v1/models/toy/labels/stable/metadata")

    assert status == 200
    assert latest["model_spec"] == {"name": "toy", "signature_name": "", "version": "9"}
    assert stable["model_spec"]["version"] == "7"
    signatures = latest["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "pairs_and_tags", "classify_x", "regress_x"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]


def test_predict_row_and_columnar_formats(server):
    assert call(server, "POST", "/v1/models/toy:predict", '{"instances": [1.0, 2.0, 5.0]}') == (
        200,
        {"predictions": [2.5, 3.0, 4.5]},
    )
    assert call(
        server,
        "POST",
        "/v1/models/toy:predict",
        '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}',
    ) == (200, {"outputs": [3.5, 4.0]})


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1/models/toy:predict", "9"),
        ("/v1/models/toy/versions/7:predict", "7"),
        ("/v1/models/toy/labels/stable:predict", "7"),
        ("/v1/models/toy/labels/canary:predict", "9"),
    ],
)
def test_predict_by_version_and_label_says_which_version_served(server, path, version):
    status, payload, headers = request(server, "POST", path, '{"instances": [2.0]}')

    assert (status, json.loads(payload)) == (200, {"predictions": [3.0]})
    assert headers["X-Dlforge-Model-Version"] == version


def test_named_inputs_b64_bytes_and_bytes_outputs(server):
    rows = (
        '{"signature_name": "pairs_and_tags", "instances": ['
        '{"pairs": [1, 2], "tag": {"b64": "aGk="}}, {"pairs": [3, 4.5], "tag": "yo"}]}'
    )
    columns = (
        '{"signature_name": "pairs_and_tags", "inputs": '
        '{"pairs": [[1, 2], [3, 4.5]], "tag": [{"b64": "aGk="}, "yo"], "ignored": 1}}'
    )

    assert call(server, "POST", "/v1/models/toy:predict", rows) == (
        200,
        {
            "predictions": [
                {"doubled": [2.0, 4.0], "tag_bytes": {"b64": "aGk="}},
                {"doubled": [6.0, 9.0], "tag_bytes": {"b64": "eW8="}},
            ]
        },
    )
    assert call(server, "POST", "/v1/models/toy:predict", columns) == (
        200,
        {
            "outputs": {
                "doubled": [[2.0, 4.0], [6.0, 9.0]],
                "tag_bytes": [{"b64": "aGk="}, {"b64": "eW8="}],
            }
        },
    )


def test_classify_and_regress_on_their_signatures(server):
    classify = '{"signature_name": "classify_x", "examples": [{"x": 0.25}, {"x": [0.5]}]}'
    regress = '{"signature_name": "regress_x", "context": {"x": 1.5}, "examples": [{}]}'

    assert call(server, "POST", "/v1/models/toy:classify", classify) == (
        200,
        {"results": [[["pos", 0.25], ["neg", 0.75]], [["pos", 0.5], ["neg", 0.5]]]},
    )
    assert call(server, "POST", "/v1/models/toy/versions/7:regress", regress) == (
        200,
        {"results": [4.0]},
    )


PREDICT = "/v1/models/toy:predict"
PAIRS = '{"signature_name": "pairs_and_tags", '
CLASSIFY_X = '{"signature_name": "classify_x", '
ERRORS = [
    # URL grammar (ParseModelInfo): anything else under /v1/ is a malformed request.
    ("GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("POST", "/v1/models", "", 400, "Malformed request: POST /v1/models"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/toy:predict", None, 400, "Malformed request: GET /v1/models/toy:predict"),
    (
        "POST",
        "/v1/models/toy/versions/HELLO:predict",
        "{}",
        400,
        "Malformed request: POST /v1/models/toy/versions/HELLO:predict",
    ),
    ("POST", "/v1/models/toy:PREDICT", "{}", 400, "Malformed request: POST /v1/models/toy:PREDICT"),
    (
        "POST",
        "/v1/models/toy/versions/18446744073709551615:predict",
        "{}",
        400,
        "Failed to convert version: 18446744073709551615 to numeric.",
    ),
    ("PUT", "/v1/models/toy", "", 400, "Malformed request: PUT /v1/models/toy"),
    # The body, before the model is looked up.
    ("POST", PREDICT, "", 400, "JSON Parse error: The document is empty"),
    ("POST", PREDICT, "instances = [1, 2]", 400, "JSON Parse error: Invalid value. at offset: 0"),
    ("POST", PREDICT, "[1]", 400, "JSON Value: [1] Is not object"),
    (
        "POST",
        PREDICT,
        '{"instances": ["\\ud800"]}',
        400,
        "JSON Parse error: The surrogate pair in string is invalid. at offset: 16",
    ),
    ("POST", "/v1/models/nope:predict", "", 400, "JSON Parse error: The document is empty"),
    (
        "POST",
        PREDICT,
        '{"signature_name": 100}',
        400,
        "JSON Value: {\"signature_name\": 100} not formatted correctly. 'signature_name' key must "
        "be a string value.",
    ),
    # The model, version, label and signature.
    (
        "POST",
        "/v1/models/nope:predict",
        '{"instances": [1.0]}',
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/toy/versions/8:predict",
        '{"instances": [1.0]}',
        404,
        "Servable not found for request: Specific(toy, 8)",
    ),
    (
        "POST",
        "/v1/models/toy/labels/beta:predict",
        '{"instances": [1.0]}',
        400,
        "Unrecognized servable version label: beta",
    ),
    (
        "POST",
        PREDICT,
        '{"signature_name": "nope", "instances": [1.0]}',
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    ("GET", "/v1/models/toy/versions/8", None, 404, "Could not find version 8 of model toy"),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    # Tensors.
    (
        "POST",
        PREDICT,
        '{"instances": [1.0], "inputs": [1.0]}',
        400,
        'JSON Value: {"instances": [1.0], "inputs": [1.0]} Not formatted correctly expecting only '
        "one of 'inputs' or 'instances' keys to exist ",
    ),
    (
        "POST",
        PREDICT,
        '{"instances": 1.0}',
        400,
        "JSON Value: {\"instances\": 1.0} Expecting 'instances' to be an list/array",
    ),
    (
        "POST",
        PREDICT,
        '{"instances": []}',
        400,
        "JSON Value: {\"instances\": []} No values in 'instances' array",
    ),
    ("POST", PREDICT, "{}", 400, "Missing 'inputs' or 'instances' key"),
    (
        "POST",
        PREDICT,
        '{"instances": ["x", "y"]}',
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
        '"x" Type: String is not of expected type: float',
    ),
    (
        "POST",
        PREDICT,
        '{"instances": [true]}',
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
        "true Type: True is not of expected type: float",
    ),
    (
        "POST",
        PREDICT,
        '{"instances": [{"x": 1.0}, 2.0]}',
        400,
        "Expecting object but got list at item 1 of input list",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"instances": [1.0]}',
        400,
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"instances": [{"pairs": [1, 2]}]}',
        400,
        "Failed to process element: 0 of 'instances' list. JSON object: {\"pairs\": [1, 2]} keys "
        "must be equal to: pairs,tag",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"instances": [{"pairs": [1, 2], "tag": "a"}, {"pairs": [1, 2, 3], "tag": "b"}]}',
        400,
        "Failed to process element: 1 key: pairs of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 3",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"inputs": {"pairs": [[1, 2]]}}',
        400,
        "Missing named input: tag in 'inputs' object.",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"inputs": [1]}',
        400,
        "inputs is a plain value/list, but expecting an object as multiple input tensors required "
        "as per tensorinfo_map",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"inputs": {"pairs": [[1, 2], [3]], "tag": ["a", "b"]}}',
        400,
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        "POST",
        PREDICT,
        PAIRS + '"inputs": {"pairs": [[1, 2]], "tag": [{"b64": "%%"}]}}',
        400,
        "Unable to base64 decode",
    ),
    # Classify and regress.
    (
        "POST",
        "/v1/models/toy:classify",
        '{"examples": [{"x": 1.0}]}',
        400,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    ),
    (
        "POST",
        "/v1/models/toy:regress",
        '{"signature_name": "nope", "examples": [{"x": 1.0}]}',
        400,
        "No signature was found with the name: nope",
    ),
    (
        "POST",
        "/v1/models/nope:classify",
        '{"examples": [{"x": 1.0}]}',
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/toy:classify",
        CLASSIFY_X + '"context": {}}',
        400,
        'JSON Value: {"signature_name": "classify_x", "context": {}} When method is classify, key '
        "'examples' is expected and was not found",
    ),
    (
        "POST",
        "/v1/models/toy:classify",
        CLASSIFY_X + '"examples": []}',
        400,
        'JSON Value: {"signature_name": "classify_x", "examples": []} \'examples\' value is an '
        "empty array",
    ),
    (
        "POST",
        "/v1/models/toy:classify",
        CLASSIFY_X + '"examples": [1]}',
        400,
        "Example must be JSON object but got JSON Number",
    ),
    (
        "POST",
        "/v1/models/toy:classify",
        CLASSIFY_X + '"examples": [{"x": null}]}',
        400,
        "Feature: x has element with unexpected JSON type: Null",
    ),
    (
        "POST",
        "/v1/models/toy:classify",
        CLASSIFY_X + '"examples": [{"x": [1.0, "a"]}]}',
        400,
        "Unexpected element type in feature: x expecting type: float",
    ),
    (
        "POST",
        "/v1/models/toy:classify",
        CLASSIFY_X + '"examples": [{"x": 18446744073709551615}]}',
        400,
        "Feature: x has uint64_t element. Only int64_t is supported.",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), ERRORS)
def test_errors_have_tf_servings_status_and_message(server, method, path, body, status, message):
    assert call(server, method, path, body) == (status, {"error": message})


def test_paths_outside_v1_are_not_found_without_a_body(server):
    status, payload, _ = request(server, "GET", "/index.html")

    assert (status, payload) == (404, "")


def test_cors_preflight_needs_an_origin(server):
    without = request(server, "OPTIONS", "/v1/models/toy")
    with_origin = request(
        server, "OPTIONS", "/v1/models/toy", headers={"Origin": "https://example.com"}
    )

    assert without[:2] == (400, '{"error": "Origin header is missing in CORS preflight"}')
    assert with_origin[0] == 200


def test_a_body_over_the_limit_is_refused_unread_and_the_server_stays_up(server):
    body = '{"instances": [' + ", ".join(["1.0"] * 2000) + "]}"

    status, payload, _ = request(server, "POST", PREDICT, body)

    assert status == 413
    assert json.loads(payload)["error"].startswith(f"Request body of {len(body)} bytes exceeds")
    assert call(server, "POST", PREDICT, '{"instances": [0.0]}') == (200, {"predictions": [2.0]})


def test_model_names_are_looked_up_never_joined_into_paths(server):
    status, document = call(server, "POST", "/v1/models/..%2Ftoy:predict", '{"instances": [1.0]}')

    assert (status, document) == (404, {"error": "Servable not found for request: Latest(../toy)"})


def test_metrics_count_requests_per_model_version_and_status(server):
    call(server, "POST", "/v1/models/toy/versions/7:predict", '{"instances": [1.0]}')

    status, text, headers = request(server, "GET", "/monitoring/prometheus/metrics")

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    lines = text.splitlines()
    ok = (
        ':tensorflow:serving:request_count{model_name="toy",version="7",API="predict",'
        'entrypoint="REST",status="OK"} '
    )
    assert any(line.startswith(ok) for line in lines)
    assert any(
        line.startswith(':tensorflow:serving:request_latency_count{model_name="toy",version="7"')
        for line in lines
    )
    assert (
        ':tensorflow:serving:model_version_state{model_name="toy",version="9",state="AVAILABLE"} 1'
        in lines
    )
