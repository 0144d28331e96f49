"""The registry of model families: family name -> module with the family surface."""

from __future__ import annotations

import importlib
from types import ModuleType

# Module paths, imported on first use so that listing names does not import TensorFlow.
FAMILIES: dict[str, str] = {
    "perceptron": "models.families.perceptron",
    "mlp": "models.families.mlp",
    "cnn": "models.families.cnn",
}


def family_names() -> list[str]:
    """The registered family names, sorted."""
    return sorted(FAMILIES)


def check_family(name: str) -> None:
    """Checks that a family is registered, without importing it.

    Raises:
        ValueError: If `name` is not registered; the message lists the valid names.
    """
    if name not in FAMILIES:
        raise ValueError(f"Expected a model family in {family_names()}, received {name!r}.")


def get_family(name: str) -> ModuleType:
    """Returns the module of a model family.

    Raises:
        ValueError: If `name` is not registered; the message lists the valid names.
    """
    check_family(name)
    return importlib.import_module(FAMILIES[name])


def make_hyperparameters(family: str, overrides: dict | None = None):
    """Returns KerasTuner HyperParameters holding `overrides` as fixed values.

    The family's search space is built once on a scratch copy to check that every override names
    one of its hyper-parameters.

    Raises:
        ValueError: If an override names no hyper-parameter of the family.
    """
    import keras_tuner

    module = get_family(family)
    known = keras_tuner.HyperParameters()
    module.search_space(known)
    valid = sorted(known.values)
    unknown = sorted(set(overrides or {}) - set(valid))
    if unknown:
        raise ValueError(
            f"Expected hyper-parameters of family {family!r} among {valid}, received {unknown}."
        )
    hyperparameters = keras_tuner.HyperParameters()
    for name, value in (overrides or {}).items():
        hyperparameters.Fixed(name, value)
    return hyperparameters
