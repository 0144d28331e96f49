"""The device runner: TFLite models of the dense contract, run without TensorFlow."""

import ast
import json
import os
import pathlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import edge_runner
from models.edge_runner import EdgeModel, EdgeModelError, load_inputs

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
FEATURES = 64
CLASSES = 10
# Float models must agree with TF's own interpreter and the Keras model to this.
FLOAT_TOLERANCE = 1e-5
# A full-int8 model's probabilities are multiples of 1/256 and its inputs are rounded to steps of
# about 16/255; against the float Keras model this is a generous bound on that error.
INT8_TOLERANCE = 0.06
NETWORK_ERRORS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "Max retries exceeded",
)


@dataclass(frozen=True)
class Exported:
    """A tiny classifier exported like dlforge's models, and its TFLite conversions."""

    keras_model: keras.Model
    saved_model_dir: str
    rows: np.ndarray
    float_path: str
    int8_path: str

    def convert(self, signature_keys: list[str]) -> bytes:
        """A float TFLite model of some of the SavedModel's signatures."""
        converter = tf.lite.TFLiteConverter.from_saved_model(
            self.saved_model_dir, signature_keys=signature_keys
        )
        return converter.convert()


def make_rows(count: int, seed: int) -> np.ndarray:
    """Raw pixel-like rows: whole numbers 0..16, float32."""
    return np.random.default_rng(seed).integers(0, 17, (count, FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    folder = tmp_path_factory.mktemp("edge_models")
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.layers.Input((FEATURES,)),
            keras.layers.Rescaling(1 / 16),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    dense_spec = tf.TensorSpec([None, FEATURES], tf.float32, name="inputs")

    @tf.function(input_signature=[dense_spec])
    def serve_dense(values):
        probabilities = model(values)
        return {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=-1)}

    @tf.function(input_signature=[dense_spec])
    def serve_probabilities(values):
        return {"probabilities": model(values)}

    @tf.function(input_signature=[dense_spec])
    def serve_halved(values):
        return {"probabilities": model(values / 2)}

    saved_model_dir = str(folder / "saved_model")
    model.save(
        saved_model_dir,
        signatures={
            "serving_dense": serve_dense.get_concrete_function(),
            "serving_probabilities": serve_probabilities.get_concrete_function(),
            "serving_halved": serve_halved.get_concrete_function(),
        },
    )
    float_converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=["serving_dense"]
    )
    float_path = folder / "float.tflite"
    float_path.write_bytes(float_converter.convert())

    calibration = make_rows(64, seed=11)

    def representative_dataset():
        for row in calibration:
            yield {"inputs": row[np.newaxis]}

    int8_converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=["serving_dense"]
    )
    int8_converter.optimizations = [tf.lite.Optimize.DEFAULT]
    int8_converter.representative_dataset = representative_dataset
    int8_converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    int8_converter.inference_input_type = tf.int8
    int8_converter.inference_output_type = tf.int8
    int8_path = folder / "int8.tflite"
    int8_path.write_bytes(int8_converter.convert())
    return Exported(
        keras_model=model,
        saved_model_dir=saved_model_dir,
        rows=make_rows(40, seed=5),
        float_path=str(float_path),
        int8_path=str(int8_path),
    )


