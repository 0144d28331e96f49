"""Compressor: validate -> rewrite -> validate, from a blessed SavedModel to a device model.

`metrics` (each candidate's accuracy, size and latency, as KFP `system.Metrics`) and `summary`
(the table and the size/accuracy plot in one HTML page) are for the Kubeflow and Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import json

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing, TransformGraph
from tfx.utils import path_utils

from components import storage
from components.artifacts import DISPLAY_NAME, HTML, DeviceBlessing, Metrics, TFLiteModel
from components.compressor import executor
from models import tasks
from models.settings import CompressionSettings


@component
def Compressor(  # noqa: N802 - TFX component names are classes.
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    examples: InputArtifact[Examples],
    transformed_examples: InputArtifact[Examples],
    transform_graph: InputArtifact[TransformGraph],
    device_model: OutputArtifact[TFLiteModel],
    device_blessing: OutputArtifact[DeviceBlessing],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[HTML],
    task: Parameter[str],
    settings: Parameter[str],
    batch_size: Parameter[int],
) -> None:
    summary.set_string_custom_property(DISPLAY_NAME, "device model candidates")
    if not model_blessing.get_int_custom_property("blessed"):
        device_blessing.set_int_custom_property("blessed", 0)
        metrics.record("device model candidates", {})
        storage.write_text(
            summary.uri,
            executor.skipped_summary_html("Not compressed: the Evaluator did not bless the model."),
        )
        return
    spec = tasks.get_task(task)
    compression_settings = CompressionSettings.from_dict(json.loads(settings))

    def split_pattern(artifact, split):
        return storage.join(artifact_utils.get_split_uri([artifact], split), "*")

    train_features, _ = executor.read_examples(
        [split_pattern(examples, "train")], spec.raw_feature_keys, spec.label_key
    )
    test_features, test_labels = executor.read_examples(
        [split_pattern(examples, "test")], spec.raw_feature_keys, spec.label_key
    )
    report = executor.compress(
        path_utils.serving_model_path(model.uri),
        settings=compression_settings,
        representative=train_features[: compression_settings.representative_examples],
        test_features=test_features,
        test_labels=test_labels,
        output_dir=device_model.uri,
        metadata={
            "labels": [str(label) for label in range(spec.num_classes)],
            "source_model_uri": model.uri,
        },
        spec=spec,
        training_data=executor.TrainingData(
            transform_graph_dir=transform_graph.uri,
            train_file_patterns=(split_pattern(transformed_examples, "train"),),
            batch_size=batch_size,
        ),
        summary_path=summary.uri,
    )
    metrics.record("device model candidates", executor.metric_values(report))
    device_blessing.set_int_custom_property("blessed", int(report["chosen"] is not None))
