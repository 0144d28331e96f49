"""The supervised pipelines (digits, co2, ...): wiring of TFX components only."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.anomaly_gate.component import AnomalyGate
from components.artifacts import BaselineStatistics
from components.baseline_gate.component import BaselineGate
from components.compressor.component import Compressor
from components.drift_gate.baseline import LatestBaselineStrategy
from components.drift_gate.component import DriftGate
from components.family_evaluator import executor as family_evaluator_executor
from components.family_evaluator.component import FamilyEvaluator
from components.gx_validator.component import GxValidator
from components.pusher import executor as pusher_executor
from components.tflite_pusher.component import TFLitePusher
from components.tuner.component import Tuner
from models import export, tasks
from models.data import ingest
from models.settings import SETTINGS_KEY
from pipelines.catalog import get_pipeline
from pipelines.config import PipelineConfig
from pipelines.validate import load_suite


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """The Evaluator's metrics on the test split and the thresholds that bless a model."""
    if get_pipeline(config.pipeline).evaluation == "regression":
        return _regression_eval_config(config)
    return _classification_eval_config(config)


def _classification_eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Accuracy on the test split, overall and per label, with the blessing thresholds."""
    label_key = tasks.get_task(config.trainer.task).label_key
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": config.evaluation.min_accuracy}
        ),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.evaluation.max_accuracy_drop},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=label_key,
                prediction_key="probabilities",
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[label_key])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        # Per-label slices hold ~27 test examples each: too few to gate on,
                        # so the thresholds hold for the overall slice only.
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(
                                slicing_specs=[tfma.SlicingSpec()],
                                threshold=accuracy_threshold,
                            )
                        ],
                    ),
                    tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                ]
            )
        ],
    )


def _regression_eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Root mean squared error and mean absolute error on the test split.

    A model is blessed when its error is at most `max_rmse` and not more than `max_error_rise`
    (relative) above the latest blessed model's; whether it beats the naive forecast is the
    BaselineGate's call.
    """
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=tasks.get_task(config.trainer.task).label_key,
                prediction_key=export.FORECAST,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="MeanAbsoluteError"),
                    tfma.MetricConfig(
                        class_name="RootMeanSquaredError",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(
                                upper_bound={"value": config.evaluation.max_rmse}
                            ),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.LOWER_IS_BETTER,
                                relative={"value": config.evaluation.max_error_rise},
                            ),
                        ),
                    ),
                ]
            )
        ],
    )


def family_thresholds(config: PipelineConfig) -> str:
    """The FamilyEvaluator's `thresholds` parameter: the config's bars for the family's metric."""
    names = [item.name for item in dataclasses.fields(family_evaluator_executor.Thresholds)]
    values = {name: getattr(config.evaluation, name) for name in names}
    return json.dumps(
        dataclasses.asdict(family_evaluator_executor.Thresholds(**values)), sort_keys=True
    )


def _absolute(path: str) -> str:
    """A local path made absolute; a URI (gs://, s3://) is kept, abspath would mangle it."""
    return path if "://" in path else os.path.abspath(path)


