"""Input pipeline and training loop of the supervised families."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from models import registry, training
from models.settings import TrainerSettings
from models.strategy import make_strategy
from models.tasks import DIGITS
from tests import fixtures

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_transformed_records(path, transform_output, pixels, labels):
    inputs = fixtures.transform(transform_output, pixels)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row, label in zip(inputs, labels, strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        DIGITS.feature_key: tf.train.Feature(
                            float_list=tf.train.FloatList(value=row)
                        ),
                        DIGITS.label_key: tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[int(label)])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())


@pytest.fixture
def record_pattern(tmp_path, transform_output, digits_sample):
    pixels, labels = digits_sample
    _write_transformed_records(
        str(tmp_path / "part-0.gz"), transform_output, pixels[:70], labels[:70]
    )
    _write_transformed_records(
        str(tmp_path / "part-1.gz"), transform_output, pixels[70:], labels[70:]
    )
    return str(tmp_path / "part-*")


def _dataset(pattern, transform_output, *, training_split, batch_size=32):
    return training.make_dataset(
        [pattern],
        transform_output.transformed_feature_spec(),
        label_key=DIGITS.label_key,
        batch_size=batch_size,
        training=training_split,
    )


def test_evaluation_dataset_is_one_pass_over_every_record(record_pattern, transform_output):
    batches = list(_dataset(record_pattern, transform_output, training_split=False))
    assert sum(len(labels) for _, labels in batches) == 120
    features, labels = batches[0]
    assert features[DIGITS.feature_key].shape == (32, 64)
    assert labels.dtype == tf.int64


def test_training_dataset_repeats_in_full_batches(record_pattern, transform_output):
    batches = list(_dataset(record_pattern, transform_output, training_split=True).take(10))
    assert [len(labels) for _, labels in batches] == [32] * 10


def test_no_matching_files_is_a_clear_error(tmp_path, transform_output):
    with pytest.raises(ValueError, match="Expected TFRecord files matching"):
        _dataset(str(tmp_path / "none-*"), transform_output, training_split=False)


def test_train_model_lowers_the_loss_and_records_history(
    record_pattern, transform_output, tmp_path
):
    settings = TrainerSettings(family="mlp", epochs=4, strategy="one_device")
    hyperparameters = registry.make_hyperparameters("mlp", {"learning_rate": 0.01})
    result = training.train_model(
        settings,
        DIGITS,
        hyperparameters,
        _dataset(record_pattern, transform_output, training_split=True),
        _dataset(record_pattern, transform_output, training_split=False),
        train_steps=40,
        log_dir=str(tmp_path / "logs"),
    )
    assert len(result.history["loss"]) == 4
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert "val_accuracy" in result.history
    assert os.listdir(tmp_path / "logs")
    path = training.write_history(result.history, str(tmp_path / "run"))
    with open(path) as handle:
        assert json.load(handle)["loss"] == result.history["loss"]


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Expected a strategy in \['mirrored', 'one_device', "):
        make_strategy("parameter_server")


MULTI_DEVICE_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from models import registry, training
    from models.settings import TrainerSettings
    from models.strategy import make_strategy
    from models.tasks import DIGITS

    strategy = make_strategy("mirrored")
    batch = next(iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(np.arange(64.0)).batch(16)
    )))
    per_replica_sizes = [int(tf.size(part)) for part in strategy.experimental_local_results(batch)]
    replica_ids = strategy.run(
        lambda: tf.distribute.get_replica_context().replica_id_in_sync_group
    )

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(256, 64)).astype("float32")
    labels = (inputs[:, :10].argmax(axis=1)).astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices(({DIGITS.feature_key: inputs}, labels))
    settings = TrainerSettings(family="mlp", epochs=5, strategy="mirrored")
    result = training.train_model(
        settings, DIGITS,
        registry.make_hyperparameters("mlp", {"learning_rate": 0.01}),
        dataset.shuffle(256, seed=0).repeat().batch(32),
        dataset.batch(64),
        train_steps=50,
    )
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "devices": list(strategy.extended.worker_devices),
        "per_replica_sizes": per_replica_sizes,
        "replica_ids": sorted(int(v) for v in strategy.experimental_local_results(replica_ids)),
        "loss": result.history["loss"],
    }))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpu_devices():
    completed = subprocess.run(
        [sys.executable, "-c", MULTI_DEVICE_SCRIPT],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert len(set(report["devices"])) == 2
    assert report["per_replica_sizes"] == [8, 8]
    assert report["replica_ids"] == [0, 1]
    assert report["loss"][-1] < 0.8 * report["loss"][0]
