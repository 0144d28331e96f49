"""Compressor: validate -> rewrite -> validate, from a blessed SavedModel to a device model."""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing
from tfx.utils import path_utils

from components.artifacts import TFLiteModel
from components.compressor import executor
from models import tasks


@component
def Compressor(  # noqa: N802 - TFX component names are classes.
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    examples: InputArtifact[Examples],
    device_model: OutputArtifact[TFLiteModel],
    device_blessing: OutputArtifact[ModelBlessing],
    task: Parameter[str],
    recipes: Parameter[str],
    accuracy_budget: Parameter[float],
    representative_examples: Parameter[int],
) -> None:
    if not model_blessing.get_int_custom_property("blessed"):
        device_blessing.set_int_custom_property("blessed", 0)
        return
    spec = tasks.get_task(task)

    def split_rows(split):
        pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
        return executor.read_examples([pattern], spec.raw_feature_keys, spec.label_key)

    train_features, _ = split_rows("train")
    test_features, test_labels = split_rows("test")
    report = executor.compress(
        path_utils.serving_model_path(model.uri),
        representative=train_features[:representative_examples],
        test_features=test_features,
        test_labels=test_labels,
        recipes=[recipe.strip() for recipe in recipes.split(",") if recipe.strip()],
        accuracy_budget=accuracy_budget,
        output_dir=device_model.uri,
        metadata={
            "labels": [str(label) for label in range(spec.num_classes)],
            "source_model_uri": model.uri,
        },
    )
    device_blessing.set_int_custom_property("blessed", int(report["chosen"] is not None))