def tensorflow_lite_predict(path: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The reference: TensorFlow's own interpreter, quantizing by hand like its docs do."""
    runner = tf.lite.Interpreter(model_path=path).get_signature_runner("serving_dense")
    detail = runner.get_input_details()["inputs"]
    scale, zero_point = detail["quantization"]
    values = rows
    if scale:
        limits = np.iinfo(detail["dtype"])
        values = np.clip(np.round(rows / scale) + zero_point, limits.min, limits.max)
    return runner(inputs=values.astype(detail["dtype"]))


def write(path: pathlib.Path, content: str | bytes) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def run_python(python: str, *arguments: str, timeout: float = 300):
    """Runs `python` with the repository (and nothing else) on PYTHONPATH."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    environment["PYTHONPATH"] = str(REPOSITORY)
    return subprocess.run(
        [python, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=str(REPOSITORY),
    )


# The module's own imports and contract.


def test_module_imports_only_the_standard_library_numpy_and_tflite_runtime():
    tree = ast.parse((REPOSITORY / "models" / "edge_runner.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would pull in other dlforge modules"
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] != "numpy"
        and name != "tflite_runtime.interpreter"
    }
    assert outside == set()
    assert "tflite_runtime.interpreter" in imported


def test_contract_names_equal_those_of_the_export_module():
    tree = ast.parse((REPOSITORY / "models" / "export.py").read_text())
    export_constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    names = ("DENSE_SIGNATURE", "PROBABILITIES", "CLASS_IDS")
    assert {name: getattr(edge_runner, name) for name in names} == {
        name: export_constants[name] for name in names
    }


def test_loading_and_predicting_imports_no_tensorflow(exported):
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from models.edge_runner import EdgeModel
        EdgeModel.from_file(sys.argv[1]).predict(np.zeros((2, 64)))
        print(sorted(name for name in sys.modules
                     if name.split(".")[0] in {"tensorflow", "tf_keras", "keras"}))
        """
    )
    result = run_python(sys.executable, "-c", script, exported.float_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# Predictions.


def test_float_model_matches_tensorflow_lite_and_keras(exported):
    model = EdgeModel.from_file(exported.float_path)
    outputs = model.predict(exported.rows)
    reference = tensorflow_lite_predict(exported.float_path, exported.rows)
    keras_probabilities = exported.keras_model.predict(exported.rows, verbose=0)
    assert set(outputs) == {"probabilities", "class_ids"}
    assert outputs["probabilities"].dtype == np.float32
    assert outputs["probabilities"].shape == (len(exported.rows), CLASSES)
    assert outputs["class_ids"].dtype == np.int64
    assert outputs["class_ids"].shape == (len(exported.rows),)
    np.testing.assert_allclose(
        outputs["probabilities"], reference["probabilities"], atol=FLOAT_TOLERANCE
    )
    np.testing.assert_allclose(outputs["probabilities"], keras_probabilities, atol=FLOAT_TOLERANCE)
    np.testing.assert_array_equal(outputs["class_ids"], reference["class_ids"])
    np.testing.assert_array_equal(outputs["class_ids"], keras_probabilities.argmax(axis=-1))
    # Several classes occur, so agreeing on class ids is not trivial.
    assert len(set(outputs["class_ids"].tolist())) >= 3


def test_float_model_describes_its_input_and_outputs(exported):
    model = EdgeModel.from_file(exported.float_path)
    assert model.signature_key == "serving_dense"
    assert model.input.name == "inputs"
    assert model.input.shape == (None, FEATURES)
    assert model.input.dtype == np.float32
    assert (model.input.scale, model.input.zero_point, model.input.quantized) == (None, None, False)
    assert model.outputs["probabilities"].shape == (None, CLASSES)
    assert model.outputs["class_ids"].dtype == np.int64
    assert model.output_names == ("class_ids", "probabilities")


def test_int8_model_quantizes_inputs_and_dequantizes_outputs(exported):
    model = EdgeModel.from_file(exported.int8_path)
    details = tf.lite.Interpreter(model_path=exported.int8_path).get_input_details()[0]
    assert model.input.dtype == np.int8
    assert model.input.shape == (None, FEATURES)
    assert model.input.quantized
    assert model.input.scale == pytest.approx(details["quantization"][0])
    assert model.input.zero_point == details["quantization"][1]

    outputs = model.predict(exported.rows)
    reference = tensorflow_lite_predict(exported.int8_path, exported.rows)
    probability_scale, probability_zero_point = (
        model.outputs["probabilities"].scale,
        model.outputs["probabilities"].zero_point,
    )
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(
        outputs["probabilities"],
        (reference["probabilities"].astype(np.float32) - probability_zero_point)
        * probability_scale,
        atol=1e-6,
    )
    np.testing.assert_array_equal(outputs["class_ids"], reference["class_ids"])

    keras_probabilities = exported.keras_model.predict(exported.rows, verbose=0)
    np.testing.assert_allclose(outputs["probabilities"], keras_probabilities, atol=INT8_TOLERANCE)
    agreement = np.mean(outputs["class_ids"] == keras_probabilities.argmax(axis=-1))
    assert agreement >= 0.9


def test_int8_inputs_outside_the_quantized_range_are_clipped_not_wrapped(exported):
    model = EdgeModel.from_file(exported.int8_path)
    largest = (127 - model.input.zero_point) * model.input.scale
    at_limit = exported.rows[:4].copy()
    at_limit[:, 0] = largest
    beyond = exported.rows[:4].copy()
    beyond[:, 0] = 1e6
    np.testing.assert_array_equal(
        model.predict(beyond)["probabilities"], model.predict(at_limit)["probabilities"]
    )


def test_one_example_nested_lists_and_integers_are_accepted(exported):
    model = EdgeModel.from_file(exported.float_path)
    batch = model.predict(exported.rows[:3])
    one = model.predict(exported.rows[0])
    assert one["probabilities"].shape == (1, CLASSES)
    np.testing.assert_allclose(one["probabilities"][0], batch["probabilities"][0], atol=1e-6)
    from_lists = model.predict(exported.rows[:3].tolist())
    from_integers = model.predict(exported.rows[:3].astype(np.int64))
    for outputs in (from_lists, from_integers):
        np.testing.assert_allclose(outputs["probabilities"], batch["probabilities"], atol=1e-6)
        np.testing.assert_array_equal(outputs["class_ids"], batch["class_ids"])


def test_model_from_bytes_equals_model_from_file(exported):
    content = pathlib.Path(exported.float_path).read_bytes()
    from_bytes = EdgeModel(content).predict(exported.rows)
    from_file = EdgeModel.from_file(exported.float_path).predict(exported.rows)
    np.testing.assert_array_equal(from_bytes["probabilities"], from_file["probabilities"])


# Signatures and batch sizes.


def test_dense_signature_is_preferred_among_several(exported):
    content = exported.convert(["serving_halved", "serving_dense"])
    model = EdgeModel(content)
    assert model.signature_key == "serving_dense"
    expected = exported.keras_model.predict(exported.rows, verbose=0)
    np.testing.assert_allclose(
        model.predict(exported.rows)["probabilities"], expected, atol=FLOAT_TOLERANCE
    )
    halved = EdgeModel(content, signature_key="serving_halved")
    np.testing.assert_allclose(
        halved.predict(exported.rows)["probabilities"],
        exported.keras_model.predict(exported.rows / 2, verbose=0),
        atol=FLOAT_TOLERANCE,
    )


def test_only_signature_is_used_and_class_ids_are_derived(exported):
    model = EdgeModel(exported.convert(["serving_probabilities"]))
    assert model.signature_key == "serving_probabilities"
    assert set(model.outputs) == {"probabilities"}
    assert model.output_names == ("probabilities", "class_ids")
    outputs = model.predict(exported.rows)
    expected = exported.keras_model.predict(exported.rows, verbose=0)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=FLOAT_TOLERANCE)
    assert outputs["class_ids"].dtype == np.int64
    np.testing.assert_array_equal(outputs["class_ids"], expected.argmax(axis=-1))


