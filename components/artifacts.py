"""Artifact types that dlforge's own components produce."""

from __future__ import annotations

from tfx.types.artifact import Artifact


class ValidationReport(Artifact):
    """The verdict of a data gate: `report.json` under the artifact's URI."""

    TYPE_NAME = "dlforge.ValidationReport"


class TFLiteModel(Artifact):
    """A device model: `model.tflite`, `metadata.json` and `report.json` under the URI."""

    TYPE_NAME = "dlforge.TFLiteModel"
