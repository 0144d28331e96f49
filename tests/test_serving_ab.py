"""A/B traffic between version labels: the split, the version in responses, per-version metrics."""

import collections
import re

import numpy as np
import pytest

from serving.client import PredictionClient
from serving.config import (
    ALL,
    ConfigError,
    ModelConfig,
    ServerOptions,
    VersionPolicy,
    parse_traffic_split,
)
from serving.server import ModelServer
from tests import serving_models

SPLIT = "[toy]\nstable = 90\ncanary = 10\n"


def toy_config(base):
    return ModelConfig(
        "toy", base, policy=VersionPolicy(kind=ALL), labels={"stable": 7, "canary": 9}
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_ab")
    model = serving_models.toy_model(str(root))
    base = str(root / "base")
    for version in (7, 9):
        serving_models.publish(model, base, version)
    models = parse_traffic_split(SPLIT, (toy_config(base),))
    options = ServerOptions(
        models=models, grpc_port=0, rest_api_port=0, poll_wait_seconds=0, traffic_seed=0
    )
    with ModelServer(options) as running:
        yield running


def test_the_split_is_read_from_toml():
    (model,) = parse_traffic_split(SPLIT, (toy_config("/m"),))

    assert model.traffic == (("stable", 90.0), ("canary", 10.0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\na = 1", "expected tables for served models ['toy'], received ['other']"),
        ("[toy]\nbeta = 1", "expected a version number or one of the labels"),
        ("[toy]\nstable = 0", "expected a positive weight, received 0"),
        ("[toy]\nstable = ", "expected TOML"),
    ],
)
def test_split_errors(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_traffic_split(text, (toy_config("/m"),), "split.toml")


def test_requests_without_a_version_follow_the_split(server):
    draws = collections.Counter(
        server.core.servable("toy", None, None).version for _ in range(4000)
    )

    assert abs(draws[9] / 4000 - 0.10) < 0.02
    assert draws[7] + draws[9] == 4000


def test_named_versions_and_labels_bypass_the_split(server):
    assert {server.core.servable("toy", 9, None).version for _ in range(50)} == {9}
    assert {server.core.servable("toy", None, "stable").version for _ in range(50)} == {7}


def test_responses_say_which_version_served_and_metrics_count_per_version(server):
    served = collections.Counter()
    with (
        PredictionClient(f"127.0.0.1:{server.rest_port}") as rest,
        PredictionClient(f"127.0.0.1:{server.grpc_port}", "grpc") as grpc_client,
    ):
        for index in range(200):
            client = rest if index % 2 else grpc_client
            served[client.predict("toy", np.array([1.0], np.float32)).version] += 1

    metrics = server.core.metrics.render()
    counted = {
        version: sum(
            int(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(":tensorflow:serving:request_count{")
            and f'version="{version}",API="' in line
            and 'status="OK"' in line
            and ('API="predict"' in line or 'API="Predict"' in line)
        )
        for version in (7, 9)
    }
    assert set(served) == {7, 9}
    assert served[7] > served[9]
    assert counted == {7: served[7], 9: served[9]}


def test_an_unavailable_target_falls_back_to_the_latest_version(tmp_path):
    base = str(tmp_path / "base")
    serving_models.publish(serving_models.toy_model(str(tmp_path)), base, 7)
    models = parse_traffic_split("[toy]\ncanary = 1\n", (toy_config(base),))
    options = ServerOptions(models=models, grpc_port=0, poll_wait_seconds=0)
    with ModelServer(options) as running:
        assert {running.core.servable("toy", None, None).version for _ in range(20)} == {7}
