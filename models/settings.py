"""Typed training settings, handed to the TFX entry points through `custom_config`."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models import registry, tasks

# Hyperband is not offered: TFX 1.16's Tuner executor asks the oracle for its `max_trials` best
# trials, and KerasTuner's Hyperband oracle has no max_trials (None), so the Tuner stage fails.
TUNER_ALGORITHMS = ("bayesian", "random")
STRATEGIES = ("mirrored", "one_device", "multi_worker_mirrored", "tpu")
# Compression recipes as data: name -> (training-time rewrite of models.compression, or "" for
# none; TFLite conversion). Conversions: "float" (none), "dynamic_range" (int8 weights),
# "float16" (float16 weights), "int8" (int8 weights and activations calibrated on train rows,
# float input and output), "int8_per_tensor" (the same with one scale per weight tensor, not per
# channel: smaller, and what some accelerators and microcontroller kernels take), "int8_io" (int8
# with int8 input and output, for microcontrollers).
COMPRESSION_RECIPES: dict[str, tuple[str, str]] = {
    "float": ("", "float"),
    "dynamic_range": ("", "dynamic_range"),
    "float16": ("", "float16"),
    "int8": ("", "int8"),
    "int8_per_tensor": ("", "int8_per_tensor"),
    "int8_io": ("", "int8_io"),
    "qat_int8": ("qat", "int8"),
    "pruned_int8": ("prune", "int8"),
    "pruned_qat_int8": ("prune_qat", "int8"),
    "clustered_int8": ("cluster", "int8"),
    "clustered_qat_int8": ("cluster_qat", "int8"),
}
# The pipeline's default: post-training recipes only, which take seconds; each TF-MOT recipe
# fine-tunes and re-exports the model (10-40 s on 2 cores) and is chosen in the config.
DEFAULT_COMPRESSION_RECIPES = ("float", "dynamic_range", "float16", "int8")
# Key of the settings in the Tuner's and Trainer's custom_config.
SETTINGS_KEY = "trainer_settings"


@dataclass(frozen=True)
class TrainerSettings:
    """How a model is searched for and trained.

    Attributes:
        task: Task name (see `models.tasks`); "" takes the family's task.
        family: Model family name (see `models.registry`); "" leaves the choice to the
            pipeline (its default family), which fills it in.
        hyperparameters: Fixed values for some of the family's hyper-parameters; the tuner
            searches the rest, and training without tuning takes the family defaults for them.
        batch_size: Global batch size (split across replicas).
        epochs: Training epochs; the Trainer's step budget is divided evenly among them.
        strategy: "mirrored", "one_device", "multi_worker_mirrored" (the workers of TF_CONFIG,
            e.g. a Vertex AI custom job's replicas) or "tpu" (see `models.strategy`).
        tpu_address: When set, train on the TPU at this address with TPUStrategy.
        tuner: Search algorithm: "bayesian" (Gaussian-process Bayesian optimisation) or "random".
        max_trials: Number of trials of the search.
        tuner_epochs: Epochs each trial trains.
        seed: Seed of weights, shuffling and the search.
    """

    task: str = ""
    family: str = ""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    epochs: int = 20
    strategy: str = "mirrored"
    tpu_address: str = ""
    tuner: str = "bayesian"
    max_trials: int = 10
    tuner_epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.family:
            card = registry.get_card(self.family)
            if not self.task:
                object.__setattr__(self, "task", card.task)
            elif self.task != card.task:
                raise ValueError(
                    f"Expected task {card.task!r} for family {self.family!r} (or none), "
                    f"received {self.task!r}."
                )
        if self.task:
            tasks.get_task(self.task)
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Expected a strategy in {list(STRATEGIES)}, received {self.strategy!r}."
            )
        for name in ("batch_size", "epochs", "max_trials", "tuner_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected {name} >= 1, received {getattr(self, name)}.")
        if self.tuner not in TUNER_ALGORITHMS:
            raise ValueError(
                f"Expected a tuner in {list(TUNER_ALGORITHMS)}, received {self.tuner!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict, as TFX stores `custom_config`."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        values["hyperparameters"] = dict(self.hyperparameters)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainerSettings:
        """Builds settings from a dict, rejecting unknown keys.

        Raises:
            ValueError: For a key that is not a field, or an invalid value.
        """
        return build_from_dict(cls, values, "trainer settings")


@dataclass(frozen=True)
class CompressionSettings:
    """How the device (TFLite) model is made and when it is blessed.

    Attributes:
        recipes: Candidates to build and measure, among `COMPRESSION_RECIPES`.
        accuracy_budget: Largest accuracy drop on the test split, against the SavedModel, that
            a device model may have (absolute: 0.01 is one point).
        representative_examples: Train rows that calibrate the int8 conversions.
        pruning_sparsity: Final share of zero weights of the pruning recipes, in (0, 1).
        clusters: Centroids per weight tensor of the clustering recipes, >= 2.
        fine_tune_steps: Training steps of each fine-tuning phase of a TF-MOT recipe.
        fine_tune_learning_rate: Adam step size of that fine-tuning.
        onnx: Whether the SavedModel is also exported to ONNX (tf2onnx) and checked against
            the SavedModel in onnxruntime.
    """

    recipes: tuple[str, ...] = DEFAULT_COMPRESSION_RECIPES
    accuracy_budget: float = 0.01
    representative_examples: int = 200
    pruning_sparsity: float = 0.5
    clusters: int = 16
    fine_tune_steps: int = 300
    fine_tune_learning_rate: float = 0.001
    onnx: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.recipes, (list, tuple)):
            raise ValueError(f"Expected recipes to be a list, received {self.recipes!r}.")
        object.__setattr__(self, "recipes", tuple(self.recipes))  # TOML gives a list.
        unknown = [recipe for recipe in self.recipes if recipe not in COMPRESSION_RECIPES]
        if not self.recipes or unknown or len(set(self.recipes)) != len(self.recipes):
            raise ValueError(
                f"Expected distinct recipes among {list(COMPRESSION_RECIPES)}, received "
                f"{list(self.recipes)}."
            )
        if not 0 <= self.accuracy_budget <= 1 or self.representative_examples < 1:
            raise ValueError(
                "Expected accuracy_budget in [0, 1] and representative_examples >= 1, received "
                f"{self.accuracy_budget} and {self.representative_examples}."
            )
        if not 0 < self.pruning_sparsity < 1 or self.clusters < 2:
            raise ValueError(
                "Expected pruning_sparsity in (0, 1) and clusters >= 2, received "
                f"{self.pruning_sparsity} and {self.clusters}."
            )
        if self.fine_tune_steps < 1 or self.fine_tune_learning_rate <= 0:
            raise ValueError(
                "Expected fine_tune_steps >= 1 and fine_tune_learning_rate > 0, received "
                f"{self.fine_tune_steps} and {self.fine_tune_learning_rate}."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (a TFX component parameter)."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        values["recipes"] = list(self.recipes)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CompressionSettings:
        """Builds settings from `to_dict`'s output.

        Raises:
            ValueError: For a key that is not a field, or an invalid value.
        """
        return build_from_dict(cls, values, "compression settings")


def build_from_dict(cls, values: Mapping[str, Any], what: str):
    """Builds the dataclass `cls` from a dict, rejecting keys that are not its fields.

    Raises:
        ValueError: For a key that is not a field (naming `what` and the valid keys), or an
            invalid value.
    """
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Expected {what} among {sorted(known)}, received {unknown}.")
    return cls(**values)


_SIMPLE_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def check_field_types(instance) -> None:
    """Checks the dataclass fields annotated bool, int, float, str or Mapping hold that type.

    Raises:
        ValueError: For a field whose value has another type (a bool is not an int here).
    """
    hints = typing.get_type_hints(type(instance))
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        hint = hints[item.name]
        name = getattr(hint, "__name__", "")
        if name in _SIMPLE_TYPES:
            expected = _SIMPLE_TYPES[name]
            wrong = not isinstance(value, expected) or (name != "bool" and isinstance(value, bool))
        elif typing.get_origin(hint) is Mapping:
            name, wrong = "mapping", not isinstance(value, Mapping)
        else:
            continue
        if wrong:
            raise ValueError(
                f"Expected {item.name} to be a {name}, received {value!r} ({type(value).__name__})."
            )
