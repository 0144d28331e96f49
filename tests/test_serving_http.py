"""The REST server's HTTP/1.1 layer (one asyncio loop): keep-alive, pipelining, partial reads,
framing errors and clients that leave; and the JSON fast paths agreeing with the checked ones."""

import contextlib
import json
import math
import socket
import time

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from serving import rest_json, status
from serving.config import BatchingParameters, ModelConfig, ServerOptions
from serving.server import ModelServer
from tests import serving_models

PREDICT = "/v1/models/toy:predict"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_http")
    base = str(root / "base")
    serving_models.publish(serving_models.toy_model(str(root)), base, 3)
    options = ServerOptions(
        models=(ModelConfig("toy", base),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
        max_body_bytes=4096,
    )
    with ModelServer(options) as running:
        yield running


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)


def post(body: str, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    data = body.encode()
    return (
        f"POST {PREDICT} {version}\r\nHost: test\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
    ).encode() + data


def read_response(stream: socket.socket, buffer: bytearray) -> tuple[int, dict, bytes]:
    """One response from the stream (status, lower-case headers, body); leaves the rest."""
    while b"\r\n\r\n" not in buffer:
        chunk = stream.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response; read {bytes(buffer)!r}")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    lines = buffer[:end].decode("latin-1").split("\r\n")
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    )
    length = int(headers.get("content-length", "0"))
    while len(buffer) < end + 4 + length:
        buffer += stream.recv(65536)
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return int(lines[0].split(" ")[1]), headers, body


def closed_by_server(stream: socket.socket) -> bool:
    stream.settimeout(10)
    return stream.recv(1) == b""


def test_pipelined_requests_are_answered_in_order_on_one_connection(server):
    with connect(server) as stream:
        stream.sendall(
            post('{"instances": [2.0]}')
            + post('{"instances": [4.0, 6.0]}')
            + b"GET /v1/models/toy HTTP/1.1\r\nHost: test\r\n\r\n"
        )
        buffer = bytearray()
        answers = [read_response(stream, buffer) for _ in range(3)]

    assert [(code, json.loads(body)) for code, _, body in answers[:2]] == [
        (200, {"predictions": [3.0]}),
        (200, {"predictions": [4.0, 5.0]}),
    ]
    assert answers[2][0] == 200
    assert json.loads(answers[2][2])["model_version_status"][0]["version"] == "3"


def test_a_request_arriving_a_byte_at_a_time_is_answered(server):
    with connect(server) as stream:
        for byte in post('{"instances": [0.0]}'):
            stream.sendall(bytes([byte]))
        code, headers, body = read_response(stream, bytearray())

    assert (code, json.loads(body)) == (200, {"predictions": [2.0]})
    assert headers["x-dlforge-model-version"] == "3"


def test_http_1_0_closes_after_the_answer_and_1_1_keeps_the_connection(server):
    with connect(server) as stream:
        stream.sendall(post('{"instances": [2.0]}', version="HTTP/1.0"))
        code, headers, _ = read_response(stream, bytearray())
        assert (code, headers["connection"]) == (200, "close")
        assert closed_by_server(stream)
    with connect(server) as stream:
        buffer = bytearray()
        for value in (1.0, 3.0):
            stream.sendall(post(f'{{"instances": [{value}]}}'))
            code, headers, body = read_response(stream, buffer)
            assert (code, "connection" in headers) == (200, False)
            assert json.loads(body) == {"predictions": [value / 2 + 2]}


def test_expect_100_continue_gets_the_interim_answer_before_the_body(server):
    body = b'{"instances": [8.0]}'
    with connect(server) as stream:
        stream.sendall(
            f"POST {PREDICT} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        buffer = bytearray()
        interim = read_response(stream, buffer)
        stream.sendall(body)
        final = read_response(stream, buffer)

    assert interim[0] == 100
    assert (final[0], json.loads(final[2])) == (200, {"predictions": [6.0]})


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"NONSENSE\r\n\r\n", 400, "Expected a request line 'METHOD target HTTP/1.x'"),
        (b"GET /v1/models/toy HTTP/2.0\r\n\r\n", 505, "Expected HTTP/1.0 or HTTP/1.1"),
        (b"GET /v1/models/toy HTTP/1.1\r\nno colon\r\n\r\n", 400, "Expected a header"),
        (
            b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            411,
            "Chunked request bodies are not accepted",
        ),
        (
            b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
            400,
            "Expected a non-negative Content-Length, received '-3'",
        ),
        (
            b"GET /v1/models/toy HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            431,
            "Request line and headers exceed 65536 bytes",
        ),
    ],
)
def test_a_request_that_cannot_be_framed_gets_an_error_and_the_connection_closes(
    server, raw, code, message
):
    with connect(server) as stream:
        stream.sendall(raw)
        answer = read_response(stream, bytearray())

        assert answer[0] == code
        assert json.loads(answer[2])["error"].startswith(message)
        assert closed_by_server(stream)