def test_several_signatures_without_the_dense_one_are_refused(exported):
    content = exported.convert(["serving_halved", "serving_probabilities"])
    with pytest.raises(EdgeModelError, match=r"serving_dense.*exactly one signature") as caught:
        EdgeModel(content, source="two.tflite")
    assert "two.tflite" in str(caught.value)
    assert "serving_halved" in str(caught.value)
    with pytest.raises(EdgeModelError, match="expected a signature 'serving_other'"):
        EdgeModel(content, signature_key="serving_other")


def test_model_without_signatures_runs_its_plain_tensors(exported):
    from tensorflow.lite.tools import flatbuffer_utils

    content = pathlib.Path(exported.float_path).read_bytes()
    flatbuffer = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    flatbuffer.signatureDefs = []
    stripped = bytes(flatbuffer_utils.convert_object_to_bytearray(flatbuffer))
    interpreter = tf.lite.Interpreter(model_content=stripped)
    assert interpreter.get_signature_list() == {}

    model = EdgeModel(stripped)
    assert model.signature_key is None
    assert model.input.name == interpreter.get_input_details()[0]["name"]
    assert model.input.shape == (None, FEATURES)
    outputs = model.predict(exported.rows)
    names = {detail["name"]: detail for detail in interpreter.get_output_details()}
    assert set(outputs) == set(names)
    probabilities_name = next(name for name, detail in names.items() if len(detail["shape"]) == 2)
    np.testing.assert_allclose(
        outputs[probabilities_name],
        exported.keras_model.predict(exported.rows, verbose=0),
        atol=FLOAT_TOLERANCE,
    )
    # A second, different batch size resizes the plain input tensor again.
    assert outputs[probabilities_name].shape == (len(exported.rows), CLASSES)
    assert model.predict(exported.rows[:3])[probabilities_name].shape == (3, CLASSES)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_fixed_batch_model_runs_in_chunks(batch_size):
    # The Reshape keeps the batch size in a constant, so the model cannot be resized: the runner
    # must feed it chunks of exactly `batch_size` rows.
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.layers.Input((FEATURES,)),
            keras.layers.Reshape((8, 8, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec([batch_size, FEATURES], tf.float32)])
    def serve(inputs):
        return {"probabilities": model(inputs / 16)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], model
    )
    edge_model = EdgeModel(converter.convert())
    assert edge_model.input.shape == (batch_size, FEATURES)
    rows = make_rows(6, seed=9)
    outputs = edge_model.predict(rows)
    expected = model.predict(rows / 16, verbose=0)
    assert outputs["probabilities"].shape == (6, CLASSES)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=FLOAT_TOLERANCE)
    np.testing.assert_array_equal(outputs["class_ids"], expected.argmax(axis=-1))


