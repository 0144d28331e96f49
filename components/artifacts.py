"""Artifact types that dlforge's own components produce.

Their type names are `components.<Class>` because the Kubeflow v2 entrypoint imports a custom
artifact class by its type name (see `components/__init__.py`).
"""

from __future__ import annotations

import math

from tfx.types.artifact import Artifact
from tfx.types.value_artifact import ValueArtifact


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


# Views that the Kubeflow Pipelines and Vertex AI consoles render. Their type names are KFP's
# system types: TFX 1.16 compiles an artifact type to an `instanceSchema` whose `title` is the
# type name, KFP records the artifact in ML Metadata under that title, and the console draws
# artifacts of the types `system.Metrics` (scalars from the artifact's metadata),
# `system.HTML` and `system.Markdown` (the file at the artifact's URI), each only when the
# artifact has a `display_name`. The Kubeflow v2 entrypoint imports these classes by the same
# title, through the top-level `system` package.
DISPLAY_NAME = "display_name"


class Metrics(Artifact):
    """Scalar results as custom properties (one float each) and a `display_name`."""

    TYPE_NAME = "system.Metrics"

    def record(self, display_name: str, values: dict[str, float]) -> None:
        """Stores each value as a float custom property, as KFP's console reads them.

        Raises:
            ValueError: If a name is `display_name` or a value is not a finite number.
        """
        self.set_string_custom_property(DISPLAY_NAME, display_name)
        for name, value in values.items():
            if name == DISPLAY_NAME or not math.isfinite(float(value)):
                raise ValueError(
                    f"Expected a metric name other than {DISPLAY_NAME!r} with a finite value, "
                    f"received {name!r}: {value!r}."
                )
            self.set_float_custom_property(name, float(value))


class _Document(ValueArtifact):
    """A text document whose file is the artifact's URI itself (not a file inside it)."""

    def encode(self, value: str) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"Expected the document as str, received {type(value).__name__}.")
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


class Markdown(_Document):
    """A Markdown summary: the file at the URI; `display_name` names it in the console."""

    TYPE_NAME = "system.Markdown"


class HTML(_Document):
    """A self-contained HTML page: the file at the URI; `display_name` names it."""

    TYPE_NAME = "system.HTML"
