"""The tasks that pipelines train on, as model families see them."""

from __future__ import annotations

from models import text_features
from models.data import co2, digits, text
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

# Classify a passage of the Python documentation by chapter, from its word ids.
TEXT = TaskSpec(
    name="text",
    feature_key=text_features.TOKENS_KEY,
    num_features=text_features.SEQUENCE_LENGTH,
    label_key=text.LABEL_KEY,
    num_classes=text.NUM_CLASSES,
    raw_feature_keys=(text.TEXT_KEY,),
    vocabulary_size=text_features.TOKEN_ID_COUNT,
)
# Predict each next character of the same passages: the "label" is the input shifted by one,
# so the classes are the character ids.
TEXT_LM = TaskSpec(
    name="text_lm",
    feature_key=text_features.CHARS_KEY,
    num_features=text_features.CHAR_SEQUENCE_LENGTH,
    label_key=text_features.NEXT_CHARS_KEY,
    num_classes=text_features.CHAR_ID_COUNT,
    raw_feature_keys=(text.TEXT_KEY,),
    vocabulary_size=text_features.CHAR_ID_COUNT,
)

# Forecast next week's CO2 (ppm) from the 52 weeks before it.
CO2 = TaskSpec(
    name="co2",
    feature_key="lags_xf",
    num_features=co2.LOOKBACK,
    label_key=co2.LABEL_KEY,
    num_classes=0,
    raw_feature_keys=co2.FEATURE_KEYS,
    kind="regression",
    sequence_length=co2.LOOKBACK,
)

TASKS: dict[str, TaskSpec] = {
    DIGITS.name: DIGITS,
    TEXT.name: TEXT,
    TEXT_LM.name: TEXT_LM,
    CO2.name: CO2,
}


def get_task(name: str):
    """Returns a task by name: a TaskSpec, or for an agent its environment's EnvironmentSpec.

    Raises:
        ValueError: If `name` is unknown; the message lists the known tasks.
    """
    if name in TASKS:
        return TASKS[name]
    # Imported here: listing and checking supervised tasks needs no gymnasium.
    from models.rl import environments

    if name in environments.ENVIRONMENTS:
        return environments.ENVIRONMENTS[name]
    known = sorted([*TASKS, *environments.ENVIRONMENTS])
    raise ValueError(f"Expected a task in {known}, received {name!r}.")
