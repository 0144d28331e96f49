"""TF-MOT rewrites of models/compression.py on a tiny model, a few steps each."""

import numpy as np
import pytest
import tensorflow as tf

from models import compression
from models.families import mlp
from models.tasks import DIGITS

pytestmark = pytest.mark.slow
TUNING = compression.FineTuning(steps=6, learning_rate=1e-3)


@pytest.fixture()
def model_and_data(digits_sample):
    pixels, labels = digits_sample
    model = mlp.make_model(DIGITS, num_layers=1, units=32)
    features = ((pixels - 5.0) / 6.0).astype(np.float32)
    dataset = (
        tf.data.Dataset.from_tensor_slices(({DIGITS.feature_key: features}, labels))
        .repeat()
        .batch(32)
    )
    model.fit(dataset, epochs=1, steps_per_epoch=5, verbose=0)
    return model, dataset


def _kernels(model):
    return [weight.numpy() for weight in model.weights if "kernel" in weight.name]


def _has_wrappers(model, class_name: str) -> bool:
    # By name: TF-MOT's public API does not export every wrapper class.
    return any(type(layer).__name__ == class_name for layer in model.layers)


def test_pruning_reaches_the_target_sparsity_and_is_stripped(model_and_data):
    model, dataset = model_and_data
    pruned = compression.prune(model, model.loss, dataset, TUNING, sparsity=0.75)
    assert compression.sparsity_of(pruned) == pytest.approx(0.75, abs=0.01)
    assert compression.sparsity_of(model) < 0.01  # the original is left as it was
    assert not _has_wrappers(pruned, "PruneLowMagnitude")
    assert pruned.predict(np.zeros((2, 64), np.float32), verbose=0).shape == (2, 10)


def test_clustering_leaves_at_most_n_values_per_kernel_and_is_stripped(model_and_data):
    model, dataset = model_and_data
    clustered = compression.cluster(model, model.loss, dataset, TUNING, clusters=4)
    assert compression.unique_values_of(clustered) <= 4
    assert compression.unique_values_of(model) > 100
    assert all(len(np.unique(kernel)) <= 4 for kernel in _kernels(clustered))
    assert not _has_wrappers(clustered, "ClusterWeights")


def test_quantization_aware_training_wraps_layers_for_fake_quantization(model_and_data):
    model, dataset = model_and_data
    quantized = compression.quantization_aware(model, model.loss, dataset, TUNING)
    assert _has_wrappers(quantized, "QuantizeWrapperV2")
    assert quantized.input_names == model.input_names  # the export finds the same input


@pytest.mark.parametrize(
    ("name", "keeps"),
    [("prune_qat", "sparsity"), ("cluster_qat", "clusters")],
)
def test_collaborative_qat_keeps_the_zeros_or_the_centroids(model_and_data, name, keeps):
    model, dataset = model_and_data
    result = compression.rewrite(model, name, dataset, TUNING, sparsity=0.75, clusters=4)
    assert _has_wrappers(result, "QuantizeWrapperV2")
    if keeps == "sparsity":
        assert compression.sparsity_of(result) == pytest.approx(0.75, abs=0.01)
    else:
        assert compression.unique_values_of(result) <= 4


def test_plain_qat_does_not_keep_the_zeros_of_a_pruned_model(model_and_data):
    """The reason the collaborative schemes exist: QAT alone moves pruned weights off zero."""
    model, dataset = model_and_data
    pruned = compression.prune(model, model.loss, dataset, TUNING, sparsity=0.75)
    plain = compression.quantization_aware(pruned, model.loss, dataset, TUNING)
    assert compression.sparsity_of(plain) < 0.5


def test_unknown_rewrite_and_bad_parameters_are_refused(model_and_data):
    model, dataset = model_and_data
    with pytest.raises(ValueError, match=r"Expected a rewrite in \['prune'.*received 'distil'"):
        compression.rewrite(model, "distil", dataset, TUNING, sparsity=0.5, clusters=4)
    with pytest.raises(ValueError, match=r"sparsity in \(0, 1\), received 1.0"):
        compression.prune(model, model.loss, dataset, TUNING, sparsity=1.0)
    with pytest.raises(ValueError, match="at least 2 clusters, received 1"):
        compression.cluster(model, model.loss, dataset, TUNING, clusters=1)
    with pytest.raises(ValueError, match="steps >= 1"):
        compression.FineTuning(steps=0, learning_rate=1e-3)
