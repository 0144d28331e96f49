"""TF Serving's REST API (`/v1/models/...`) and the Prometheus endpoint, over HTTP/1.1.

URLs are matched with TF Serving's own patterns and dispatched in its order; every error is
`{"error": "<message>"}` with the HTTP status TF Serving maps its code to. A body larger than
the limit is refused (413) before it is read. Paths outside `/v1/` and the metrics path get a
bare 404, as TF Serving's HTTP server gives.

The HTTP server is one asyncio event loop on its own thread: it reads requests, runs TF
Serving's checks and writes answers itself, and awaits each model call's future (a batch, or a
request thread without batching) instead of blocking a thread per connection, so concurrent
requests cost no thread hand-offs and a batch's answers leave together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from http import HTTPStatus
from typing import Any

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
# A model call under way, and the function of its result that is the response body.
Pending = tuple[Future, Callable[[Any], str]]
# Limits of the request line and header block, and of a stalled or idle connection.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
IDLE_SECONDS = 60.0


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

    def handle(self, method: str, path: str, body: bytes, reply: _Reply) -> Pending | None:
        """Fills `reply.body` for a successful request at once; for a request that calls a
        model, returns the call's future and the function of its result that is the body.

        Raises:
            ServingError: TF Serving's error for the request (also from the future).
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
        if match is None:
            raise _malformed(method, path)
        if method == "POST":
            reply.api = subresource
            if subresource == "predict":
                return self._predict(name, version, label, body, deadline, reply)
            if subresource in ("classify", "regress"):
                return self._classify_or_regress(
                    subresource, name, version, label, body, deadline, reply
                )
            raise _malformed(method, path)  # A method in another case, e.g. ':PREDICT'.
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
        return None

    def _predict(self, name, version, label, body, deadline, reply: _Reply) -> Pending:
        document = rest_json.parse_document(body)
        found = {}

        def input_dtypes(signature_name: str) -> dict[str, int]:
            servable = self.core.servable(name, version, label)
            found["servable"] = servable
            reply.version = servable.version
            key = inference.signature_or_default(signature_name)
            specs = servable.input_specs.get(key)
            if specs is None:
                raise status.invalid_argument(
                    f'Serving signature name: "{key}" not found in signature def'
                )
            return {alias: spec.dtype for alias, spec in specs.items()}

        signature_name, inputs, request_format = rest_json.predict_inputs(document, input_dtypes)
        call = self.core.start_predict(found["servable"], signature_name, inputs, [], deadline)
        return call, lambda outputs: rest_json.predict_response(outputs, request_format)

    def _classify_or_regress(self, api, name, version, label, body, deadline, reply) -> Pending:
        document = rest_json.parse_document(body)
        signature_name, request_input = rest_json.examples_input(document)
        servable = self.core.servable(name, version, label)
        reply.version = servable.version
        method, render = (
            (inference.classify, rest_json.classify_response)
            if api == "classify"
            else (inference.regress, rest_json.regress_response)
        )
        # Rare next to Predict: they run on a request thread, the runner keeping the deadline.
        call = self.core.request_threads.submit(
            method, servable, signature_name, request_input, self.core.runner(deadline)
        )
        return call, render


def _malformed(method: str, path: str) -> status.ServingError:
    return status.invalid_argument(f"Malformed request: {method} {path}")


