"""The digits pipeline: wiring of TFX components only."""

from __future__ import annotations

import os

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.anomaly_gate.component import AnomalyGate
from components.compressor.component import Compressor
from components.pusher import executor as pusher_executor
from components.tflite_pusher.component import TFLitePusher
from models.data import digits, ingest
from models.settings import SETTINGS_KEY
from pipelines.config import PipelineConfig

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schemas", "digits", "schema.pbtxt")


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Accuracy on the test split, overall and per label, with the blessing thresholds."""
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
                label_key=digits.LABEL_KEY,
                prediction_key="probabilities",
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[digits.LABEL_KEY])],
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


def _absolute(path: str) -> str:
    """A local path made absolute; a URI (gs://, s3://) is kept, abspath would mangle it."""
    return path if "://" in path else os.path.abspath(path)


def create_pipeline(
    config: PipelineConfig,
    schema_file: str = SCHEMA_FILE,
    *,
    pipeline_name: str | None = None,
    pipeline_root: str | None = None,
    local_metadata: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the digits pipeline: ingest -> validate -> transform -> tune -> train -> evaluate
    -> push the SavedModel; compress -> push the TFLite model.

    Args:
        config: The run's configuration.
        schema_file: Curated schema of the raw data.
        pipeline_name: Defaults to `config.pipeline_name`; Kubeflow needs [a-z0-9-] names.
        pipeline_root: Defaults to `config.pipeline_root`.
        local_metadata: Whether ML Metadata is SQLite at `config.metadata_path` (whose folder is
            created now); False for orchestrators that bring their own.

    Returns:
        The TFX pipeline, with caching on.
    """
    example_gen = tfx.components.CsvExampleGen(
        input_base=_absolute(config.data_dir),
        input_config=tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name=name, pattern=f"{ingest.SPAN_PREFIX}{{SPAN}}/{name}/*")
                for name in digits.SPLIT_NAMES
            ]
        ),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
    )
    transform.add_upstream_node(anomaly_gate)
    custom_config = {SETTINGS_KEY: config.trainer.to_dict()}
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        anomaly_gate,
        transform,
    ]
    hyperparameters = None
    if config.tune:
        tuner = tfx.components.Tuner(
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
    trainer = tfx.components.Trainer(
        run_fn="models.entrypoints.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom_config,
    )
    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        example_splits=["test"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config(config),
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=_absolute(config.serving_dir)
            )
        ),
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
    )
    compressor = Compressor(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        task=config.trainer.task,
        recipes=",".join(config.compression.recipes),
        accuracy_budget=config.compression.accuracy_budget,
        representative_examples=config.compression.representative_examples,
    )
    tflite_pusher = TFLitePusher(
        device_model=compressor.outputs["device_model"],
        device_blessing=compressor.outputs["device_blessing"],
        base_directory=_absolute(config.tflite_dir),
    )
    components += [trainer, baseline_resolver, evaluator, pusher, compressor, tflite_pusher]
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
