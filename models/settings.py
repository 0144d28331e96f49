"""Typed training settings, handed to the TFX entry points through `custom_config`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Hyperband is not offered: TFX 1.16's Tuner executor asks the oracle for its `max_trials` best
# trials, and KerasTuner's Hyperband oracle has no max_trials (None), so the Tuner stage fails.
TUNER_ALGORITHMS = ("bayesian", "random")
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
        for name in ("batch_size", "epochs", "max_trials", "tuner_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected {name} >= 1, received {getattr(self, name)}.")
        if self.tuner not in TUNER_ALGORITHMS:
            raise ValueError(
                f"Expected a tuner in {list(TUNER_ALGORITHMS)}, received {self.tuner!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict, as TFX stores `custom_config`."""
        values = dataclasses.asdict(self)
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
