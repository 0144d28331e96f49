"""What a model family needs to know about the task it is built for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """The shape of a supervised task as the model sees it (after Transform).

    Attributes:
        name: Task name, e.g. "digits".
        feature_key: Name of the transformed input feature (a dense float vector).
        num_features: Length of that vector.
        image_shape: (height, width, channels) the vector reshapes to, or None if not an image.
        label_key: Name of the integer label feature.
        num_classes: Number of classes of the label.
    """

    name: str
    feature_key: str
    num_features: int
    label_key: str
    num_classes: int
    raw_feature_keys: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.num_features <= 0 or self.num_classes < 2:
            raise ValueError(
                "Expected num_features >= 1 and num_classes >= 2, "
                f"received num_features={self.num_features}, num_classes={self.num_classes}."
            )
        if self.image_shape is not None:
            height, width, channels = self.image_shape
            if height * width * channels != self.num_features:
                raise ValueError(
                    f"Expected image_shape {self.image_shape} to hold num_features="
                    f"{self.num_features} values, it holds {height * width * channels}."
                )
