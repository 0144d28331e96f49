"""Object stores that the object-store tests run on: `ram://` and a local S3 server (`s3://`).

A compiled pipeline keeps its artifacts (and its push destinations) on `gs://` or `s3://`, and
the custom components reach them through tf.io.gfile only. Two stand-ins:

- `ram`: TensorFlow's in-memory file system, in the test process.
- `s3`: tensorflow-io's S3 file system (TensorFlow 2.16 has none of its own; importing
  `tensorflow_io` registers it) against moto's S3 server on 127.0.0.1 (a child process),
  configured the way a cluster configures it: `S3_ENDPOINT`, `AWS_REGION` and the access keys
  in the environment. One server and one bucket serve the whole test process; each test works
  under its own prefix.

tensorflow-io 0.37.1 aborts a process that used `s3://` when the process exits ("pure virtual
method called", exit code 134: tensorflow/io issue 2039; fixed upstream in 2025, in no release):
the AWS SDK's metadata client is destroyed after its logger among the C++ static destructors.
So once the S3 server is started, the test process ends through `exit_after_python_cleanup`,
which runs Python's own exit handlers and then ends with pytest's exit status, skipping only
those C++ destructors.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time

KINDS = ("ram", "s3")
BUCKET = "dlforge-tests"
REGION = "us-east-1"

_s3_endpoint: list[str] = []


def exit_after_python_cleanup(session) -> None:
    """At exit: runs the other exit handlers, then ends the process with pytest's exit status
    without the C++ static destructors (see the module docstring)."""
    atexit.unregister(exit_after_python_cleanup)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(getattr(session, "exitstatus", 1)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_s3(session) -> str:
    """Starts the S3 server once per process, points tensorflow-io at it, creates the bucket.

    The server is a child process, as a store is on a cluster: TensorFlow holds the GIL while
    some writes upload (`TFRecordWriter.close`), which would starve a server thread in this
    process.
    """
    if not _s3_endpoint:
        import boto3

        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(server.terminate)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Expected moto's S3 server to listen on 127.0.0.1:{port} within 60 s, "
                        f"it did not (exit code {server.poll()})."
                    ) from None
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        # tensorflow-io reads these when it first opens s3:// in the process.
        os.environ.update(
            S3_ENDPOINT=endpoint,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=BUCKET)
        import tensorflow_io  # noqa: F401 - registers the s3:// file system.

        atexit.register(exit_after_python_cleanup, session)
        _s3_endpoint.append(endpoint)
    return _s3_endpoint[0]


def folder(kind: str, name: str, session) -> str:
    """A fresh folder URI on the object store `kind` (one of KINDS) for one test.

    Args:
        kind: "ram" or "s3".
        name: The test's folder name (no glob characters: executors glob under it).
        session: pytest's session (its exit status ends the process once S3 was used).

    Raises:
        ValueError: If `kind` is not one of KINDS.
    """
    if kind == "ram":
        return f"ram://{name}"
    if kind == "s3":
        _start_s3(session)
        return f"s3://{BUCKET}/{name}"
    raise ValueError(f"Expected an object store kind in {KINDS}, received {kind!r}.")


def remove_tree(uri: str) -> None:
    """Deletes every file under `uri` (a test's folder)."""
    import tensorflow as tf

    for directory, _, names in tf.io.gfile.walk(uri):
        for name in names:
            # ram:// lists `a.b/x` under `a/` too, as a file `.b`, which does not exist.
            if tf.io.gfile.exists(f"{directory}/{name}"):
                tf.io.gfile.remove(f"{directory}/{name}")
