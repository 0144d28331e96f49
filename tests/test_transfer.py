"""Transfer learning: pre-training, the frozen and unfrozen phases, keras.applications bases."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import registry, training, transfer
from models.settings import TrainerSettings
from models.tasks import DIGITS

FAST = transfer.Phase(steps=4, learning_rate=1e-2)


def _dataset(features, labels, batch_size=16, repeat=True):
    dataset = tf.data.Dataset.from_tensor_slices(({DIGITS.feature_key: features}, labels))
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat)


def _random_data(num_rows=64, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(num_rows, DIGITS.num_features)).astype(np.float32)
    labels = np.arange(num_rows, dtype=np.int64) % DIGITS.num_classes
    return features, labels


def _small_classifier(num_classes=DIGITS.num_classes):
    keras.utils.set_random_seed(0)
    base = transfer.make_dlforge_base(DIGITS, num_blocks=1, filters=4)
    return transfer.add_head(base, num_classes=num_classes, dense_units=8, dropout=0.0)


class PhaseRecorder(keras.callbacks.Callback):
    """Records, per fit, the base and head weights before and after, and the learning rate."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.phases = []

    def _head(self):
        return self.model.get_layer("probabilities").get_weights()

    def on_train_begin(self, logs=None):
        self.phases.append(
            {
                "base_before": self.base.get_weights(),
                "head_before": self._head(),
                "learning_rate": float(self.model.optimizer.learning_rate),
                "trainable": len(self.model.trainable_weights),
            }
        )

    def on_train_end(self, logs=None):
        self.phases[-1]["base_after"] = self.base.get_weights()
        self.phases[-1]["head_after"] = self._head()


def _changed(before, after):
    return any(not np.allclose(old, new) for old, new in zip(before, after, strict=True))


def test_base_is_frozen_for_the_head_then_fine_tuned_at_the_low_learning_rate():
    classifier = _small_classifier()
    base = transfer.base_of(classifier)
    plan = transfer.TransferPlan(
        pretrain="none",
        source_labels=(),
        pretraining=FAST,
        head=transfer.Phase(4, 1e-2),
        fine_tuning=transfer.Phase(4, 1e-3),
    )
    recorder = PhaseRecorder(base)
    data = _dataset(*_random_data())
    history = transfer.train_transfer(
        classifier, DIGITS, plan, data, data, epochs=2, callbacks=[recorder]
    )

    head_phase, fine_tune_phase = recorder.phases
    assert not _changed(head_phase["base_before"], head_phase["base_after"])
    assert _changed(head_phase["head_before"], head_phase["head_after"])
    assert head_phase["learning_rate"] == pytest.approx(1e-2)
    assert head_phase["trainable"] == 4  # The head's two dense layers: kernels and biases.
    assert _changed(fine_tune_phase["base_before"], fine_tune_phase["base_after"])
    assert fine_tune_phase["learning_rate"] == pytest.approx(1e-3)
    assert fine_tune_phase["trainable"] == len(classifier.weights)
    assert len(history["loss"]) == 4  # Two epochs of each phase.
    assert not any(key.startswith("pretrain_") for key in history)


def test_pretraining_on_source_classes_changes_the_base_and_sees_only_those_labels():
    # Rows of the other labels are NaN: a single one in a pre-training batch makes the loss NaN.
    features, labels = _random_data(num_rows=100)
    features[labels >= 5] = np.nan
    classifier = _small_classifier()
    base = transfer.base_of(classifier)
    before = base.get_weights()
    plan = transfer.TransferPlan("source_classes", (0, 1, 2, 3, 4), FAST, FAST, FAST)

    history = transfer.pretrain(base, DIGITS, _dataset(features, labels), plan)

    assert len(history["pretrain_loss"]) == 1
    assert np.all(np.isfinite(history["pretrain_loss"]))
    after = base.get_weights()
    assert all(np.all(np.isfinite(weight)) for weight in after)
    assert _changed(before, after)


