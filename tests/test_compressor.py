"""The Compressor's validate -> rewrite -> validate, and the TFLite pusher."""

import json
import os

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from components.compressor import executor
from components.tflite_pusher.executor import push_tflite
from models import registry, training
from models.tasks import DIGITS
from tests import fixtures


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory, transform_output, digits_sample):
    pixels, labels = digits_sample
    model = registry.get_family("mlp").build_model(keras_tuner.HyperParameters(), DIGITS)
    model.fit(
        {DIGITS.feature_key: fixtures.transform(transform_output, pixels)},
        labels,
        epochs=30,
        verbose=0,
    )
    directory = str(tmp_path_factory.mktemp("model") / "saved_model")
    training.save_model(model, transform_output, DIGITS, directory)
    return directory


def _compress(saved_model_dir, digits_sample, output_dir, **overrides):
    pixels, labels = digits_sample
    arguments = {
        "representative": pixels[:50].astype(np.float32),
        "test_features": pixels.astype(np.float32),
        "test_labels": labels,
        "recipes": ["float", "dynamic_range", "float16"],
        "accuracy_budget": 0.01,
        "output_dir": str(output_dir),
        "metadata": {"labels": [str(label) for label in range(10)], "source_model_uri": "m/1"},
    }
    return executor.compress(saved_model_dir, **{**arguments, **overrides})


def test_every_candidate_is_measured_and_the_smallest_within_budget_is_written(
    saved_model_dir, digits_sample, tmp_path
):
    report = _compress(saved_model_dir, digits_sample, tmp_path)
    candidates = {item["recipe"]: item for item in report["candidates"]}
    assert set(candidates) == {"float", "dynamic_range", "float16"}
    assert candidates["float"]["accuracy"] == pytest.approx(report["reference"]["accuracy"])
    assert candidates["dynamic_range"]["size_bytes"] < 0.6 * candidates["float"]["size_bytes"]
    assert candidates["float16"]["size_bytes"] < candidates["float"]["size_bytes"]
    within = [
        item
        for item in candidates.values()
        if item["accuracy"] >= report["reference"]["accuracy"] - 0.01
    ]
    assert report["chosen"] == min(within, key=lambda item: item["size_bytes"])["recipe"]

    model = (tmp_path / executor.MODEL_FILE).read_bytes()
    assert len(model) == candidates[report["chosen"]]["size_bytes"]
    metadata = json.loads((tmp_path / executor.METADATA_FILE).read_text())
    assert metadata["input"] == {
        "signature": "serving_dense",
        "name": "inputs",
        "shape": [-1, 64],
        "dtype": "float32",
        "quantization": {"scale": 0.0, "zero_point": 0},
    }
    assert metadata["recipe"] == report["chosen"]
    pixels, labels = digits_sample
    accuracy, _ = executor.evaluate_tflite(model, pixels.astype(np.float32), labels)
    assert accuracy == pytest.approx(metadata["accuracy"], abs=1e-4)
    on_disk = json.loads((tmp_path / executor.REPORT_FILE).read_text())
    assert on_disk == report


def test_device_model_predicts_like_the_saved_model(saved_model_dir, digits_sample):
    pixels, _ = digits_sample
    rows = pixels[:16].astype(np.float32)
    model = executor.convert(saved_model_dir, "float", rows)
    runner = tf.lite.Interpreter(model_content=model).get_signature_runner("serving_dense")
    expected = tf.saved_model.load(saved_model_dir).signatures["serving_dense"](
        inputs=tf.constant(rows)
    )
    np.testing.assert_allclose(
        runner(inputs=rows)["probabilities"], expected["probabilities"].numpy(), atol=1e-5
    )


def test_the_gate_fails_when_no_candidate_is_within_budget(
    saved_model_dir, digits_sample, tmp_path
):
    report = _compress(
        saved_model_dir, digits_sample, tmp_path, recipes=["dynamic_range"], accuracy_budget=-0.5
    )
    assert report["chosen"] is None
    assert sorted(os.listdir(tmp_path)) == [executor.REPORT_FILE]


def test_choose_prefers_the_smallest_candidate_within_budget():
    def candidate(recipe, size, accuracy):
        return executor.Candidate(recipe, size, size, accuracy, 0.1)

    candidates = [candidate("a", 100, 0.99), candidate("b", 40, 0.975), candidate("c", 60, 0.985)]
    assert executor.choose(candidates, 0.99, 0.01).recipe == "c"
    assert executor.choose(candidates, 0.99, 0.02).recipe == "b"
    assert executor.choose(candidates, 0.995, 0.001) is None


def test_unknown_recipe_lists_the_valid_ones(saved_model_dir):
    with pytest.raises(ValueError, match=r"Expected a recipe in \['float'.*received 'int4'"):
        executor.convert(saved_model_dir, "int4", np.zeros((1, 64), np.float32))


def test_tflite_push_is_versioned_atomic_and_not_repeated(tmp_path):
    model_dir = tmp_path / "device_model"
    model_dir.mkdir()
    (model_dir / executor.MODEL_FILE).write_bytes(b"TFL3-model-bytes")
    metadata = {"recipe": "dynamic_range", "source_model_uri": "trainer/model/9"}
    (model_dir / executor.METADATA_FILE).write_text(json.dumps(metadata))
    base = tmp_path / "tflite" / "digits_cnn"

    first = push_tflite(str(model_dir), str(base))
    assert first.copied
    assert sorted(os.listdir(first.path)) == ["metadata.json", "model.tflite", "push.json"]
    assert (base / first.version / "model.tflite").read_bytes() == b"TFL3-model-bytes"
    pushed_metadata = json.loads((base / first.version / "metadata.json").read_text())
    assert pushed_metadata == {**metadata, "version": first.version}

    again = push_tflite(str(model_dir), str(base))
    assert (again.version, again.copied) == (first.version, False)
    assert os.listdir(base) == [first.version]


def test_tflite_push_without_a_model_names_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=r"missing \['model.tflite', 'metadata.json'\]"):
        push_tflite(str(tmp_path), str(tmp_path / "out"))


def test_edge_predict_command_prints_a_label_per_row(
    saved_model_dir, digits_sample, tmp_path, capsys
):
    from pipelines import cli

    pixels, _ = digits_sample
    rows = pixels[:3].astype(np.float32)
    (tmp_path / "model.tflite").write_bytes(executor.convert(saved_model_dir, "float", rows))
    labels = [f"digit {label}" for label in range(10)]
    (tmp_path / "metadata.json").write_text(json.dumps({"labels": labels}))
    np.save(tmp_path / "rows.npy", rows)
    expected = tf.saved_model.load(saved_model_dir).signatures["serving_dense"](
        inputs=tf.constant(rows)
    )["class_ids"]

    command = ["edge", "predict", str(tmp_path / "model.tflite"), "--input"]
    assert cli.main([*command, str(tmp_path / "rows.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"{row}: digit {class_id}" for row, class_id in enumerate(expected.numpy())
    ]

    np.save(tmp_path / "wide.npy", np.zeros((2, 65), np.float32))
    assert cli.main([*command, str(tmp_path / "wide.npy")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dlforge: error:") and "65" in error