def create_pipeline(
    config: PipelineConfig,
    schema_file: str | None = None,
    suite_file: str | None = None,
    *,
    pipeline_name: str | None = None,
    pipeline_root: str | None = None,
    local_metadata: bool = True,
    trainer_job: Mapping[str, Any] | None = None,
) -> tfx.dsl.Pipeline:
    """Builds a supervised pipeline: ingest -> validate -> transform -> tune -> train -> evaluate
    -> push the SavedModel; and where the pipeline has a device model, compress -> push the
    TFLite model. A pipeline whose evaluation is "family" (generative and language models) is
    judged by the FamilyEvaluator on Transform's test split instead of TFMA's Evaluator.

    Args:
        config: The run's configuration.
        schema_file: Curated schema of the raw data, with its drift and skew comparators;
            defaults to the pipeline's own.
        suite_file: Great Expectations suite of the raw data (JSON, derived from the schema);
            defaults to the pipeline's own.
        pipeline_name: Defaults to `config.pipeline_name`; Kubeflow needs [a-z0-9-] names.
        pipeline_root: Defaults to `config.pipeline_root`.
        local_metadata: Whether ML Metadata is SQLite at `config.metadata_path` (whose folder is
            created now); False for orchestrators that bring their own.
        trainer_job: Entries of the Trainer's custom_config that run it as a Vertex AI custom
            training job (`pipelines.kubeflow.vertex_training_config`); None trains in the step.

    Returns:
        The TFX pipeline, with caching on.
    """
    entry = get_pipeline(config.pipeline)
    by_family = entry.evaluation == "family"
    schema_file = schema_file or entry.schema_file
    suite_file = suite_file or entry.suite_file
    example_gen = tfx.components.CsvExampleGen(
        input_base=_absolute(config.data_dir),
        input_config=tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name=name, pattern=f"{ingest.SPAN_PREFIX}{{SPAN}}/{name}/*")
                for name in entry.data().SPLIT_NAMES
            ]
        ),
    )
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
    # With the schema, the categorical label gets the value counts its L-infinity comparator needs.
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    # The gates run one after the other, so a run stops at the most basic problem: the schema,
    # then the expectation suite, then drift and skew.
    gx_validator = GxValidator(
        examples=example_gen.outputs["examples"],
        suite=json.dumps(load_suite(suite_file), sort_keys=True, separators=(",", ":")),
    )
    gx_validator.add_upstream_node(anomaly_gate)
    # The latest statistics that passed every gate: those of the previous accepted span.
    previous_statistics = tfx.dsl.Resolver(
        strategy_class=LatestBaselineStrategy
        if local_metadata
        else tfx.dsl.experimental.LatestArtifactStrategy,
        baseline=tfx.dsl.Channel(type=BaselineStatistics),
    ).with_id("previous_span_statistics")
    drift_gate = DriftGate(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        baseline=previous_statistics.outputs["baseline"],
    )
    drift_gate.add_upstream_node(gx_validator)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=entry.preprocessing_fn,
        # The FamilyEvaluator reads the transformed test split (TFMA's Evaluator, the raw one).
        splits_config=tfx.proto.SplitsConfig(
            analyze=["train"],
            transform=["train", "eval", "test"] if by_family else ["train", "eval"],
        ),
    )
    transform.add_upstream_node(anomaly_gate)
    transform.add_upstream_node(gx_validator)
    transform.add_upstream_node(drift_gate)
    custom_config = {SETTINGS_KEY: config.trainer.to_dict()}
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        anomaly_gate,
        gx_validator,
        previous_statistics,
        drift_gate,
        transform,
    ]
    hyperparameters = None
    if config.tune:
        tuner = Tuner(
            tuner_fn="models.entrypoints.tuner_fn",
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            train_args=tfx.proto.TrainArgs(
                splits=["train"], num_steps=config.tuner_steps_per_epoch
            ),
            eval_args=tfx.proto.EvalArgs(splits=["eval"]),
            custom_config=custom_config,
        )
        components.append(tuner)
        hyperparameters = tuner.outputs["best_hyperparameters"]
    trainer_component, trainer_config = tfx.components.Trainer, custom_config
    if trainer_job is not None:
        # The Trainer step starts a Vertex AI custom job that runs run_fn on its replicas.
        trainer_component = tfx.extensions.google_cloud_ai_platform.Trainer
        trainer_config = {**custom_config, **trainer_job}
    trainer = trainer_component(
        run_fn="models.entrypoints.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=trainer_config,
    )
    # A forecaster's final word is the BaselineGate's: a model the Evaluator blessed but the
    # gate refused must not become the baseline of the next run.
    blessings = {}
    if entry.evaluation == "regression":
        blessings = {"producer_component_id": "BaselineGate", "output_key": "blessing"}
    elif by_family:
        blessings = {"producer_component_id": "FamilyEvaluator", "output_key": "blessing"}
    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ModelBlessing, **blessings
        ),
    ).with_id("latest_blessed_model")
    if by_family:
        evaluator = FamilyEvaluator(
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            model=trainer.outputs["model"],
            baseline_model=baseline_resolver.outputs["model"],
            family=config.trainer.family,
            thresholds=family_thresholds(config),
            seed=config.trainer.seed,
        )
    else:
        evaluator = tfx.components.Evaluator(
            examples=example_gen.outputs["examples"],
            example_splits=["test"],
            model=trainer.outputs["model"],
            baseline_model=baseline_resolver.outputs["model"],
            eval_config=eval_config(config),
            # TFMA loads the model in the Evaluator's own process (a Kubeflow step): a bert
            # model's tokenizer calls TF Text ops, which importing its family module registers.
            module_path="models.families.bert" if config.trainer.family == "bert" else None,
        )
    components += [trainer, baseline_resolver, evaluator]
    blessing = evaluator.outputs["blessing"]
    if entry.evaluation == "regression":
        # A forecaster is blessed only if it also beats the seasonal-naive forecast.
        baseline_gate = BaselineGate(
            model_blessing=blessing,
            evaluation=evaluator.outputs["evaluation"],
            examples=example_gen.outputs["examples"],
        )
        blessing = baseline_gate.outputs["blessing"]
        components.append(baseline_gate)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=_absolute(config.serving_dir)
            )
        ),
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
    )
    components.append(pusher)
    if entry.device_model:
        compressor = Compressor(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            examples=example_gen.outputs["examples"],
            transformed_examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            task=config.trainer.task,
            settings=json.dumps(config.compression.to_dict(), sort_keys=True),
            batch_size=config.trainer.batch_size,
        )
        tflite_pusher = TFLitePusher(
            device_model=compressor.outputs["device_model"],
            device_blessing=compressor.outputs["device_blessing"],
            base_directory=_absolute(config.tflite_dir),
        )
        components += [compressor, tflite_pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name or config.pipeline_name,
        pipeline_root=_absolute(pipeline_root or config.pipeline_root),
        components=components,
        enable_cache=True,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.abspath(config.metadata_path)
            )
            if local_metadata
            else None
        ),
        beam_pipeline_args=list(config.beam_args),
    )