def convert_function(function, *specs: tf.TensorSpec) -> bytes:
    """A TFLite model of a tf.function (its one signature is "serving_default")."""
    module = tf.Module()
    module.function = tf.function(function, input_signature=list(specs))
    concrete = module.function.get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], module).convert()


def test_unquantized_integer_input_takes_whole_numbers_in_range():
    content = convert_function(
        lambda ids: {"doubled": ids * 2}, tf.TensorSpec([None, 3], tf.int32, name="ids")
    )
    model = EdgeModel(content)
    assert (model.input.name, model.input.dtype, model.input.quantized) == ("ids", np.int32, False)
    outputs = model.predict(np.array([[1.0, 2.0, -3.0]]))
    np.testing.assert_array_equal(outputs["doubled"], [[2, 4, -6]])
    assert outputs["doubled"].dtype == np.int32
    with pytest.raises(EdgeModelError, match="whole numbers"):
        model.predict([[1.5, 2, 3]])
    with pytest.raises(EdgeModelError, match=r"values in \[-2147483648, 2147483647\]"):
        model.predict([[1, 2, 2**40]])


def test_model_with_two_inputs_is_refused():
    content = convert_function(
        lambda left, right: {"sum": left + right},
        tf.TensorSpec([None, 2], tf.float32, name="left"),
        tf.TensorSpec([None, 2], tf.float32, name="right"),
    )
    with pytest.raises(EdgeModelError, match=r"one input, received 2: \['left', 'right'\]"):
        EdgeModel(content, source="pair.tflite")


