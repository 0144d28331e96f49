"""TF Serving's REST API (`/v1/models/...`) and the Prometheus endpoint, over HTTP/1.1.

URLs are matched with TF Serving's own patterns and dispatched in its order; every error is
`{"error": "<message>"}` with the HTTP status TF Serving maps its code to. A body larger than
the limit is refused (413) before it is read. Paths outside `/v1/` and the metrics path get a
bare 404, as TF Serving's HTTP server gives.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import inference, metrics, rest_json, status
from serving.core import SIGNATURE_DEF_FIELD, ServingCore

_LOG = logging.getLogger("dlforge.serving")
METRICS_PATH = "/monitoring/prometheus/metrics"
VERSION_HEADER = "X-Dlforge-Model-Version"
_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_INT64_MAX = 2**63 - 1


class _Reply:
    """What a REST request answers, and what the metrics record about it."""

    def __init__(self):
        self.body = ""
        self.model_name = ""
        self.api = ""
        self.version: int | None = None


def _json_of(message) -> dict:
    return json_format.MessageToDict(
        message, including_default_value_fields=True, preserving_proto_field_name=True
    )


class RestApi:
    """Answers REST requests from a ServingCore; independent of the HTTP server around it.

    Args:
        core: The server core.
        timeout_ms: Deadline of each request's model call (`--rest_api_timeout_in_ms`); <= 0
            for none.
    """

    def __init__(self, core: ServingCore, timeout_ms: int):
        self.core = core
        self.timeout_ms = timeout_ms

    def handle(self, method: str, path: str, body: bytes, reply: _Reply) -> None:
        """Fills `reply.body` for a successful request.

        Raises:
            ServingError: TF Serving's error for the request.
        """
        deadline = time.monotonic() + self.timeout_ms / 1000 if self.timeout_ms > 0 else None
        match = None
        if method == "POST":
            match = _PREDICTION.fullmatch(path)
        elif method == "GET":
            match = _STATUS.fullmatch(path)
        name = version = label = subresource = None
        if match is not None:
            name, version_text, label_text, subresource = match.groups()
            name = urllib.parse.unquote(name) if name else ""
            reply.model_name = name
            if version_text:
                version = int(version_text)
                if version > _INT64_MAX:
                    raise status.invalid_argument(
                        f"Failed to convert version: {version_text} to numeric."
                    )
            label = urllib.parse.unquote(label_text) if label_text else None
        malformed = status.invalid_argument(f"Malformed request: {method} {path}")
        if match is None:
            raise malformed
        if method == "POST":
            reply.api = subresource
            if subresource == "predict":
                self._predict(name, version, label, body, deadline, reply)
            elif subresource in ("classify", "regress"):
                self._classify_or_regress(subresource, name, version, label, body, deadline, reply)
            else:
                raise malformed  # A method in another case, e.g. ':PREDICT', as in TF Serving.
            return
        if not name:
            raise status.invalid_argument("Missing model name in request.")
        if subresource == "metadata":
            reply.api = "GetModelMetadata"
            response = self.core.model_metadata(name, version, label)
            reply.version = response.model_spec.version.value
            signatures = _signature_map(response)
            reply.body = json.dumps(
                {
                    "model_spec": _json_of(response.model_spec),
                    "metadata": {SIGNATURE_DEF_FIELD: _json_of(signatures)},
                },
                indent=1,
            )
        else:
            reply.api = "GetModelStatus"
            response = self.core.model_status(name, version)
            reply.body = json.dumps(_json_of(response), indent=1)

    def _predict(self, name, version, label, body, deadline, reply: _Reply) -> None:
        document = rest_json.parse_document(body)
        found = {}

        def input_dtypes(signature_name: str) -> dict[str, int]:
            servable = self.core.servable(name, version, label)
            found["servable"] = servable
            reply.version = servable.version
            key = inference.signature_or_default(signature_name)
            signature = servable.signature_defs.get(key)
            if signature is None:
                raise status.invalid_argument(
                    f'Serving signature name: "{key}" not found in signature def'
                )
            return {alias: info.dtype for alias, info in signature.inputs.items()}

        signature_name, inputs, request_format = rest_json.predict_inputs(document, input_dtypes)
        servable = found["servable"]
        outputs = self.core.predict(servable, signature_name, inputs, [], deadline)
        reply.body = rest_json.predict_response(outputs, request_format)

    def _classify_or_regress(self, api, name, version, label, body, deadline, reply) -> None:
        document = rest_json.parse_document(body)
        signature_name, request_input = rest_json.examples_input(document)
        servable = self.core.servable(name, version, label)
        reply.version = servable.version
        runner = self.core.runner(deadline)
        if api == "classify":
            results = inference.classify(servable, signature_name, request_input, runner)
            reply.body = rest_json.classify_response(results)
        else:
            reply.body = rest_json.regress_response(
                inference.regress(servable, signature_name, request_input, runner)
            )


def _signature_map(response):
    """The SignatureDefMap packed in a GetModelMetadataResponse."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signatures)
    return signatures