def test_select_labels_keeps_and_renumbers_only_the_given_labels():
    labels = np.arange(40, dtype=np.int64) % 10
    features = labels.astype(np.float32)[:, None] * np.ones((1, 64), np.float32)
    selected = transfer.select_labels(
        _dataset(features, labels, batch_size=8, repeat=False),
        (7, 5),
        batch_size=4,
        training=False,
    )
    rows = [
        (int(feature[0]), int(label))
        for features_batch, labels_batch in selected
        for feature, label in zip(
            features_batch[DIGITS.feature_key].numpy(), labels_batch.numpy(), strict=True
        )
    ]
    assert sorted(rows) == [(5, 1)] * 4 + [(7, 0)] * 4


def test_autoencoder_pretraining_reconstructs_and_ignores_labels():
    features, _ = _random_data()
    labels = np.full(len(features), -1, np.int64)  # Not a class: labels must not be used.
    base = transfer.base_of(_small_classifier())
    before = base.get_weights()
    plan = transfer.TransferPlan("autoencoder", (), FAST, FAST, FAST)
    history = transfer.pretrain(base, DIGITS, _dataset(features, labels), plan)
    assert np.isfinite(history["pretrain_loss"][0])
    assert _changed(before, base.get_weights())


def test_application_base_loads_a_local_weights_file(tmp_path):
    keras.utils.set_random_seed(1)
    saved = keras.applications.MobileNetV2(
        alpha=0.35, weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    path = str(tmp_path / "mobilenet_v2_0.35_32_notop.h5")
    saved.save_weights(path)

    keras.utils.set_random_seed(2)
    loaded = transfer.make_application("mobilenet_v2", image_size=32, weights=path, alpha=0.35)
    random = transfer.make_application("mobilenet_v2", image_size=32, alpha=0.35)

    assert len(loaded.weights) == len(saved.weights)
    for expected, actual in zip(saved.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert _changed(saved.get_weights(), random.get_weights())


def test_application_base_adapts_digits_to_the_network_input(tmp_path):
    base = transfer.make_application_base(DIGITS, "mobilenet_v2", image_size=32, alpha=0.35)
    network = base.get_layer("mobilenetv2_0.35_32")
    assert network.input_shape == (None, 32, 32, 3)
    adapter = keras.Model(base.input, base.get_layer("imagenet_adapter").output)
    images = adapter.predict(_random_data(4)[0], verbose=0)
    # MobileNetV2's preprocess_input maps 0..255 to -1..1; each image spans the whole range.
    np.testing.assert_allclose(images.min(axis=(1, 2, 3)), -1.0, atol=1e-5)
    np.testing.assert_allclose(images.max(axis=(1, 2, 3)), 1.0, atol=1e-5)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    features = base.predict(_random_data(4)[0], verbose=0)
    assert features.shape == (4, network.output_shape[-1])
    assert np.all(np.isfinite(features))


def test_missing_weights_file_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "resnet50_notop.h5")
    with pytest.raises(FileNotFoundError, match=r"Expected a local weights file .*resnet50_notop"):
        transfer.make_application("resnet50", image_size=32, weights=missing)
    hyperparameters = registry.make_hyperparameters(
        "transfer", {"base": "vgg16", "weights": missing}
    )
    with pytest.raises(FileNotFoundError, match="never downloads weights"):
        registry.get_family("transfer").build_model(hyperparameters, DIGITS)


def test_invalid_bases_and_sizes_are_refused():
    with pytest.raises(ValueError, match=r"Expected a base in \['dlforge', 'resnet50'"):
        transfer.make_base(DIGITS, base="bert")
    with pytest.raises(ValueError, match="image_size >= 75 for inception_v3, received 32"):
        transfer.make_application("inception_v3", image_size=32)
    with pytest.raises(ValueError, match="no weights file for the 'dlforge' base"):
        transfer.make_base(DIGITS, weights="/weights.h5")
    with pytest.raises(ValueError, match=r"Expected pretrain in \['source_classes'"):
        transfer.TransferPlan("imagenet", (), FAST, FAST, FAST)


@pytest.mark.parametrize("strategy", ["one_device", "mirrored"])
def test_trainer_runs_the_family_phases_through_train_model(strategy):
    # Under MirroredStrategy every phase's new optimizer must be made in the strategy's scope.
    hyperparameters = registry.make_hyperparameters(
        "transfer",
        {
            "filters": 16,
            "num_blocks": 1,
            "pretrain_steps": 3,
            "head_steps": 4,
            "fine_tune_steps": 4,
        },
    )
    data = _dataset(*_random_data())
    result = training.train_model(
        TrainerSettings(family="transfer", epochs=2, strategy=strategy),
        DIGITS,
        hyperparameters,
        data,
        _dataset(*_random_data(32, seed=1), repeat=False),
        train_steps=1000,
    )
    assert len(result.history["pretrain_loss"]) == 2
    assert len(result.history["loss"]) == 4
    assert len(result.history["val_accuracy"]) == 4
    # After fine-tuning, the model is left with every layer trainable.
    assert len(result.model.trainable_weights) == len(result.model.weights)


def test_family_surface_batch_and_signature():
    family = registry.get_family("transfer")
    model = family.build_model(keras_tuner.HyperParameters(), DIGITS)
    inputs, labels = family.sample_batch(DIGITS, 8, seed=0)
    loss, _ = model.train_on_batch(inputs, labels)
    assert np.isfinite(loss)
    serve = family.model_signatures(model, DIGITS)[registry.get_card("transfer").tflite_signature]
    outputs = serve(tf.constant(inputs[DIGITS.feature_key]))
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(),
        model.predict(inputs, verbose=0),
        atol=1e-6,
    )