# Bad inputs.


@pytest.mark.parametrize(
    ("rows", "received"),
    [
        (np.zeros((3, 63)), "[3, 63]"),
        (np.zeros(65), "[1, 65]"),
        (np.zeros((2, 8, 8)), "[2, 8, 8]"),
    ],
)
def test_wrong_feature_count_names_expected_and_received_shapes(exported, rows, received):
    model = EdgeModel.from_file(exported.float_path)
    with pytest.raises(EdgeModelError) as caught:
        model.predict(rows)
    message = str(caught.value)
    assert "[n, 64]" in message
    assert received in message


@pytest.mark.parametrize(
    ("rows", "described"),
    [
        ([["1", "2"] * 32], "strings"),
        (np.array([["a"] * 64]), "strings"),
        ([[1.0, None] * 32], "Python objects"),
        (np.ones((2, 64), dtype=bool), "booleans"),
    ],
)
def test_non_numeric_inputs_are_refused(exported, rows, described):
    model = EdgeModel.from_file(exported.float_path)
    with pytest.raises(EdgeModelError, match="Expected numeric inputs") as caught:
        model.predict(rows)
    assert described in str(caught.value)


def test_ragged_rows_and_empty_batches_are_refused(exported):
    model = EdgeModel.from_file(exported.float_path)
    with pytest.raises(EdgeModelError, match="unequal lengths"):
        model.predict([[0.0] * 64, [0.0] * 63])
    with pytest.raises(EdgeModelError, match="at least one example"):
        model.predict(np.zeros((0, 64)))


def test_non_finite_values_are_refused_for_a_quantized_input(exported):
    model = EdgeModel.from_file(exported.int8_path)
    rows = exported.rows[:2].copy()
    rows[1, 5] = np.nan
    with pytest.raises(EdgeModelError, match="finite"):
        model.predict(rows)


# Bad model files.


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "too few"),
        (np.random.default_rng(0).bytes(4096), "TFL3"),
        (b"\x1c\x00\x00\x00TFL3" + np.random.default_rng(1).bytes(4096), "outside"),
    ],
    ids=["empty", "random", "random-after-header"],
)
def test_files_that_are_not_models_are_refused_naming_the_file(tmp_path, content, reason):
    path = write(tmp_path / "model.tflite", content)
    with pytest.raises(EdgeModelError, match=reason) as caught:
        EdgeModel.from_file(path)
    assert path in str(caught.value)


def test_missing_model_file_is_refused_naming_the_file(tmp_path):
    path = str(tmp_path / "absent.tflite")
    with pytest.raises(EdgeModelError, match="No such file") as caught:
        EdgeModel.from_file(path)
    assert path in str(caught.value)


def test_truncated_and_damaged_models_are_refused_without_crashing(exported, tmp_path):
    # tflite-runtime's interpreter does not verify flatbuffers: a truncated file can crash it
    # (segmentation fault). Run in a child so a crash fails this test instead of the session.
    script = textwrap.dedent(
        """
        import json, sys
        from models.edge_runner import EdgeModel, EdgeModelError
        content = open(sys.argv[1], "rb").read()
        results = {}
        for length in [*range(0, len(content), 37), len(content) - 1]:
            path = f"{sys.argv[2]}/cut-{length}.tflite"
            open(path, "wb").write(content[:length])
            try:
                EdgeModel.from_file(path)
                results[length] = "loaded"
            except EdgeModelError as error:
                results[length] = "refused" if path in str(error) else str(error)
        print(json.dumps(results))
        """
    )
    result = run_python(sys.executable, "-c", script, exported.float_path, str(tmp_path))
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(results) > 100
    assert {length: outcome for length, outcome in results.items() if outcome != "refused"} == {}