def _handler_class(api: RestApi, max_body_bytes: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dlforge-serving"
        timeout = 60  # Seconds a client may stall mid-request before its connection closes.
        # Headers and body leave in one buffered write (flushed after each request), and
        # without Nagle's delay: else a keep-alive client waits 40 ms for a delayed ACK.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, format, *args):
            _LOG.debug("%s - " + format, self.address_string(), *args)

        def _send(self, code: int, body: str, content_type: str, headers=()) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _read_body(self) -> bytes | None:
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    self.close_connection = True
                    self._send(
                        411,
                        rest_json.error_body(
                            "Chunked request bodies are not accepted; send Content-Length."
                        ),
                        "application/json",
                    )
                    return None
                return b""
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                self._send(
                    400,
                    rest_json.error_body(
                        f"Expected a non-negative Content-Length, received {length_text!r}"
                    ),
                    "application/json",
                )
                return None
            if length > max_body_bytes:
                self.close_connection = True
                self._send(
                    413,
                    rest_json.error_body(
                        f"Request body of {length} bytes exceeds the limit of {max_body_bytes} "
                        "bytes"
                    ),
                    "application/json",
                )
                return None
            return self.rfile.read(length)

        def _handle(self) -> None:
            start = time.perf_counter()
            path = urllib.parse.urlsplit(self.path).path
            body = self._read_body()
            if body is None:
                return
            if path == METRICS_PATH and self.command == "GET":
                self._send(200, api.core.metrics.render(), metrics.CONTENT_TYPE)
                return
            if not _V1.fullmatch(path):
                self._send(404, "", "text/plain")
                return
            reply = _Reply()
            error = None
            if self.command == "OPTIONS":
                if not re.search(r"https?://", self.headers.get("Origin") or ""):
                    error = status.failed_precondition("Origin header is missing in CORS preflight")
            else:
                try:
                    api.handle(self.command, path, body, reply)
                except Exception as raised:  # Every failure answers as JSON.
                    error = inference.error_from_exception(raised)
                    if not isinstance(raised, status.ServingError):
                        _LOG.exception("REST request %s %s failed", self.command, path)
            headers = [] if reply.version is None else [(VERSION_HEADER, str(reply.version))]
            if error is None:
                self._send(200, reply.body, "application/json", headers)
            else:
                self._send(
                    error.http_status,
                    rest_json.error_body(error.message),
                    "application/json",
                    headers,
                )
            if reply.model_name:
                api.core.metrics.record_request(
                    reply.model_name,
                    reply.version,
                    reply.api or self.command,
                    "REST",
                    "OK" if error is None else error.code_name,
                    (time.perf_counter() - start) * 1e6,
                )

        # BaseHTTPRequestHandler dispatches on these names; every method gets TF Serving's answer.
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle  # noqa: N815

    return Handler


class _Server(ThreadingHTTPServer):
    # socketserver's backlog of 5 resets connections when dozens of clients connect at once.
    request_queue_size = 1024


class RestServer:
    """The REST API on a threading HTTP server.

    Args:
        core: The server core.
        host: Interface to bind.
        port: Port; 0 picks a free one (see `port` after `start`).
        timeout_ms: `--rest_api_timeout_in_ms`.
        max_body_bytes: Largest request body accepted.
    """

    def __init__(
        self, core: ServingCore, host: str, port: int, timeout_ms: int, max_body_bytes: int
    ):
        handler = _handler_class(RestApi(core, timeout_ms), max_body_bytes)
        self._server = _Server((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dlforge-rest", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
