"""The co2 preprocessing, the recurrent forecasters and their serving signatures in ppm."""

import os

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from models import export, forecast_preprocessing, registry, training
from models.data import co2
from models.tasks import CO2

SCHEMA_FILE = os.path.join(
    os.path.dirname(__file__), "..", "pipelines", "schemas", "co2", "schema.pbtxt"
)
FAMILIES = ("simple_rnn", "lstm", "gru")
# Training steps of the beat-the-baseline test (batch 64).
STEPS = 150


def raw_schema() -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    with open(SCHEMA_FILE) as handle:
        text_format.Parse(handle.read(), schema)
    return schema


def raw_examples(lags: np.ndarray, targets: np.ndarray | None = None) -> list[bytes]:
    """Serialized tf.Examples of raw windows, as CsvExampleGen writes them."""
    serialized = []
    for index, row in enumerate(lags):
        values = dict(zip(co2.FEATURE_KEYS, row, strict=True))
        if targets is not None:
            values[co2.LABEL_KEY] = targets[index]
        feature = {
            key: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            for key, value in values.items()
        }
        serialized.append(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        )
    return serialized


@pytest.fixture(scope="module")
def windows():
    """The real train and test windows."""
    return co2.split_windows(co2.load_series())


@pytest.fixture(scope="module")
def sample(windows):
    """Every 10th train window: 155 rows spread over the train years."""
    lags, targets = windows["train"]
    return lags[::10], targets[::10]


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory, sample):
    """A real TFT output: the co2 preprocessing_fn analysed on the sample with the schema."""
    directory = str(tmp_path_factory.mktemp("co2_transform"))
    metadata = dataset_metadata.DatasetMetadata(raw_schema())
    instances = [
        {
            **{key: [float(value)] for key, value in zip(co2.FEATURE_KEYS, row, strict=True)},
            co2.LABEL_KEY: [float(target)],
        }
        for row, target in zip(*sample, strict=True)
    ]
    with tft_beam.Context(temp_dir=os.path.join(directory, "tmp")):
        _, transform_fn = (instances, metadata) | tft_beam.AnalyzeAndTransformDataset(
            forecast_preprocessing.preprocessing_fn
        )
        _ = transform_fn | tft_beam.WriteTransformFn(directory)
    metadata_io.write_metadata(
        metadata, os.path.join(directory, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return tft.TFTransformOutput(directory)


def transformed(transform_output, lags, targets=None) -> dict:
    features = {
        key: tf.constant(lags[:, [index]], tf.float32) for index, key in enumerate(co2.FEATURE_KEYS)
    }
    if targets is not None:
        features[co2.LABEL_KEY] = tf.constant(targets[:, None], tf.float32)
    return {
        key: value.numpy()
        for key, value in transform_output.transform_features_layer()(features).items()
    }


def test_lags_and_target_share_one_scale_from_the_analysed_split(transform_output, sample):
    lags, targets = sample
    mean, std = lags.mean(), lags.std()
    outputs = transformed(transform_output, lags[:20], targets[:20])
    np.testing.assert_allclose(outputs[CO2.feature_key], (lags[:20] - mean) / std, atol=1e-4)
    np.testing.assert_allclose(outputs[co2.LABEL_KEY], (targets[:20] - mean) / std, atol=1e-4)
    assert outputs[co2.LABEL_KEY].shape == (20,)


def test_serving_reads_the_label_scaling_off_the_transform(transform_output, sample):
    lags, _ = sample
    raw_spec = dict(transform_output.raw_feature_spec())
    label_spec = raw_spec.pop(co2.LABEL_KEY)
    slope, intercept = export.label_affine_map(
        transform_output.transform_features_layer(),
        raw_spec,
        co2.FEATURE_KEYS,
        co2.LABEL_KEY,
        label_spec,
    )
    assert slope == pytest.approx(1 / lags.std(), rel=1e-4)
    assert intercept == pytest.approx(-lags.mean() / lags.std(), rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_forecaster_is_registered_for_co2_and_maps_a_window_to_one_value(family):
    card = registry.get_card(family)
    assert (card.pipeline, card.task, card.metric) == ("co2", "co2", "rmse")
    model = registry.get_family(family).build_model(keras_tuner.HyperParameters(), CO2)
    assert model.input_shape == (None, co2.LOOKBACK)
    assert model.output_shape == (None, 1)
    assert model.output_names == [export.FORECAST]
    # The forecast is the last value plus a change: shifting a window shifts its forecast.
    window = np.sin(np.arange(co2.LOOKBACK, dtype=np.float32) / 5)[None]
    np.testing.assert_allclose(
        model.predict(window + 1.5, verbose=0), model.predict(window, verbose=0) + 1.5, atol=1e-5
    )


def test_a_classification_task_is_refused_by_the_forecasters():
    from models.tasks import DIGITS

    with pytest.raises(ValueError, match="Expected a regression task"):
        registry.get_family("lstm").build_model(keras_tuner.HyperParameters(), DIGITS)


@pytest.mark.slow
def test_trains_a_step_and_exports_forecasts_in_ppm_that_also_run_as_builtin_tflite(
    transform_output, windows, tmp_path
):
    # One family: the three share this code path (models.recurrent); the contract test
    # (tests/test_family_contract.py) builds, trains, exports and converts each of them.
    lags, targets = windows["test"]
    lags, targets = lags[:6].astype(np.float32), targets[:6]
    model = registry.get_family("lstm").build_model(keras_tuner.HyperParameters(), CO2)
    inputs = transformed(transform_output, lags, targets)
    before = [weight.copy() for weight in model.get_weights()]
    loss, rmse, mae = model.train_on_batch(inputs[CO2.feature_key], inputs[co2.LABEL_KEY])
    assert np.isfinite([loss, rmse, mae]).all()
    after = model.get_weights()
    assert any(not np.allclose(old, new) for old, new in zip(before, after, strict=True))
    scaled = model.predict(inputs[CO2.feature_key], verbose=0)[:, 0]
    analysed = windows["train"][0][::10]  # The rows the transform was analysed on.
    expected = scaled * analysed.std() + analysed.mean()

    directory = str(tmp_path / "model")
    training.save_model(model, transform_output, CO2, directory)
    loaded = tf.saved_model.load(directory)
    from_examples = loaded.signatures[export.DEFAULT_SIGNATURE](
        examples=tf.constant(raw_examples(lags))
    )
    from_dense = loaded.signatures[export.DENSE_SIGNATURE](inputs=tf.constant(lags))
    for outputs in (from_examples, from_dense):
        assert sorted(outputs) == [export.FORECAST]
        np.testing.assert_allclose(outputs[export.FORECAST].numpy(), expected, atol=2e-3)
    # In ppm: a barely trained model forecasts close to the window's last week.
    np.testing.assert_allclose(from_dense[export.FORECAST].numpy(), lags[:, -1], atol=5)
    with_label = loaded.signatures[export.DEFAULT_SIGNATURE](
        examples=tf.constant(raw_examples(lags, targets))
    )
    np.testing.assert_allclose(
        with_label[export.FORECAST].numpy(), from_examples[export.FORECAST].numpy()
    )

    converter = tf.lite.TFLiteConverter.from_saved_model(
        directory, signature_keys=[export.DENSE_SIGNATURE]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    runner = tf.lite.Interpreter(model_content=converter.convert()).get_signature_runner(
        export.DENSE_SIGNATURE
    )
    np.testing.assert_allclose(
        runner(inputs=lags)[export.FORECAST], from_dense[export.FORECAST].numpy(), atol=1e-3
    )


@pytest.mark.slow
def test_an_lstm_trained_briefly_beats_the_seasonal_naive_forecast_on_the_test_split(windows):
    (train_lags, train_targets), (test_lags, test_targets) = windows["train"], windows["test"]
    # The transform's scaling, one mean and deviation of the train lags (checked above).
    mean, std = train_lags.mean(), train_lags.std()

    def scale(values):
        return ((values - mean) / std).astype(np.float32)

    tf.keras.utils.set_random_seed(0)
    model = registry.get_family("lstm").build_model(keras_tuner.HyperParameters(), CO2)
    dataset = (
        tf.data.Dataset.from_tensor_slices((scale(train_lags), scale(train_targets)))
        .shuffle(2048, seed=0)
        .repeat()
        .batch(64)
    )
    model.fit(dataset, steps_per_epoch=STEPS, epochs=1, verbose=0)
    forecasts = model.predict(scale(test_lags), verbose=0)[:, 0] * std + mean
    lstm = co2.forecast_errors(forecasts, test_targets)
    naive = co2.seasonal_naive_errors(test_lags, test_targets)
    print(f"test RMSE: lstm {lstm.rmse:.3f} ppm, seasonal naive {naive.rmse:.3f} ppm")
    assert lstm.rmse < naive.rmse
    assert lstm.mae < naive.mae


def test_the_search_minimises_validation_rmse_for_regression_only():
    from models.entrypoints import objective
    from models.tasks import DIGITS

    assert (objective(CO2).name, objective(CO2).direction) == ("val_rmse", "min")
    assert (objective(DIGITS).name, objective(DIGITS).direction) == ("val_accuracy", "max")