def test_names_without_their_zero_byte_are_refused(exported):
    # The interpreter reads names as C strings; without the terminator it reads on into
    # whatever follows (an odd name, a UnicodeDecodeError, or worse).
    content = pathlib.Path(exported.float_path).read_bytes()
    end = content.index(b"serving_dense_inputs:0\x00") + len(b"serving_dense_inputs:0")
    damaged = content[:end] + b"\xaf" + content[end + 1 :]
    with pytest.raises(EdgeModelError, match="does not end with a zero byte"):
        EdgeModel(damaged)


# load_inputs.


def test_load_inputs_reads_npy_csv_and_json(tmp_path):
    rows = np.array([[0, 1.5, 16], [3, 4, 5]])
    np.save(tmp_path / "rows.npy", rows)
    loaded = {
        "npy": load_inputs(str(tmp_path / "rows.npy")),
        "csv": load_inputs(write(tmp_path / "rows.csv", "0,1.5,16\n3,4,5\n")),
        "csv with header": load_inputs(
            write(tmp_path / "header.csv", "pixel_00,pixel_01,pixel_02\n0,1.5,16\n\n3,4,5\n")
        ),
        "json rows": load_inputs(write(tmp_path / "rows.json", "[[0, 1.5, 16], [3, 4, 5]]")),
        "json instances": load_inputs(
            write(tmp_path / "instances.JSON", '{"instances": [[0, 1.5, 16], [3, 4, 5]]}')
        ),
    }
    for source, array in loaded.items():
        np.testing.assert_array_equal(array, rows, err_msg=source)
    one = load_inputs(write(tmp_path / "one.json", "[0, 1.5, 16]"))
    np.testing.assert_array_equal(one, rows[0])