def test_clients_leaving_mid_request_or_mid_call_leave_the_server_healthy(server):
    for raw in (post('{"instances": [1.0]}')[:30], post('{"instances": [1.0]}')):
        stream = connect(server)
        stream.sendall(raw)
        stream.close()
    time.sleep(0.2)

    with connect(server) as stream:
        stream.sendall(post('{"instances": [10.0]}'))
        code, _, body = read_response(stream, bytearray())

    assert (code, json.loads(body)) == (200, {"predictions": [7.0]})


@pytest.mark.parametrize(
    "text",
    [
        '{"instances": [[1.5, 2, -0.0, 1e-320]], "signature_name": "x"}',
        '{"a": 1, "a": 2, "b": "\\u00e9", "c": [true, false, null], "d": 123456789012345678}',
        '{"instances": [NaN, Infinity, -Infinity]}',
        '  {"inputs": {"x": [1.0]}} trailing bytes are ignored',
    ],
)
def test_the_fast_json_reader_reads_what_pythons_json_reads(text):
    parsed = rest_json.parse_document(text.encode())
    expected, _ = json.JSONDecoder().raw_decode(text.lstrip())

    assert json.dumps(parsed, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_bad_document_still_gets_tf_servings_parse_error():
    with pytest.raises(status.ServingError) as raised:
        rest_json.parse_document(b'{"instances": [1.0,]}')

    assert raised.value.message == "JSON Parse error: Invalid value. at offset: 19"


def float_inputs(document):
    return rest_json.predict_inputs(document, lambda name: {"x": types_pb2.DT_FLOAT})[1]["x"]


def test_numeric_instances_take_the_fast_path_with_the_checked_paths_result():
    rows = [[0.5, 1, -2.25], [3, 4.0, 1e30]]
    fast = float_inputs({"instances": rows})
    checked = float_inputs({"instances": [{"x": row} for row in rows]})

    assert fast.dtype == np.float32 == checked.dtype
    np.testing.assert_array_equal(fast, checked)
    np.testing.assert_array_equal(float_inputs({"instances": [1, 2.5]}), [1.0, 2.5])


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([[1.0, True]], "JSON Value: true Type: True is not of expected type: float"),
        ([["1.0"]], 'JSON Value: "1.0" Type: String is not of expected type: float'),
        ([[1.0, 2.0], [3.0]], "Expecting tensor size: 2 but got: 1"),
    ],
)
def test_instances_the_fast_path_refuses_get_the_checked_paths_error(instances, message):
    with pytest.raises(status.ServingError) as raised:
        float_inputs({"instances": instances})

    assert message in raised.value.message


def test_floats_print_shortest_and_non_finite_values_as_tf_serving_does():
    outputs = {
        "y": np.array([0.1, 1e20, 3, math.nan, -math.inf], np.float32),
        "z": np.array([0.1, 2.5e-10, 1e300, 7, math.inf]),
    }

    text = rest_json.predict_response(outputs, rest_json.COLUMNAR)

    assert text == (
        '{"outputs": {"y": [0.1, 1e+20, 3.0, NaN, -Infinity], '
        '"z": [0.1, 2.5e-10, 1e+300, 7.0, Infinity]}}'
    )
    finite = {"y": np.array([0.1, 1e20, 3], np.float32)}
    assert rest_json.predict_response(finite, rest_json.ROW) == (
        '{"predictions": [0.1, 1e+20, 3.0]}'
    )


def test_bytes_pipelined_behind_a_waiting_request_stay_in_the_socket(tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(serving_models.toy_model(str(tmp_path)), base, 1)
    options = ServerOptions(
        models=(ModelConfig("toy", base),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
        max_body_bytes=4096,
        # The first request waits in its batch until a second one fills it.
        batching=BatchingParameters(max_batch_size=64, batch_timeout_micros=60_000_000),
    )
    with ModelServer(options) as running, connect(running) as stream:
        stream.sendall(post('{"instances": [2.0]}'))
        deadline = time.monotonic() + 30
        while not any(connection._busy for connection in running.rest._connections):
            assert time.monotonic() < deadline, "the request never reached its batch"
            time.sleep(0.01)
        stream.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while sent < 8_000_000:  # Until the kernel's buffers are full too.
                sent += stream.send(b"x" * 65536)
        buffered = [len(connection._buffer) for connection in running.rest._connections]
        with connect(running) as filler:
            filler.sendall(post('{"instances": [' + ", ".join(["1.0"] * 63) + "]}"))
            assert read_response(filler, bytearray())[0] == 200
        stream.setblocking(True)
        stream.settimeout(30)
        code, _, body = read_response(stream, bytearray())

    assert sent < 8_000_000
    assert max(buffered) <= 4096 + 64 * 1024 + 256 * 1024  # The limit plus one read or so.
    assert (code, json.loads(body)) == (200, {"predictions": [3.0]})
