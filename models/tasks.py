"""The tasks that pipelines train on, as model families see them."""

from __future__ import annotations

from models.data import digits
from models.spec import TaskSpec

DIGITS = TaskSpec(
    name="digits",
    feature_key="pixels_xf",
    num_features=len(digits.PIXEL_KEYS),
    label_key=digits.LABEL_KEY,
    num_classes=digits.NUM_CLASSES,
    raw_feature_keys=digits.PIXEL_KEYS,
    image_shape=digits.IMAGE_SHAPE,
)

TASKS: dict[str, TaskSpec] = {DIGITS.name: DIGITS}


def get_task(name: str) -> TaskSpec:
    """Returns a task by name.

    Raises:
        ValueError: If `name` is unknown; the message lists the known tasks.
    """
    if name not in TASKS:
        raise ValueError(f"Expected a task in {sorted(TASKS)}, received {name!r}.")
    return TASKS[name]
