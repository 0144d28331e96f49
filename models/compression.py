"""Training-time compression of a trained Keras classifier with TF Model Optimization.

Each rewrite fine-tunes a copy of the model on the (transformed) training data and returns a
plain Keras model that `models.training.save_model` exports with the usual serving signatures:
- `prune`: `prune_low_magnitude` from 0 to a target sparsity on a polynomial schedule, then
  `strip_pruning`;
- `cluster`: `cluster_weights` into N centroids (k-means++ initialised), then `strip_clustering`;
- `qat`: quantization-aware training (`quantize_model`);
- `prune_qat` / `cluster_qat`: pruning or clustering first, then quantization-aware training
  that keeps the zeros or the centroids (TF-MOT's collaborative optimisation schemes).

The quantization-aware models keep their fake-quant wrappers; the TFLite converter turns them
into int8 kernels with the ranges they learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from models import classifier  # noqa: F401 - registers the custom losses load_model may need.
from models.keras_lib import keras

REWRITES = ("prune", "cluster", "qat", "prune_qat", "cluster_qat")
# The pruning schedule reaches its final sparsity after this share of the fine-tuning steps,
# so the last steps train the pruned network at its final sparsity.
PRUNING_RAMP = 0.6


@dataclass(frozen=True)
class FineTuning:
    """How a rewritten model is fine-tuned.

    Attributes:
        steps: Training steps of each phase (pruning or clustering, then QAT).
        learning_rate: Adam step size; small, the model is already trained.
    """

    steps: int
    learning_rate: float

    def __post_init__(self) -> None:
        if self.steps < 1 or self.learning_rate <= 0:
            raise ValueError(
                "Expected fine-tuning steps >= 1 and a learning_rate > 0, received "
                f"{self.steps} and {self.learning_rate}."
            )


def load_model(saved_model_dir: str) -> keras.Model:
    """Loads the Keras model of an exported SavedModel (without its serving signatures).

    The model is rebuilt from its config, so TF-MOT can clone it layer by layer, and compiled
    with its training loss (`model.loss`), which the rewrites fine-tune with.
    """
    loaded = keras.models.load_model(saved_model_dir, compile=True)
    # The export attaches the transform layer to the model, so the loaded model tracks it as an
    # unconnected layer, which TF-MOT cannot clone (a subclassed model): keep the network only.
    network = keras.Model(loaded.inputs, loaded.outputs, name=loaded.name)
    network.compile(loss=loaded.loss)
    return network


def _copy(model: keras.Model) -> keras.Model:
    # TF-MOT wraps the given layers themselves, so fine-tuning would change the caller's model.
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _fit(model: keras.Model, loss, dataset: tf.data.Dataset, tuning: FineTuning, callbacks=()):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=tuning.learning_rate),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(dataset, epochs=1, steps_per_epoch=tuning.steps, callbacks=list(callbacks), verbose=0)
    return model


def prune(
    model: keras.Model, loss, dataset: tf.data.Dataset, tuning: FineTuning, *, sparsity: float
) -> keras.Model:
    """Prunes every prunable weight to `sparsity` (a share of zeros) while fine-tuning.

    Args:
        model: The trained model (left unchanged).
        loss: The loss it was trained with.
        dataset: Repeating (features, label) batches of the training data.
        tuning: Fine-tuning steps and step size.
        sparsity: Final share of zero weights, in (0, 1).

    Returns:
        The pruned model, with the pruning wrappers stripped.
    """
    if not 0 < sparsity < 1:
        raise ValueError(f"Expected a sparsity in (0, 1), received {sparsity}.")
    end_step = max(1, int(tuning.steps * PRUNING_RAMP))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=max(1, end_step // 10),
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(_copy(model), pruning_schedule=schedule)
    _fit(pruned, loss, dataset, tuning, [tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def cluster(
    model: keras.Model, loss, dataset: tf.data.Dataset, tuning: FineTuning, *, clusters: int
) -> keras.Model:
    """Shares each weight tensor's values among `clusters` centroids while fine-tuning.

    Args are those of `prune`, with `clusters` (>= 2) centroids per weight tensor.

    Returns:
        The clustered model, with the clustering wrappers stripped.
    """
    if clusters < 2:
        raise ValueError(f"Expected at least 2 clusters, received {clusters}.")
    clustered = tfmot.clustering.keras.cluster_weights(
        _copy(model),
        number_of_clusters=clusters,
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
    )
    _fit(clustered, loss, dataset, tuning)
    return tfmot.clustering.keras.strip_clustering(clustered)


def quantization_aware(
    model: keras.Model,
    loss,
    dataset: tf.data.Dataset,
    tuning: FineTuning,
    *,
    preserve: str = "",
) -> keras.Model:
    """Fine-tunes the model with int8 fake quantization of weights and activations.

    Args:
        model: The trained (possibly pruned or clustered and stripped) model.
        loss: The loss it was trained with.
        dataset: Repeating (features, label) batches of the training data.
        tuning: Fine-tuning steps and step size.
        preserve: "" for plain QAT, "sparsity" to keep the zeros of a pruned model (PQAT),
            "clusters" to keep the centroids of a clustered model (CQAT).

    Returns:
        The quantization-aware model (fake-quant wrappers kept for the converter).
    """
    schemes = {
        "sparsity": tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme,
        "clusters": tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme,
    }
    if preserve and preserve not in schemes:
        raise ValueError(f"Expected preserve in ['', {', '.join(schemes)}], received {preserve!r}.")
    if preserve:
        annotated = tfmot.quantization.keras.quantize_annotate_model(_copy(model))
        quantized = tfmot.quantization.keras.quantize_apply(annotated, schemes[preserve]())
    else:
        quantized = tfmot.quantization.keras.quantize_model(_copy(model))
    return _fit(quantized, loss, dataset, tuning)


def rewrite(
    model: keras.Model,
    name: str,
    dataset: tf.data.Dataset,
    tuning: FineTuning,
    *,
    sparsity: float,
    clusters: int,
) -> keras.Model:
    """Applies one of `REWRITES` to a model from `load_model`, fine-tuning with its loss.

    Raises:
        ValueError: For an unknown rewrite or invalid parameters.
    """
    loss = model.loss
    if name == "prune":
        return prune(model, loss, dataset, tuning, sparsity=sparsity)
    if name == "cluster":
        return cluster(model, loss, dataset, tuning, clusters=clusters)
    if name == "qat":
        return quantization_aware(model, loss, dataset, tuning)
    if name == "prune_qat":
        pruned = prune(model, loss, dataset, tuning, sparsity=sparsity)
        return quantization_aware(pruned, loss, dataset, tuning, preserve="sparsity")
    if name == "cluster_qat":
        clustered = cluster(model, loss, dataset, tuning, clusters=clusters)
        return quantization_aware(clustered, loss, dataset, tuning, preserve="clusters")
    raise ValueError(f"Expected a rewrite in {list(REWRITES)}, received {name!r}.")


def sparsity_of(model: keras.Model) -> float:
    """Share of exact zeros among the kernels (the weights pruning acts on)."""
    kernels = [weight for weight in model.weights if "kernel" in weight.name]
    total = sum(int(tf.size(kernel)) for kernel in kernels)
    zeros = sum(int(tf.reduce_sum(tf.cast(kernel == 0, tf.int32))) for kernel in kernels)
    return zeros / total if total else 0.0


def unique_values_of(model: keras.Model) -> int:
    """Largest number of distinct values in one kernel (clustering bounds it)."""
    return max(
        (
            int(tf.size(tf.unique(tf.reshape(weight, [-1]))[0]))
            for weight in model.weights
            if "kernel" in weight.name
        ),
        default=0,
    )
