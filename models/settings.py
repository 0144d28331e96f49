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
STRATEGIES = ("mirrored", "one_device")
COMPRESSION_RECIPES = ("float", "dynamic_range", "float16", "int8")
# Key of the settings in the Tuner's and Trainer's custom_config.
SETTINGS_KEY = "trainer_settings"


@dataclass(frozen=True)
class TrainerSettings:
    """How a model is searched for and trained.

    Attributes:
        task: Task name (see `models.tasks`).
        family: Model family name (see `models.registry`).
        hyperparameters: Fixed values for some of the family's hyper-parameters; the tuner
            searches the rest, and training without tuning takes the family defaults for them.
        batch_size: Global batch size (split across replicas).
        epochs: Training epochs; the Trainer's step budget is divided evenly among them.
        strategy: "mirrored" or "one_device" (see `models.strategy`).
        tpu_address: When set, train on the TPU at this address with TPUStrategy.
        tuner: Search algorithm: "bayesian" (Gaussian-process Bayesian optimisation) or "random".
        max_trials: Number of trials of the search.
        tuner_epochs: Epochs each trial trains.
        seed: Seed of weights, shuffling and the search.
    """

    task: str = "digits"
    family: str = "cnn"
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
        registry.check_family(self.family)
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
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Expected trainer settings among {sorted(known)}, received {unknown}."
            )
        return cls(**values)


@dataclass(frozen=True)
class CompressionSettings:
    """How the device (TFLite) model is made and when it is blessed.

    Attributes:
        recipes: TFLite conversions to try, among `COMPRESSION_RECIPES`.
        accuracy_budget: Largest accuracy drop on the test split, against the SavedModel, that
            a device model may have (absolute: 0.01 is one point).
        representative_examples: Train rows that calibrate the int8 recipe.
    """

    recipes: tuple[str, ...] = COMPRESSION_RECIPES
    accuracy_budget: float = 0.01
    representative_examples: int = 200

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.recipes, (list, tuple)):
            raise ValueError(f"Expected recipes to be a list, received {self.recipes!r}.")
        object.__setattr__(self, "recipes", tuple(self.recipes))  # TOML gives a list.
        unknown = [recipe for recipe in self.recipes if recipe not in COMPRESSION_RECIPES]
        if not self.recipes or unknown:
            raise ValueError(
                f"Expected recipes among {list(COMPRESSION_RECIPES)}, received "
                f"{list(self.recipes)}."
            )
        if not 0 <= self.accuracy_budget <= 1 or self.representative_examples < 1:
            raise ValueError(
                "Expected accuracy_budget in [0, 1] and representative_examples >= 1, received "
                f"{self.accuracy_budget} and {self.representative_examples}."
            )


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