def test_measure_transfer_gain_reports_both_models_per_seed():
    gain = transfer.measure_transfer_gain(
        labelled_per_class=2,
        pretraining=FAST,
        head=FAST,
        fine_tuning=FAST,
        seeds=(0,),
        filters=4,
    )
    assert len(gain.pretrained_accuracies) == len(gain.scratch_accuracies) == 1
    assert gain.pretrained_accuracy == pytest.approx(np.mean(gain.pretrained_accuracies))
    assert gain.gain == pytest.approx(gain.pretrained_accuracy - gain.scratch_accuracy)
    assert all(0 <= value <= 1 for value in gain.pretrained_accuracies + gain.scratch_accuracies)


def test_a_tuner_trial_trains_the_family_phases_under_mirrored_strategy(tmp_path):
    from models.entrypoints import FamilyHyperModel, objective
    from models.strategy import make_strategy

    hyperparameters = registry.make_hyperparameters(
        "transfer",
        {
            "filters": 16,
            "num_blocks": 1,
            "pretrain_steps": 3,
            "head_steps": 3,
            "fine_tune_steps": 3,
        },
    )
    tuner = keras_tuner.RandomSearch(
        FamilyHyperModel(registry.get_family("transfer"), DIGITS),
        objective=objective(DIGITS),
        max_trials=1,
        hyperparameters=hyperparameters,
        tune_new_entries=True,
        distribution_strategy=make_strategy("mirrored", ""),
        directory=str(tmp_path),
        project_name="transfer",
    )

    tuner.search(
        x=_dataset(*_random_data()),
        validation_data=_dataset(*_random_data(32, seed=1), repeat=False),
        steps_per_epoch=3,
        epochs=1,
        verbose=0,
    )

    (trial,) = tuner.oracle.get_best_trials(1)
    # The trial's score is the fine-tuned model's validation accuracy from the family's phases.
    assert 0.0 <= trial.score <= 1.0
    assert trial.metrics.get_last_value("val_accuracy") == pytest.approx(trial.score)
