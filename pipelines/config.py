"""Typed configuration of a pipeline run, loaded at one point from a TOML file and flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.settings import CompressionSettings, TrainerSettings, check_field_types

PIPELINES = ("digits",)
DEFAULT_HOME = "dlforge_home"


class ConfigError(ValueError):
    """A configuration file or value is not what dlforge expects."""


@dataclass(frozen=True)
class EvaluationConfig:
    """When the Evaluator blesses a model.

    Attributes:
        min_accuracy: Lowest accuracy on the test split that is blessed.
        max_accuracy_drop: Largest accuracy drop against the latest blessed model that is still
            blessed (absolute, e.g. 0.01 is one point).
    """

    min_accuracy: float = 0.95
    max_accuracy_drop: float = 0.01

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0 <= self.min_accuracy <= 1 or not 0 <= self.max_accuracy_drop <= 1:
            raise ConfigError(
                "Expected min_accuracy and max_accuracy_drop in [0, 1], received "
                f"{self.min_accuracy} and {self.max_accuracy_drop}."
            )


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a pipeline run needs.

    Attributes:
        pipeline: Which pipeline ("digits").
        home: Folder of the data, pipeline root, ML Metadata, pushed models and run summaries.
        data_path: A CSV file or folder of them to ingest as the next span of raw data before
            the run; empty to use the data already in the home (the embedded data set at first).
        tune: Whether the Tuner searches hyper-parameters before training.
        train_steps: Trainer steps in all.
        tuner_steps_per_epoch: Steps of one epoch of a tuner trial.
        data_seed: Seed of the train/eval/test split of the embedded data.
        beam_args: Apache Beam pipeline arguments of the Beam-based stages.
        trainer: Model family, search and training settings.
        evaluation: Blessing thresholds.
        compression: How the device (TFLite) model is made and blessed.
    """

    pipeline: str = "digits"
    home: str = DEFAULT_HOME
    data_path: str = ""
    tune: bool = True
    train_steps: int = 600
    tuner_steps_per_epoch: int = 20
    data_seed: int = 0
    beam_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    compression: CompressionSettings = field(default_factory=CompressionSettings)

    def __post_init__(self) -> None:
        check_field_types(self)
        if not all(isinstance(arg, str) for arg in self.beam_args):
            raise ConfigError(f"Expected beam_args to be strings, received {self.beam_args!r}.")
        if self.pipeline not in PIPELINES:
            raise ConfigError(
                f"Expected a pipeline in {list(PIPELINES)}, received {self.pipeline!r}."
            )
        for name in ("train_steps", "tuner_steps_per_epoch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Expected {name} >= 1, received {getattr(self, name)}.")

    @property
    def pipeline_name(self) -> str:
        """One pipeline (and one line of blessed models) per pipeline and model family."""
        return f"{self.pipeline}_{self.trainer.family}"

    @property
    def model_name(self) -> str:
        """The model's name under TF Serving."""
        return self.pipeline_name

    @property
    def data_dir(self) -> str:
        return os.path.join(self.home, "data", self.pipeline)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.home, "pipeline_root", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.home, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.home, "serving", self.model_name)

    @property
    def tflite_dir(self) -> str:
        return os.path.join(self.home, "tflite", self.model_name)

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.home, "runs")


def _build(cls, values: Mapping[str, Any], where: str):
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {unknown} in {where}; expected keys among {sorted(known)}."
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid {where}: {error}") from error


def from_mapping(values: Mapping[str, Any], where: str = "config") -> PipelineConfig:
    """Builds a PipelineConfig from nested dicts (`[trainer]` and `[evaluation]` tables).

    Raises:
        ConfigError: For an unknown key or an invalid value; the message names it.
    """
    values = dict(values)
    sections = {}
    sections_types = (
        ("trainer", TrainerSettings),
        ("evaluation", EvaluationConfig),
        ("compression", CompressionSettings),
    )
    for name, cls in sections_types:
        table = values.pop(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"Expected [{name}] in {where} to be a table, received {table!r}.")
        sections[name] = _build(cls, table, f"[{name}] of {where}")
    if "beam_args" in values:
        if not isinstance(values["beam_args"], list):
            raise ConfigError(
                f"Expected beam_args in {where} to be a list of strings, "
                f"received {values['beam_args']!r}."
            )
        values["beam_args"] = tuple(values["beam_args"])
    return _build(PipelineConfig, {**values, **sections}, where)


def load(path: str | None, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Loads a TOML config file (or the defaults) and applies overrides on top.

    Args:
        path: A TOML file, or None for the defaults.
        overrides: Values set from the command line, in the same nested layout as the file.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: If the file cannot be read or parsed, or a key or value is invalid.
    """
    import tomli

    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                values = tomli.load(handle)
        except OSError as error:
            raise ConfigError(f"Cannot read config file {path}: {error.strerror}.") from error
        except tomli.TOMLDecodeError as error:
            raise ConfigError(f"Expected a TOML config file at {path}: {error}.") from error
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping):
            table = values.get(key, {})
            if not isinstance(table, Mapping):
                raise ConfigError(f"Expected [{key}] in {path} to be a table, received {table!r}.")
            values[key] = {**table, **value}
        else:
            values[key] = value
    return from_mapping(values, where=path or "config")
