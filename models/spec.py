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
        label_key: Name of the label feature: an integer class id, or a float target.
        num_classes: Number of classes of the label; 0 for a regression task.
        kind: "classification" or "regression" (a float target, the model outputs a forecast).
        sequence_length: For a feature that is a sequence of values in time order (oldest
            first), its number of time steps; None otherwise.
        vocabulary_size: For a feature of token ids, how many ids there are (0 pads), so ids are
            in [0, vocabulary_size); None for a feature of values.
    """

    name: str
    feature_key: str
    num_features: int
    label_key: str
    num_classes: int
    raw_feature_keys: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] | None = None
    vocabulary_size: int | None = None
    kind: str = "classification"
    sequence_length: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ValueError(
                f"Expected a kind in ['classification', 'regression'], received {self.kind!r}."
            )
        regression = self.kind == "regression"
        if self.num_features <= 0 or (
            self.num_classes != 0 if regression else self.num_classes < 2
        ):
            expected = "num_classes 0" if regression else "num_classes >= 2"
            raise ValueError(
                f"Expected num_features >= 1 and, for a {self.kind} task, {expected}, "
                f"received num_features={self.num_features}, num_classes={self.num_classes}."
            )
        if self.sequence_length is not None and (
            self.sequence_length < 1 or self.num_features % self.sequence_length
        ):
            raise ValueError(
                f"Expected a sequence_length >= 1 that divides num_features={self.num_features}, "
                f"received {self.sequence_length}."
            )
        if self.vocabulary_size is not None and self.vocabulary_size < 2:
            raise ValueError(
                f"Expected a vocabulary_size >= 2 (padding and one token), received "
                f"{self.vocabulary_size}."
            )
        if self.image_shape is not None:
            height, width, channels = self.image_shape
            if height * width * channels != self.num_features:
                raise ValueError(
                    f"Expected image_shape {self.image_shape} to hold num_features="
                    f"{self.num_features} values, it holds {height * width * channels}."
                )