def _signature_map(response):
    """The SignatureDefMap packed in a GetModelMetadataResponse."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signatures)
    return signatures


class _Request:
    """One parsed HTTP request."""

    __slots__ = ("body", "headers", "keep_alive", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], keep_alive: bool):
        self.method = method
        self.target = target
        self.headers = headers
        self.keep_alive = keep_alive
        self.body = b""


class _HttpError(Exception):
    """A request the HTTP layer refuses before TF Serving's handler sees it; the connection
    closes after the answer, since the rest of its bytes cannot be trusted."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_head(head: bytes) -> _Request:
    """The request line and headers (without the blank line), or an `_HttpError`."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _HttpError(
            400, f"Expected a request line 'METHOD target HTTP/1.x', received {lines[0][:200]!r}"
        )
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _HttpError(505, f"Expected HTTP/1.0 or HTTP/1.1, received {version[:50]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise _HttpError(431, f"Expected at most {MAX_HEADERS} headers, received {len(lines) - 1}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            raise _HttpError(400, f"Expected a header 'Name: value', received {line[:200]!r}")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return _Request(method, target, headers, keep_alive)


def _body_length(request: _Request, max_body_bytes: int) -> int:
    """The Content-Length to read, or an `_HttpError` (chunked, malformed, over the limit)."""
    text = request.headers.get("content-length")
    if text is None:
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            raise _HttpError(411, "Chunked request bodies are not accepted; send Content-Length.")
        return 0
    try:
        length = int(text)
        if length < 0:
            raise ValueError
    except ValueError:
        raise _HttpError(
            400, f"Expected a non-negative Content-Length, received {text!r}"
        ) from None
    if length > max_body_bytes:
        raise _HttpError(
            413, f"Request body of {length} bytes exceeds the limit of {max_body_bytes} bytes"
        )
    return length


def _response(
    code: int, body: bytes, content_type: str, keep_alive: bool, headers=(), head_only=False
) -> bytes:
    lines = [
        f"HTTP/1.1 {code} {HTTPStatus(code).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    lines.extend(f"{key}: {value}" for key, value in headers)
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered in order, one at a time (pipelined
    requests wait in the buffer). A model call is waited for by a callback from the thread
    that completes it, so a connection holds no thread and no task."""

    def __init__(self, server: RestServer):
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._request: _Request | None = None  # Head parsed, body still arriving.
        self._length = 0
        self._busy = False
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._active = 0.0  # Loop time of the last bytes received.
        self._paused = False  # Reading paused while a full buffer waits for an answer.
        self._call: Future | None = None  # The model call the answer waits for.

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._server._connections.add(self)
        self._active = self._server._loop.time()
        self._timer = self._server._loop.call_later(IDLE_SECONDS, self._check_idle)

    def connection_lost(self, exc) -> None:
        self._server._connections.discard(self)
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._call is not None:
            self._call.cancel()  # Withdrawn unless it runs already.

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._active = self._server._loop.time()
        if not self._busy:
            self._next()
        elif len(self._buffer) > self._server._max_body_bytes + MAX_HEAD_BYTES:
            # Pipelined bytes beyond one whole request wait in the socket until this answer
            # is out, so a client cannot fill the server's memory.
            self._paused = True
            self._transport.pause_reading()

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _check_idle(self) -> None:
        # A client stalling mid-request, or idle between requests, for IDLE_SECONDS is dropped
        # (not one waiting for its answer).
        idle = self._server._loop.time() - self._active
        if idle >= IDLE_SECONDS and not self._busy:
            self.close()
        else:
            self._timer = self._server._loop.call_later(
                max(IDLE_SECONDS - idle, 1.0), self._check_idle
            )

    def _next(self) -> None:
        """Parses buffered bytes into the next request and starts answering it."""
        if self._closing:
            return
        try:
            if self._request is None:
                if self._buffer.startswith(b"\r\n"):  # Stray line ends between requests.
                    del self._buffer[:2]
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD_BYTES:
                        raise _HttpError(
                            431, f"Request line and headers exceed {MAX_HEAD_BYTES} bytes"
                        )
                    return
                if end > MAX_HEAD_BYTES:
                    raise _HttpError(431, f"Request line and headers exceed {MAX_HEAD_BYTES} bytes")
                request = _parse_head(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
                self._length = _body_length(request, self._server._max_body_bytes)
                self._request = request
                if (
                    self._length > len(self._buffer)
                    and request.headers.get("expect", "").lower() == "100-continue"
                ):
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if len(self._buffer) < self._length:
                return
            request, self._request = self._request, None
            request.body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
        except _HttpError as error:
            self._write(
                _response(
                    error.code,
                    rest_json.error_body(error.message).encode(),
                    "application/json",
                    False,
                )
            )
            return
        self._busy = True
        self._answer(request)

    def _answer(self, request: _Request) -> None:
        """Answers at once, or once the model call it starts completes (`_complete`)."""
        start = time.perf_counter()
        api = self._server._api
        path = urllib.parse.urlsplit(request.target).path
        if path == METRICS_PATH and request.method == "GET":
            body = api.core.metrics.render().encode()
            self._finish(request, _response(200, body, metrics.CONTENT_TYPE, request.keep_alive))
            return
        if not _V1.fullmatch(path):
            self._finish(
                request,
                _response(404, b"", "text/plain", request.keep_alive, (), request.method == "HEAD"),
            )
            return
        reply = _Reply()
        if request.method == "OPTIONS":
            error = None
            if not re.search(r"https?://", request.headers.get("origin", "")):
                error = status.failed_precondition("Origin header is missing in CORS preflight")
            self._reply(request, reply, error, start)
            return
        try:
            pending = api.handle(request.method, path, request.body, reply)
        except Exception as raised:  # Every failure answers as JSON.
            self._reply(request, reply, _serving_error(raised, request, path), start)
            return
        if pending is None:
            self._reply(request, reply, None, start)
            return
        call, render = pending
        self._call = call
        server = self._server
        call.add_done_callback(
            lambda _: server._completed((self, request, reply, render, start, path))
        )

    def _complete(self, request, reply: _Reply, render, start: float, path: str) -> None:
        """Answers with the model call's result, on the event loop."""
        call, self._call = self._call, None
        if self._closing or call.cancelled():
            return  # The client is gone.
        try:
            reply.body = render(call.result())
        except Exception as raised:  # Every failure answers as JSON.
            self._reply(request, reply, _serving_error(raised, request, path), start)
        else:
            self._reply(request, reply, None, start)

    def _reply(self, request: _Request, reply: _Reply, error, start: float) -> None:
        """Writes the JSON answer (or TF Serving's error) and records the request's metrics."""
        headers = [] if reply.version is None else [(VERSION_HEADER, str(reply.version))]
        if error is None:
            code, body = 200, reply.body
        else:
            code, body = error.http_status, rest_json.error_body(error.message)
        # Counted before the answer leaves: a client reading the metrics next sees it.
        if reply.model_name:
            self._server._api.core.metrics.record_request(
                reply.model_name,
                reply.version,
                reply.api or request.method,
                "REST",
                "OK" if error is None else error.code_name,
                (time.perf_counter() - start) * 1e6,
            )
        self._finish(
            request,
            _response(
                code,
                body.encode("utf-8"),
                "application/json",
                request.keep_alive,
                headers,
                request.method == "HEAD",
            ),
        )

    def _finish(self, request: _Request, data: bytes) -> None:
        """Writes an answer and goes on with the next buffered request."""
        self._busy = False
        self._write(data, request.keep_alive)
        if self._paused and not self._closing:
            self._paused = False
            self._transport.resume_reading()
        if request.keep_alive and self._buffer:
            self._next()

    def _write(self, data: bytes, keep_alive: bool = False) -> None:
        if self._closing:
            return
        self._transport.write(data)
        if not keep_alive:
            self._closing = True
            self._transport.close()  # After the buffered answer is sent.


class RestServer:
    """The REST API on an asyncio HTTP/1.1 server running on its own thread.

    Args:
        core: The server core.
        host: Interface to bind.
        port: Port; 0 picks a free one (see `port`).
        timeout_ms: `--rest_api_timeout_in_ms`.
        max_body_bytes: Largest request body accepted.

    Raises:
        OSError: When the port cannot be bound.
    """

    def __init__(
        self, core: ServingCore, host: str, port: int, timeout_ms: int, max_body_bytes: int
    ):
        self._api = RestApi(core, timeout_ms)
        self._max_body_bytes = max_body_bytes
        # Bound here, so a taken port fails at construction and `port` is known before start.
        self._socket = socket.create_server((host, port), backlog=1024)
        self.port = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._connections: set[_Connection] = set()
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        # Model calls completed on other threads, answered by the loop in one wake-up per batch.
        self._done: deque[tuple] = deque()
        self._wake_pending = False

    def _completed(self, item: tuple) -> None:
        """Queues a completed call's answer (on the thread that completed it) and wakes the loop
        unless a wake-up is pending already."""
        self._done.append(item)
        if not self._wake_pending:
            self._wake_pending = True
            # A RuntimeError: the server stopped, and the loop and the connection are gone.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._answer_completed)

    def _answer_completed(self) -> None:
        self._wake_pending = False  # Before draining: a call completing from now on wakes anew.
        while self._done:
            connection, *arguments = self._done.popleft()
            try:
                connection._complete(*arguments)
            except Exception:  # One broken answer must not hold back the others.
                _LOG.exception("Answering a completed REST request failed")
                connection.close()

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(lambda: _Connection(self), sock=self._socket)
            )
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="dlforge-rest", daemon=True)
        self._thread.start()
        started.wait()

    def stop(self) -> None:
        """Stops listening, closes every connection and ends the loop's thread."""
        if self._thread is None:
            self._socket.close()
            self._loop.close()
            return

        async def shut() -> None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop.close()


def _serving_error(raised: Exception, request: _Request, path: str) -> status.ServingError:
    if not isinstance(raised, status.ServingError):
        _LOG.error("REST request %s %s failed", request.method, path, exc_info=raised)
    return inference.error_from_exception(raised)
