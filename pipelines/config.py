"""Typed configuration of a pipeline run, loaded at one point from a TOML file and flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models import registry
from models.rl.settings import AgentSettings
from models.settings import CompressionSettings, TrainerSettings, check_field_types
from pipelines import catalog

PIPELINES = tuple(catalog.PIPELINES)
# Metrics of families that have no validation objective to search on: a GAN's two losses chase
# each other (models.entrypoints.objective).
UNTUNABLE_METRICS = ("class_coverage",)
DEFAULT_HOME = "dlforge_home"


class ConfigError(ValueError):
    """A configuration file or value is not what dlforge expects."""


@dataclass(frozen=True)
class EvaluationConfig:
    """When the Evaluator blesses a model.

    Attributes:
        min_accuracy: Lowest accuracy on the test split that is blessed; 0 takes the pipeline's
            own (`pipelines.catalog`: digits 0.95, text 0.5).
        max_accuracy_drop: Largest accuracy drop against the latest blessed model that is still
            blessed (absolute, e.g. 0.01 is one point).
        max_rmse: Regression: highest root mean squared error on the test split that is
            blessed, in the target's units (co2: ppm; its seasonal-naive forecast has 1.87).
        max_error_rise: Regression, autoencoders and language models: largest rise of the root
            mean squared error, the reconstruction MSE or the perplexity against the latest
            blessed model's that is still blessed (relative, e.g. 0.05 is 5%).
        max_reconstruction_ratio: Autoencoder: highest test reconstruction MSE, as a share of
            that of always answering the train split's mean image, computed in the same run.
        min_elbo_gain: VAE: nats per image by which the test ELBO must exceed the
            log-likelihood of one Gaussian around the train split's mean image (a VAE that
            ignores its code), computed in the same run.
        max_elbo_drop: VAE: largest drop of the test ELBO below the latest blessed model's, nats.
        min_classes_covered: GAN: fewest digit classes that a digits classifier (trained in the
            run) must give at least 5% of the generated images.
        min_mean_confidence: GAN: lowest mean top probability of that classifier on them.
        max_coverage_drop: GAN: most classes the coverage may lose against the latest blessed
            model.
        max_perplexity_ratio: Language model: highest test perplexity, as a share of the
            perplexity of the train split's character frequencies (the unigram model), computed
            in the same run.
    """

    min_accuracy: float = 0.0
    max_accuracy_drop: float = 0.01
    max_rmse: float = 1.0
    max_error_rise: float = 0.05
    max_reconstruction_ratio: float = 0.5
    min_elbo_gain: float = 0.0
    max_elbo_drop: float = 2.0
    min_classes_covered: int = 8
    min_mean_confidence: float = 0.5
    max_coverage_drop: int = 1
    max_perplexity_ratio: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0 <= self.min_accuracy <= 1 or not 0 <= self.max_accuracy_drop <= 1:
            raise ConfigError(
                "Expected min_accuracy and max_accuracy_drop in [0, 1], received "
                f"{self.min_accuracy} and {self.max_accuracy_drop}."
            )
        if self.max_rmse <= 0 or self.max_error_rise < 0:
            raise ConfigError(
                "Expected max_rmse > 0 and max_error_rise >= 0, received "
                f"{self.max_rmse} and {self.max_error_rise}."
            )
        for name in (
            "max_reconstruction_ratio",
            "min_elbo_gain",
            "max_elbo_drop",
            "max_coverage_drop",
            "max_perplexity_ratio",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"Expected {name} >= 0, received {getattr(self, name)}.")
        if not 0 <= self.min_classes_covered <= 10 or not 0 <= self.min_mean_confidence <= 1:
            raise ConfigError(
                "Expected min_classes_covered in 0..10 and min_mean_confidence in [0, 1], "
                f"received {self.min_classes_covered} and {self.min_mean_confidence}."
            )


@dataclass(frozen=True)
class StageResources:
    """What one stage's container gets on Kubeflow Pipelines or Vertex AI.

    A value left at 0 (or "") leaves it to the orchestrator's default.

    Attributes:
        cpu_limit: CPU cores the container may use.
        memory_limit: Memory the container may use, in GB.
        cpu_request: CPU cores reserved for it (Kubeflow; Vertex AI sizes by the limits).
        memory_request: Memory reserved for it, in GB.
        accelerator: Accelerator type: on Vertex AI e.g. "NVIDIA_TESLA_T4" or "TPU_V3", on
            Kubeflow the Kubernetes resource name, e.g. "nvidia.com/gpu".
        accelerator_count: How many of them; at least 1 when `accelerator` is set.
    """

    cpu_limit: float = 0.0
    memory_limit: float = 0.0
    cpu_request: float = 0.0
    memory_request: float = 0.0
    accelerator: str = ""
    accelerator_count: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        for kind in ("cpu", "memory"):
            request, limit = getattr(self, f"{kind}_request"), getattr(self, f"{kind}_limit")
            if request < 0 or limit < 0 or (request and limit and request > limit):
                raise ConfigError(
                    f"Expected 0 <= {kind}_request <= {kind}_limit (0: the orchestrator's "
                    f"default), received {request} and {limit}."
                )
        if bool(self.accelerator) != (self.accelerator_count > 0) or self.accelerator_count < 0:
            raise ConfigError(
                "Expected an accelerator type with accelerator_count >= 1, or neither, received "
                f"{self.accelerator!r} and {self.accelerator_count}."
            )


# Beam arguments a runner cannot start without, checked when the config is loaded.
REQUIRED_BEAM_ARGS = {
    "DataflowRunner": ("--project", "--region", "--temp_location"),
    "FlinkRunner": ("--flink_master",),
}


@dataclass(frozen=True)
class VertexTrainingConfig:
    """The Trainer as a Vertex AI custom training job, in a compiled pipeline.

    The Trainer step then starts a custom job that runs `run_fn` on `replicas` machines of the
    pipeline image; Vertex AI sets TF_CONFIG in each (pool 0 is the chief). Pair it with the
    trainer's strategy: "multi_worker_mirrored" for more than one replica, "tpu" for a TPU.

    Attributes:
        project: Google Cloud project of the job; empty keeps training in the pipeline step.
        region: Its region, e.g. "europe-west4".
        machine_type: Machine of every replica, e.g. "n1-standard-8"; "cloud-tpu" for a TPU.
        accelerator: e.g. "NVIDIA_TESLA_T4", or "TPU_V2" / "TPU_V3"; empty for none.
        accelerator_count: Accelerators per replica (8 for a TPU_V2/V3 board).
        replicas: Machines in all: one chief and `replicas - 1` workers.
    """

    project: str = ""
    region: str = ""
    machine_type: str = "n1-standard-8"
    accelerator: str = ""
    accelerator_count: int = 0
    replicas: int = 1

    def __post_init__(self) -> None:
        check_field_types(self)
        if bool(self.project) != bool(self.region):
            raise ConfigError(
                "Expected both project and region for Vertex AI training, or neither, received "
                f"{self.project!r} and {self.region!r}."
            )
        if self.replicas < 1 or not self.machine_type:
            raise ConfigError(
                "Expected replicas >= 1 and a machine_type, received "
                f"{self.replicas} and {self.machine_type!r}."
            )
        if bool(self.accelerator) != (self.accelerator_count > 0) or self.accelerator_count < 0:
            raise ConfigError(
                "Expected an accelerator type with accelerator_count >= 1, or neither, received "
                f"{self.accelerator!r} and {self.accelerator_count}."
            )


@dataclass(frozen=True)
class KubeflowConfig:
    """How a compiled (Kubeflow Pipelines or Vertex AI) run is sized and where Beam runs.

    Attributes:
        beam_args: Beam arguments of the compiled pipeline's Beam stages, in place of the local
            `beam_args`; empty keeps those (DirectRunner inside each stage's container). E.g.
            `--runner=DataflowRunner`, `--project`, `--region`, `--temp_location`; or
            `--runner=FlinkRunner`, `--flink_master`, `--environment_type=EXTERNAL`.
        resources: Stage name (e.g. "Trainer") -> its container's resources; "default" applies
            to every stage not named.
        vertex_training: Whether and how the Trainer runs as a Vertex AI custom job.
    """

    beam_args: tuple[str, ...] = ()
    resources: Mapping[str, StageResources] = field(default_factory=dict)
    vertex_training: VertexTrainingConfig = field(default_factory=VertexTrainingConfig)

    def __post_init__(self) -> None:
        check_field_types(self)
        if not all(isinstance(arg, str) for arg in self.beam_args):
            raise ConfigError(f"Expected beam_args to be strings, received {self.beam_args!r}.")
        given = {arg.split("=", 1)[0] for arg in self.beam_args}
        runners = [arg.split("=", 1)[1] for arg in self.beam_args if arg.startswith("--runner=")]
        for runner in runners:
            missing = [name for name in REQUIRED_BEAM_ARGS.get(runner, ()) if name not in given]
            if missing:
                raise ConfigError(
                    f"Expected beam_args for {runner} to set {missing} (as --name=value), "
                    f"received {list(self.beam_args)}."
                )
        wrong = [
            name for name, item in self.resources.items() if not isinstance(item, StageResources)
        ]
        if wrong:
            raise ConfigError(f"Expected resources of {wrong} to be StageResources tables.")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a pipeline run needs.

    Attributes:
        pipeline: Which pipeline (`pipelines.catalog.PIPELINES`).
        home: Folder of the data, pipeline root, ML Metadata, pushed models and run summaries.
        data_path: A CSV file or folder of them to ingest as the next span of raw data before
            the run; empty to use the data already in the home (the embedded data set at first).
        tune: Whether the Tuner searches hyper-parameters before training.
        train_steps: Trainer steps in all.
        tuner_steps_per_epoch: Steps of one epoch of a tuner trial.
        data_seed: Seed of the train/eval/test split of the embedded data.
        beam_args: Apache Beam pipeline arguments of the Beam-based stages.
        trainer: Model family, search and training settings; with no family, the pipeline's
            default family.
        evaluation: Blessing thresholds.
        compression: How the device (TFLite) model is made and blessed.
        kubeflow: Beam runner and per-stage resources of a compiled run.
        agent: Budget, seeds, evaluation and hyper-parameters of an agent (the cartpole and
            frozenlake pipelines; the agent is `trainer.family` unless `agent.agent` names one).
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
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)
    agent: AgentSettings = field(default_factory=AgentSettings)

    def __post_init__(self) -> None:
        check_field_types(self)
        if not all(isinstance(arg, str) for arg in self.beam_args):
            raise ConfigError(f"Expected beam_args to be strings, received {self.beam_args!r}.")
        if self.pipeline not in PIPELINES:
            raise ConfigError(
                f"Expected a pipeline in {list(PIPELINES)}, received {self.pipeline!r}."
            )
        if not self.evaluation.min_accuracy:
            entry = catalog.get_pipeline(self.pipeline)
            evaluation = dataclasses.replace(self.evaluation, min_accuracy=entry.min_accuracy)
            object.__setattr__(self, "evaluation", evaluation)
        if not self.trainer.family:
            family = catalog.get_pipeline(self.pipeline).default_family
            trainer = dataclasses.replace(self.trainer, family=family)
            object.__setattr__(self, "trainer", trainer)
        card = registry.get_card(self.trainer.family)
        if card.pipeline != self.pipeline:
            raise ConfigError(
                f"Expected a model family of pipeline {self.pipeline!r} among "
                f"{registry.family_names(self.pipeline)}, received {self.trainer.family!r} "
                f"(a family of pipeline {card.pipeline!r})."
            )
        if self.tune and card.metric in UNTUNABLE_METRICS:
            raise ConfigError(
                f"Expected tune off for model family {self.trainer.family!r}: it has no "
                f"validation objective to search on (it is judged by {card.metric!r}); run it "
                "with --no-tune (or tune = false)."
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
        ("agent", AgentSettings),
    )
    for name, cls in sections_types:
        table = values.pop(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"Expected [{name}] in {where} to be a table, received {table!r}.")
        sections[name] = _build(cls, table, f"[{name}] of {where}")
    if "kubeflow" in values:
        sections["kubeflow"] = _kubeflow_config(values.pop("kubeflow"), where)
    if "beam_args" in values:
        if not isinstance(values["beam_args"], list):
            raise ConfigError(
                f"Expected beam_args in {where} to be a list of strings, "
                f"received {values['beam_args']!r}."
            )
        values["beam_args"] = tuple(values["beam_args"])
    return _build(PipelineConfig, {**values, **sections}, where)


def _kubeflow_config(table: Any, where: str) -> KubeflowConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"Expected [kubeflow] in {where} to be a table, received {table!r}.")
    values = dict(table)
    beam_args = values.get("beam_args", [])
    if not isinstance(beam_args, (list, tuple)):
        raise ConfigError(
            f"Expected beam_args of [kubeflow] in {where} to be a list of strings, "
            f"received {beam_args!r}."
        )
    values["beam_args"] = tuple(beam_args)
    resources = values.get("resources", {})
    if not isinstance(resources, Mapping):
        raise ConfigError(
            f"Expected [kubeflow.resources] in {where} to be a table, received {resources!r}."
        )
    stages = {}
    for stage, stage_table in resources.items():
        if not isinstance(stage_table, Mapping):
            raise ConfigError(
                f"Expected [kubeflow.resources.{stage}] in {where} to be a table, "
                f"received {stage_table!r}."
            )
        stages[stage] = _build(
            StageResources, stage_table, f"[kubeflow.resources.{stage}] of {where}"
        )
    values["resources"] = stages
    if "vertex_training" in values:
        training = values["vertex_training"]
        if not isinstance(training, Mapping):
            raise ConfigError(
                f"Expected [kubeflow.vertex_training] in {where} to be a table, "
                f"received {training!r}."
            )
        values["vertex_training"] = _build(
            VertexTrainingConfig, training, f"[kubeflow.vertex_training] of {where}"
        )
    return _build(KubeflowConfig, values, f"[kubeflow] of {where}")


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