def test_loaded_inputs_predict_like_the_array(exported, tmp_path):
    rows = exported.rows[:5]
    path = write(tmp_path / "rows.csv", "\n".join(",".join(map(str, row)) for row in rows))
    model = EdgeModel.from_file(exported.float_path)
    np.testing.assert_array_equal(
        model.predict(load_inputs(path))["probabilities"], model.predict(rows)["probabilities"]
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.txt", "1,2\n", "expected a file ending in .npy, .csv, .json, received '.txt'"),
        ("rows", "1,2\n", "received no extension"),
        ("rows.csv", "", "expected at least one row of numbers, found an empty file"),
        ("rows.csv", "a,b\n", "found only a header"),
        ("rows.csv", "a,b\n1,x\n", "line 2, column 2: expected a number, found 'x'"),
        ("rows.csv", "1,2,x\n", "line 1, column 3: expected a number, found 'x'"),
        ("rows.csv", "1,2\n3,\n", "line 2, column 2: expected a number, found ''"),
        ("rows.csv", "a,b,c\n1,2\n", "line 2: expected 3 values (as on line 1), found 2"),
        ("rows.csv", b"1,2\n\xff,3\n", "expected UTF-8 text"),
        ("rows.json", "[[1, 2], [3", "invalid JSON"),
        ("rows.json", "[]", "expected a non-empty list of rows"),
        ("rows.json", '{"rows": [[1]]}', "an object with the keys ['rows']"),
        ("rows.json", '{"instances": [[1, 2], [3, "4"]]}', "instances[1][1]: expected a number"),
        ("rows.json", "[[1, 2], [3, true]]", "[1][1]: expected a number, received true"),
        ("rows.json", "[[1, 2], [3]]", "[1]: expected 2 values (as in [0]), received 1"),
        ("rows.json", '[[1, 2], {"a": 1}]', "[1]: expected a list of numbers"),
        ("rows.npy", b"not an array", "expected a numpy .npy array"),
        ("rows.npy", b"", "expected a numpy .npy array"),
    ],
)
def test_load_inputs_refuses_bad_files_naming_them(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(EdgeModelError) as caught:
        load_inputs(path)
    assert str(caught.value).startswith(path)
    assert message in str(caught.value)


def test_load_inputs_refuses_npy_of_strings_npz_and_missing_files(tmp_path):
    np.save(tmp_path / "strings.npy", np.array([["a", "b"]]))
    with pytest.raises(EdgeModelError, match="expected an array of numbers, received strings"):
        load_inputs(str(tmp_path / "strings.npy"))
    np.savez(tmp_path / "archive.npz", rows=np.zeros((2, 2)))
    os.rename(tmp_path / "archive.npz", tmp_path / "archive.npy")
    with pytest.raises(EdgeModelError, match=r"received an \.npz archive"):
        load_inputs(str(tmp_path / "archive.npy"))
    missing = str(tmp_path / "absent.csv")
    with pytest.raises(EdgeModelError, match="No such file") as caught:
        load_inputs(missing)
    assert missing in str(caught.value)


# A device's environment: a fresh venv with only tflite-runtime and numpy.


@pytest.mark.slow
def test_runs_in_a_fresh_venv_with_only_tflite_runtime_and_numpy(exported, tmp_path):
    base_python = pathlib.Path(sys.base_prefix) / "bin" / "python3"
    assert base_python.exists(), f"expected CPython at {base_python}"
    venv = tmp_path / "device-venv"
    subprocess.run(
        [str(base_python), "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300
    )
    python = str(venv / "bin" / "python")
    pip_log = tmp_path / "pip.log"
    install = run_python(
        python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        "--log",
        str(pip_log),
        "tflite-runtime==2.14.0",
        "numpy==1.26.4",
        timeout=600,
    )
    if install.returncode != 0:
        # Quiet pip says only "from versions: none" when the index is unreachable; its log
        # (always verbose) names the connection error.
        output = install.stdout + install.stderr
        log = pip_log.read_text(errors="replace") if pip_log.exists() else ""
        network = [marker for marker in NETWORK_ERRORS if marker in output + log]
        if network:
            pytest.skip(f"PyPI is unreachable (pip reported {network[0]!r})")
        pytest.fail(f"pip install failed (exit {install.returncode}):\n{output[-3000:]}")

    rows = exported.rows[:6]
    np.save(tmp_path / "rows.npy", rows)
    script = textwrap.dedent(
        """
        import importlib.metadata, importlib.util, json, sys
        import numpy as np
        from models import edge_runner
        assert importlib.util.find_spec("tensorflow") is None, "tensorflow is importable"
        model = edge_runner.EdgeModel.from_file(sys.argv[1])
        outputs = model.predict(edge_runner.load_inputs(sys.argv[2]))
        assert "tensorflow" not in sys.modules
        print(json.dumps({
            "module": edge_runner.__file__,
            "packages": sorted(dist.metadata["Name"].lower()
                               for dist in importlib.metadata.distributions()),
            "tflite_runtime": importlib.metadata.version("tflite-runtime"),
            "numpy": np.__version__,
            "input": [model.input.name, list(model.input.shape), str(model.input.dtype)],
            "probabilities": outputs["probabilities"].tolist(),
            "class_ids": outputs["class_ids"].tolist(),
        }))
        """
    )
    result = run_python(python, "-c", script, exported.float_path, str(tmp_path / "rows.npy"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"] == str(REPOSITORY / "models" / "edge_runner.py")
    assert (report["tflite_runtime"], report["numpy"]) == ("2.14.0", "1.26.4")
    assert not any(
        name.startswith(("tensorflow", "tf-keras", "keras")) for name in report["packages"]
    )
    assert report["input"] == ["inputs", [None, FEATURES], "float32"]

    expected = EdgeModel.from_file(exported.float_path).predict(rows)
    np.testing.assert_allclose(
        np.array(report["probabilities"], dtype=np.float32), expected["probabilities"], atol=1e-6
    )
    np.testing.assert_array_equal(report["class_ids"], expected["class_ids"])
    np.testing.assert_allclose(
        report["probabilities"], exported.keras_model.predict(rows, verbose=0), atol=FLOAT_TOLERANCE
    )
