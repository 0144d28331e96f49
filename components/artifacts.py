"""Artifact types that dlforge's own components produce.

Their type names are `components.<Class>` because the Kubeflow v2 entrypoint imports a custom
artifact class by its type name (see `components/__init__.py`).
"""

from __future__ import annotations

from tfx.types.artifact import Artifact


class ValidationReport(Artifact):
    """The verdict of a data gate: `report.json` under the artifact's URI."""

    TYPE_NAME = "components.ValidationReport"


class BaselineStatistics(Artifact):
    """Statistics of a span's train split that passed every data gate: `Split-train/
    FeatureStats.pb` under the URI, the drift baseline of the next run."""

    TYPE_NAME = "components.BaselineStatistics"


class TFLiteModel(Artifact):
    """A device model: `model.tflite`, `metadata.json` and `report.json` under the URI."""

    TYPE_NAME = "components.TFLiteModel"


class DeviceBlessing(Artifact):
    """Whether the Compressor blessed a device model (custom property `blessed`).

    Not a `ModelBlessing`: a query for the latest blessed ModelBlessing (the Evaluator's
    baseline resolver) must not find a device model's blessing, which names no model.
    """

    TYPE_NAME = "components.DeviceBlessing"
