"""Benchmark of `dlforge serve`: throughput and latency against a naive server, a no-op floor
and the raw model, side by side in one run.

Run with `.venv/bin/python benchmarks/serving.py [--model_dir DIR] [--seconds S]`. It exports an
untrained digits CNN (the real export: transform graph and both signatures; or takes
`--model_dir`, a pushed version folder) and a no-op model with the same `serving_dense`
signature, then measures, over loopback, with the servers in subprocesses and the load
generator (one thread per client, keep-alive connections) in this process:
- `dlforge serve` REST and gRPC, without and with batching, at 1, 8 and 32 clients, one
  example per request, serving the CNN and (the request-handling floor) the no-op model;
- a naive baseline: a minimal threaded HTTP endpoint that calls the model once per request;
- the raw in-process model call: one example (latency) and batches of 32 (the compute limit);
- examples per request 1, 8, 32 at 8 clients with batching (share of the compute limit).
It prints one table and the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

CLIENTS = (1, 8, 32)
EXAMPLES_PER_REQUEST = (1, 8, 32)
BATCHING = """max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
num_batch_threads { value: 2 }
max_enqueued_batches { value: 1000 }
"""
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _export_models(root: str, model_dir: str | None) -> tuple[str, str]:
    """A digits CNN export (unless given) and a no-op model with the same dense signature."""
    import tensorflow as tf

    if model_dir is None:
        sys.path.insert(0, REPOSITORY)
        import tensorflow_transform as tft

        from tests import fixtures, serving_models

        pixels, labels = fixtures.sample_arrays(200)
        transform_dir = fixtures.write_transform_output(os.path.join(root, "tft"), pixels, labels)
        model_dir = serving_models.digits_model(
            root, tft.TFTransformOutput(transform_dir), family="cnn"
        )

    class NoOp(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="inputs")])
        def dense(self, inputs):
            rows = tf.shape(inputs)[0]
            return {
                "probabilities": tf.zeros([rows, 10]),
                "class_ids": tf.zeros([rows], tf.int64),
            }

    noop = NoOp()
    noop_dir = os.path.join(root, "noop")
    tf.saved_model.save(noop, noop_dir, signatures={"serving_dense": noop.dense})
    return model_dir, noop_dir


def _publish(model_dir: str, base: str) -> None:
    # A copy, not a symlink: the server refuses version folders that lead out of the base path.
    shutil.copytree(model_dir, os.path.join(base, "1"))


def _wait_ready(port: int, path: str, seconds: float = 120.0) -> None:
    import http.client

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} not ready after {seconds} s")


def _start_server(root: str, batching: bool) -> tuple[subprocess.Popen, int, int]:
    config = os.path.join(root, "models.config")
    with open(config, "w") as handle:
        handle.write(
            "model_config_list {\n"
            f'  config {{ name: "digits" base_path: "{root}/serving/digits" }}\n'
            f'  config {{ name: "noop" base_path: "{root}/serving/noop" }}\n'
            "}\n"
        )
    grpc_port, rest_port = _free_port(), _free_port()
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "serve",
        "--model_config_file",
        config,
        "--port",
        str(grpc_port),
        "--rest_api_port",
        str(rest_port),
        "--file_system_poll_wait_seconds",
        "0",
    ]
    if batching:
        parameters = os.path.join(root, "batching.config")
        with open(parameters, "w") as handle:
            handle.write(BATCHING)
        command += ["--enable_batching", "--batching_parameters_file", parameters]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_ready(rest_port, "/v1/models/noop")
    return process, grpc_port, rest_port


NAIVE_SERVER = """
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import numpy as np, tensorflow as tf
function = tf.saved_model.load(sys.argv[2]).signatures["serving_dense"]
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # As dlforge serve: no 40 ms delayed-ACK stalls.
    def log_message(self, *args):
        pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        outputs = function(inputs=tf.constant(np.array(body["instances"], np.float32)))
        data = json.dumps({"predictions": outputs["probabilities"].numpy().tolist()}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _start_naive(model_dir: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", NAIVE_SERVER, str(port), model_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_ready(port, "/")
    return process, port


def _load(send_factory, clients: int, seconds: float) -> dict:
    """Runs `clients` threads sending back to back; returns req/s and latency percentiles."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = []
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        try:
            send = send_factory()
            send()  # Connect and warm up before the clock starts.
        except Exception as error:  # Reported after the run.
            failures.append(repr(error))
            start_gate.abort()
            return
        try:
            start_gate.wait()
        except threading.BrokenBarrierError:
            return
        own = latencies[index]
        while True:
            began = time.perf_counter()
            if began >= stop_at[0]:
                return
            try:
                send()
            except Exception as error:  # Counted and reported.
                failures.append(repr(error))
                return
            own.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    try:
        start_gate.wait()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise SystemExit(f"load failed: {failures[:3]}") from None
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    merged = sorted(value for own in latencies for value in own)
    if failures or not merged:
        raise SystemExit(f"load failed: {failures[:3]}")
    return {
        "rps": len(merged) / elapsed,
        "p50": merged[len(merged) // 2] * 1e3,
        "p99": merged[min(len(merged) - 1, int(len(merged) * 0.99))] * 1e3,
    }


def _rest_sender(port: int, model: str, rows: np.ndarray, naive: bool = False):
    import http.client

    if naive:
        path, body = "/", json.dumps({"instances": rows.tolist()})
    else:
        path = f"/v1/models/{model}:predict"
        body = json.dumps({"signature_name": "serving_dense", "instances": rows.tolist()})

    def factory():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def send():
            connection.request("POST", path, body=body)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        return send

    return factory


def _grpc_sender(port: int, model: str, rows: np.ndarray):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_dense"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(rows))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def factory():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return lambda: stub.Predict(request, timeout=60)

    return factory


def _raw(model_dir: str, rows: np.ndarray, seconds: float) -> tuple[float, float]:
    """(p50 ms of a one-example call, examples/s of back-to-back 32-example calls)."""
    import tensorflow as tf

    function = tf.saved_model.load(model_dir).signatures["serving_dense"]
    one, batch = tf.constant(rows[:1]), tf.constant(np.repeat(rows[:1], 32, axis=0))
    for _ in range(20):
        function(inputs=one)
        function(inputs=batch)
    single = []
    for _ in range(300):
        began = time.perf_counter()
        function(inputs=one)
        single.append(time.perf_counter() - began)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        function(inputs=batch)
        count += 32
    return statistics.median(single) * 1e3, count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", help="a SavedModel (pushed version folder) to serve")
    parser.add_argument("--seconds", type=float, default=2.0, help="load per measurement")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="dlforge-bench-serving-")
    print(f"[setup] exporting models in {root}", file=sys.stderr)
    model_dir, noop_dir = _export_models(root, args.model_dir)
    _publish(model_dir, os.path.join(root, "serving", "digits"))
    _publish(noop_dir, os.path.join(root, "serving", "noop"))
    rows = np.random.default_rng(0).integers(0, 17, size=(32, 64)).astype(np.float32)
    one = rows[:1]
    results = {}

    raw_ms, compute_limit = _raw(model_dir, rows, args.seconds)
    naive, naive_port = _start_naive(model_dir)
    try:
        for clients in CLIENTS:
            print(f"[naive] {clients} clients", file=sys.stderr)
            results[("naive", "REST", "-", clients, "cnn")] = _load(
                _rest_sender(naive_port, "", one, naive=True), clients, args.seconds
            )
    finally:
        naive.terminate()
        naive.wait()
    for batching in (False, True):
        server, grpc_port, rest_port = _start_server(root, batching)
        try:
            for protocol in ("REST", "gRPC"):
                for model in ("digits", "noop"):
                    for clients in CLIENTS:
                        print(
                            f"[serve] {protocol} batching={batching} {model} {clients}",
                            file=sys.stderr,
                        )
                        sender = (
                            _rest_sender(rest_port, model, one)
                            if protocol == "REST"
                            else _grpc_sender(grpc_port, model, one)
                        )
                        results[
                            (
                                "dlforge",
                                protocol,
                                "on" if batching else "off",
                                clients,
                                "cnn" if model == "digits" else "no-op",
                            )
                        ] = _load(sender, clients, args.seconds)
                if batching:
                    for examples in EXAMPLES_PER_REQUEST[1:]:
                        sender = (
                            _rest_sender(rest_port, "digits", rows[:examples])
                            if protocol == "REST"
                            else _grpc_sender(grpc_port, "digits", rows[:examples])
                        )
                        results[(f"{examples}/request", protocol, "on", 8, "cnn")] = _load(
                            sender, 8, args.seconds
                        )
        finally:
            server.terminate()
            server.wait()
    _print(results, raw_ms, compute_limit)


def _print(results: dict, raw_ms: float, compute_limit: float) -> None:
    naive = {key[3]: value for key, value in results.items() if key[0] == "naive"}
    header = (
        f"{'server':<12} {'api':<5} {'batch':<5} {'clients':>7} {'model':<6} {'req/s':>8} "
        f"{'ex/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x naive':>7} {'% floor':>7} {'% limit':>7}"
    )
    print(header)
    for key, value in results.items():
        server, api, batching, clients, model = key
        examples = int(server.split("/")[0]) if "/request" in server else 1
        floor = results.get(("dlforge", api, batching, clients, "no-op"))
        missing = float("nan")
        cnn = model == "cnn"
        versus_naive = value["rps"] / naive[clients]["rps"] if cnn else missing
        share_floor = (
            100 * value["rps"] / floor["rps"] if floor and cnn and server == "dlforge" else missing
        )
        share_limit = 100 * value["rps"] * examples / compute_limit if cnn else missing
        print(
            f"{server:<12} {api:<5} {batching:<5} {clients:>7} {model:<6} {value['rps']:>8.0f} "
            f"{value['rps'] * examples:>8.0f} {value['p50']:>7.2f} {value['p99']:>7.2f} "
            f"{versus_naive:>7.2f} {share_floor:>7.0f} {share_limit:>7.1f}"
        )
    print(
        f"raw in-process call: one example p50 {raw_ms:.2f} ms; batches of 32: "
        f"{compute_limit:.0f} examples/s (the compute limit)"
    )
    print("targets:")
    for api in ("REST", "gRPC"):
        batched = results[("dlforge", api, "on", 32, "cnn")]["rps"]
        floor = results[("dlforge", api, "on", 32, "no-op")]["rps"]
        ratio = batched / naive[32]["rps"]
        print(
            f"  {api} batching, 32 clients: {ratio:.2f}x naive (>= 3: "
            f"{'yes' if ratio >= 3 else 'no'}), {100 * batched / floor:.0f}% of the no-op floor "
            f"(>= 60%: {'yes' if batched >= 0.6 * floor else 'no'})"
        )
        p99 = results[("dlforge", api, "off", 1, "cnn")]["p99"]
        bound = 2 * raw_ms + 2
        print(
            f"  {api} p99 at 1 client: {p99:.2f} ms (<= 2 x raw + 2 ms = {bound:.2f}: "
            f"{'yes' if p99 <= bound else 'no'})"
        )


if __name__ == "__main__":
    main()
