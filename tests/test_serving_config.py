"""`dlforge serve` options: TF Serving's config files and flags, checked before anything loads."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from serving import commands
from serving.config import (
    ALL,
    LATEST,
    SPECIFIC,
    BatchingParameters,
    ConfigError,
    VersionPolicy,
    parse_batching_parameters,
    parse_model_config,
)

MODEL_CONFIG = """
model_config_list {
  config {
    name: "digits"
    base_path: "/models/digits"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 5 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 5 }
  }
  config {
    name: "other"
    base_path: "relative/other"
    model_version_policy { latest { num_versions: 2 } }
  }
  config { name: "every" base_path: "/models/every" model_version_policy { all {} } }
}
"""


def test_model_config_file_with_policies_and_labels():
    digits, other, every = parse_model_config(MODEL_CONFIG, "models.config")

    assert (digits.name, digits.base_path) == ("digits", "/models/digits")
    assert digits.policy == VersionPolicy(kind=SPECIFIC, versions=(3, 5))
    assert digits.labels == {"stable": 3, "canary": 5}
    assert other.base_path == os.path.abspath("relative/other")
    assert other.policy == VersionPolicy(kind=LATEST, num_versions=2)
    assert every.policy.kind == ALL


@pytest.mark.parametrize(
    ("policy", "on_disk", "served"),
    [
        (VersionPolicy(), [1, 3, 2], {3}),
        (VersionPolicy(kind=LATEST, num_versions=2), [1, 3, 2], {2, 3}),
        (VersionPolicy(kind=ALL), [1, 3], {1, 3}),
        (VersionPolicy(kind=SPECIFIC, versions=(1, 4)), [1, 3], {1}),
        (VersionPolicy(), [], set()),
    ],
)
def test_version_policies_choose_among_the_versions_on_disk(policy, on_disk, served):
    assert policy.choose(on_disk) == served


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: 'a' } ", "does not parse"),
        ("", "expected a model_config_list"),
        ("model_config_list { config { name: 'a' } }", "expected a base_path"),
        ("model_config_list { config { name: 'a/b' base_path: '/m' } }", "without '/' or ':'"),
        (
            "model_config_list { config { name: 'a' base_path: '/m' model_platform: 'onnx' } }",
            "expected model_platform 'tensorflow'",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/m' "
            "model_version_policy { specific { } } } }",
            "expected versions",
        ),
    ],
)
def test_model_config_errors_name_the_file_and_the_problem(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        parse_model_config(text, "models.config")

    assert str(raised.value).startswith("models.config")


def test_batching_parameters_in_both_text_forms_with_tf_serving_defaults():
    parsed = parse_batching_parameters(
        "max_batch_size { value: 32 }\n# a comment\nbatch_timeout_micros: 500\n"
    )

    assert parsed == BatchingParameters(
        max_batch_size=32,
        batch_timeout_micros=500,
        num_batch_threads=os.cpu_count(),
        max_enqueued_batches=10,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_sise { value: 3 }", "received 'max_batch_sise'"),
        ("allowed_batch_sizes: 8", "'allowed_batch_sizes' is not supported"),
        ("max_batch_size { value: big }", "expected an integer, received 'big'"),
        ("max_batch_size { value: 0 }", "Expected max_batch_size >= 1, received 0"),
        ("max_batch_size = 3", "expected entries like"),
    ],
)
def test_batching_parameter_errors(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_batching_parameters(text, "batching.config")


def flags(**overrides):
    values = dict(
        model_name="default",
        model_base_path=None,
        model_config_file=None,
        host="127.0.0.1",
        port=8500,
        rest_api_port=0,
        poll_wait_seconds=1.0,
        enable_batching=False,
        batching_parameters_file=None,
        rest_api_timeout_in_ms=30000,
        max_body_bytes=1024,
    )
    values.update(overrides)
    return values


def test_flags_of_tensorflow_model_server_make_the_options(tmp_path):
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 16 }")

    options = commands.server_options(
        **flags(
            model_name="digits",
            model_base_path="models/digits",
            rest_api_port=8501,
            enable_batching=True,
            batching_parameters_file=str(batching),
            rest_api_num_threads=3,
        )
    )

    assert [(model.name, model.base_path) for model in options.models] == [
        ("digits", os.path.abspath("models/digits"))
    ]
    assert (options.host, options.grpc_port, options.rest_api_port) == ("127.0.0.1", 8500, 8501)
    assert options.batching.max_batch_size == 16
    assert options.rest_api_num_threads == 3
    assert commands.server_options(**flags(model_base_path="m")).rest_api_port is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "Expected --model_base_path or --model_config_file, received neither."),
        ({"model_base_path": "m", "model_config_file": "c"}, "received both"),
        ({"model_base_path": "m", "batching_parameters_file": "b"}, "needs --enable_batching"),
        ({"model_config_file": "/no/such/file"}, "--model_config_file: cannot read /no/such/file"),
        (
            {"model_base_path": "m", "rest_api_num_threads": -1},
            "Expected --rest_api_num_threads >= 0 (0: 4 per CPU), received -1.",
        ),
    ],
)
def test_flag_errors(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        commands.server_options(**flags(**overrides))


def test_dlforge_serve_argument_errors_exit_2_with_one_line():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            "--model_base_path",
            "m",
            "--model_config_file",
            "c",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dlforge: error: Expected --model_config_file or --model_base_path, received both."
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_dlforge_serve_runs_until_sigterm(tmp_path):
    from serving.client import PredictionClient
    from tests import serving_models

    base = str(tmp_path / "toy")
    serving_models.publish(serving_models.toy_model(str(tmp_path)), base, 3)
    rest_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            "--model_name",
            "toy",
            "--model_base_path",
            base,
            "--port",
            "0",
            "--rest_api_port",
            str(rest_port),
            "--file_system_poll_wait_seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in process.stdout]).start()
    try:
        printed = [lines.get(timeout=120) for _ in range(3)]
        with PredictionClient(f"127.0.0.1:{rest_port}") as client:
            prediction = client.predict("toy", [4.0])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert printed[0] == f"dlforge: serving toy from {base}, versions [3]"
    assert printed[1].startswith("dlforge: gRPC at 127.0.0.1:")
    assert printed[2] == f"dlforge: REST at http://127.0.0.1:{rest_port}"
    assert prediction.outputs["y"].tolist() == [4.0]
    assert prediction.version == 3


def test_dlforge_serve_on_a_taken_port_exits_2_with_one_line(tmp_path):
    from tests import serving_models

    base = str(tmp_path / "toy")
    serving_models.publish(serving_models.toy_model(str(tmp_path)), base, 3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "serve",
                "--model_base_path",
                base,
                "--port",
                "0",
                "--rest_api_port",
                str(port),
                "--file_system_poll_wait_seconds",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("dlforge: error: cannot start the server: [Errno 98] Address already in use")
    )
