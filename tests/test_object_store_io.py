"""The custom components' executors on an object store.

A compiled pipeline keeps its artifacts (and the push destinations) on `gs://` or `s3://`.
Each test runs on two stores (tests/object_stores.py): TensorFlow's in-memory `ram://`, and
`s3://` through tensorflow-io against a local S3 server. Both are reached only through
tf.io.gfile, so any `open`/`os`/`shutil` call on an artifact path fails here as it would there.
(The Compressor's and the Pusher's runs on both are in tests/test_compressor.py and
tests/test_pusher.py, beside their model fixtures.)
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import storage
from components.anomaly_gate.executor import DataValidationError
from components.compressor.executor import METADATA_FILE, MODEL_FILE
from components.drift_gate import executor as drift_gate
from components.gx_validator import executor as gx_validator
from components.pusher import warmup
from components.tflite_pusher import executor as tflite_pusher
from pipelines import validate
from tests import fixtures, object_stores


@pytest.fixture(params=object_stores.KINDS)
def store(request) -> str:
    uri = object_stores.folder(
        request.param, f"object_store_io/{request.node.originalname}", request.session
    )
    yield uri
    object_stores.remove_tree(uri)


def _read(uri: str) -> bytes:
    with tf.io.gfile.GFile(uri, "rb") as handle:
        return handle.read()


def _no_temporary_files(uri: str) -> bool:
    return not [
        name
        for _, _, names in tf.io.gfile.walk(uri)
        for name in names
        if name.endswith(".tmp") or name.startswith(".staging")
    ]


def test_storage_writes_replaces_and_copies_on_an_object_store(store):
    storage.write_json(f"{store}/a/report.json", {"b": 1, "a": [2]})
    storage.write_text(f"{store}/a/report.json", '{"replaced": true}')
    storage.copy_file(f"{store}/a/report.json", f"{store}/b/c/copy.json")

    assert storage.read_json(f"{store}/b/c/copy.json") == {"replaced": True}
    assert tf.io.gfile.listdir(f"{store}/a") == ["report.json"]
    assert _no_temporary_files(store)
    with pytest.raises(FileNotFoundError, match=f"{store}/missing.json"):
        storage.read_json(f"{store}/missing.json")


def test_storage_uploads_a_local_tree_and_measures_it(store, tmp_path):
    (tmp_path / "docs" / "static").mkdir(parents=True)
    (tmp_path / "docs" / "index.html").write_text("<html></html>")
    (tmp_path / "docs" / "static" / "style.css").write_bytes(b"x" * 10)

    storage.upload_tree(str(tmp_path / "docs"), f"{store}/out")

    assert _read(f"{store}/out/index.html") == b"<html></html>"
    assert storage.tree_bytes(f"{store}/out") == len("<html></html>") + 10


def _write_examples(uri: str, frame: pd.DataFrame) -> None:
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(uri, options) as writer:
        for row in fixtures.raw_examples(
            frame[list(validate.COLUMNS[:-1])].to_numpy(), frame[validate.COLUMNS[-1]].to_numpy()
        ):
            writer.write(row)


def _suite(columns) -> dict:
    suite = validate.load_suite()
    kept = [
        item
        for item in suite["expectations"]
        if item["kwargs"].get("column", columns[0]) in columns
    ]
    return {**suite, "expectations": kept}


@pytest.mark.slow
def test_gx_validator_reads_examples_and_writes_results_and_data_docs_on_a_store(store):
    pixels, labels = fixtures.sample_arrays(60)
    frame = pd.DataFrame(np.column_stack([pixels, labels]), columns=validate.COLUMNS)
    broken = frame.copy()
    broken.loc[0, "pixel_40"] = 17
    split_dirs = {}
    for split, rows in (("train", frame), ("eval", broken)):
        split_dirs[split] = f"{store}/examples/Split-{split}"
        tf.io.gfile.makedirs(split_dirs[split])
        _write_examples(f"{split_dirs[split]}/data.gz", rows)

    with pytest.raises(DataValidationError, match=f"Data Docs: {store}/report/data_docs"):
        gx_validator.run_validator(
            split_dirs, _suite(["pixel_40", "label"]), f"{store}/report", f"{store}/summary"
        )

    report = storage.read_json(f"{store}/report/{gx_validator.REPORT_FILE}")
    assert report["passed"] is False and report["rows"] == {"train": 60, "eval": 60}
    assert set(storage.read_json(f"{store}/report/{gx_validator.RESULTS_FILE}")) == {
        "train",
        "eval",
    }
    assert b"<html" in _read(f"{store}/report/{gx_validator.DOCS_DIR}/index.html")
    assert "| eval | pixel_40 | values out of range |" in _read(f"{store}/summary").decode()
    assert _no_temporary_files(store)


def _statistics(rows, schema):
    import tensorflow_data_validation as tfdv

    frame = pd.DataFrame(rows, columns=validate.COLUMNS)
    return tfdv.generate_statistics_from_dataframe(
        frame, stats_options=tfdv.StatsOptions(schema=schema)
    )


def test_drift_gate_reads_statistics_and_schema_and_writes_the_baseline_on_a_store(store):
    from models.data import digits

    schema = drift_gate.load_schema(validate.SCHEMA_FILE)
    pixels, labels = digits.load_digits_arrays()
    splits = validate.split_rows(np.column_stack([pixels, labels]), seed=0)
    statistics_dirs = {}
    for split, part in splits.items():
        statistics_dirs[split] = f"{store}/statistics/Split-{split}"
        storage.write_bytes(
            f"{statistics_dirs[split]}/{drift_gate.STATS_FILE}",
            _statistics(part, schema).SerializeToString(),
        )
    with open(validate.SCHEMA_FILE, "rb") as handle:
        storage.write_bytes(f"{store}/schema/schema.pbtxt", handle.read())

    measurements = drift_gate.run_gate(
        statistics_dirs,
        f"{store}/schema/schema.pbtxt",
        None,
        f"{store}/report",
        f"{store}/accepted",
        f"{store}/summary",
    )

    report = storage.read_json(f"{store}/report/{drift_gate.REPORT_FILE}")
    assert report["passed"] is True
    assert len(report["measurements"]) == len(measurements) > 0
    assert _read(f"{store}/accepted/Split-train/{drift_gate.STATS_FILE}") == _read(
        f"{statistics_dirs['train']}/{drift_gate.STATS_FILE}"
    )
    assert _read(f"{store}/summary").decode().startswith("## Drift and skew: passed")
    assert _no_temporary_files(store)


def _device_model(uri: str) -> str:
    storage.write_bytes(f"{uri}/{MODEL_FILE}", b"TFL3 flatbuffer")
    storage.write_json(
        f"{uri}/{METADATA_FILE}",
        {
            "source_model_uri": "gs://root/Trainer/model/7",
            "recipe": "int8",
            "size_bytes": 2048,
            "accuracy": 0.95,
        },
    )
    return uri


def test_tflite_push_from_and_to_a_store_publishes_a_complete_version(store):
    model_dir = _device_model(f"{store}/Compressor/device_model/9")
    base = f"{store}/tflite/digits_cnn"

    push = tflite_pusher.push_tflite(model_dir, base)
    again = tflite_pusher.push_tflite(model_dir, base)

    assert push.copied and not again.copied and again.version == push.version
    assert push.path == f"{base}/{push.version}"
    assert tf.io.gfile.listdir(base) == [push.version]
    assert _read(f"{push.path}/{MODEL_FILE}") == b"TFL3 flatbuffer"
    metadata = storage.read_json(f"{push.path}/{METADATA_FILE}")
    assert metadata["version"] == push.version and metadata["recipe"] == "int8"
    assert json.loads(_read(f"{push.path}/{tflite_pusher.PUSH_RECORD}"))["source_uri"] == (
        "gs://root/Trainer/model/7#int8"
    )


def test_tflite_push_from_a_store_without_a_model_names_what_is_missing(store):
    storage.write_json(f"{store}/device/{METADATA_FILE}", {})

    with pytest.raises(ValueError, match=r"missing \['model.tflite'\]"):
        tflite_pusher.push_tflite(f"{store}/device", f"{store}/tflite")


class _Dense(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="inputs")])
    def serve(self, inputs):
        return {"scores": tf.reduce_sum(inputs, axis=1)}


def test_warmup_file_is_written_into_a_model_on_a_store(store, tmp_path):
    local = str(tmp_path / "model")
    module = _Dense()
    tf.saved_model.save(module, local, signatures={"serving_dense": module.serve})
    for directory, _, names in os.walk(local):
        for name in names:
            relative = os.path.relpath(os.path.join(directory, name), local)
            storage.copy_file(os.path.join(directory, name), f"{store}/model/{relative}")

    written = warmup.write_warmup_file(f"{store}/model")

    assert written == len(warmup.WARMUP_BATCH_SIZES)
    records = list(tf.data.TFRecordDataset(f"{store}/model/{warmup.WARMUP_FILE}"))
    assert len(records) == written
    assert warmup.write_warmup_file(f"{store}/model") == 0


def test_the_tuners_trial_logs_are_kept_in_its_results_artifact():
    from components.tuner.executor import LOGS_DIR, keep_logs
    from models.entrypoints import TUNER_LOGS

    working_dir, results = "ram://tuner/work", "ram://tuner/results"
    for trial, split in (("trial_0", "train"), ("trial_0", "validation"), ("trial_1", "train")):
        storage.write_bytes(f"{working_dir}/{TUNER_LOGS}/{trial}/{split}/events.out", b"event")

    assert keep_logs(working_dir, results) == 3
    assert storage.read_bytes(f"{results}/{LOGS_DIR}/trial_1/train/events.out") == b"event"
    assert keep_logs("ram://tuner/none", "ram://tuner/other") == 0
