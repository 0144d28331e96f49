"""The registry of model families: family name -> card (what it is) and module (how to build it).

The cards are plain data, so listing families (`dlforge families`) does not import TensorFlow;
the module is imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class FamilyCard:
    """What a model family is, as `dlforge families` shows it.

    Attributes:
        module: Dotted path of the module with the family surface (see `models.families`).
        pipeline: The dlforge pipeline that trains it, e.g. "digits".
        task: Name of the task it is built for (`models.tasks.TASKS`).
        metric: The metric it is judged by on its test split, e.g. "accuracy", "rmse".
        tflite_signature: The serving signature that converts to a builtin-ops TFLite model, or
            "" when none does.
        tflite_note: Why there is no TFLite model, when `tflite_signature` is "".
    """

    module: str
    pipeline: str
    task: str
    metric: str
    tflite_signature: str = ""
    tflite_note: str = ""

    def __post_init__(self) -> None:
        if bool(self.tflite_signature) == bool(self.tflite_note):
            raise ValueError(
                "Expected either a tflite_signature or a tflite_note saying why there is none, "
                f"received {self.tflite_signature!r} and {self.tflite_note!r}."
            )


FAMILIES: dict[str, FamilyCard] = {
    "perceptron": FamilyCard(
        "models.families.perceptron", "digits", "digits", "accuracy", "serving_dense"
    ),
    "mlp": FamilyCard("models.families.mlp", "digits", "digits", "accuracy", "serving_dense"),
    "cnn": FamilyCard("models.families.cnn", "digits", "digits", "accuracy", "serving_dense"),
    "transfer": FamilyCard(
        "models.families.transfer", "digits", "digits", "accuracy", "serving_dense"
    ),
    # Generative families over the digits task's transformed pixels (docs/generative.md).
    "autoencoder": FamilyCard(
        "models.families.autoencoder", "generative", "digits", "mse", "serving_default"
    ),
    "vae": FamilyCard("models.families.vae", "generative", "digits", "elbo", "serving_default"),
    "gan": FamilyCard("models.families.gan", "generative", "digits", "class_coverage", "sample"),
    # Recurrent forecasters of next week's CO2 (docs/forecasting.md); unrolled, so builtin ops.
    "simple_rnn": FamilyCard("models.families.simple_rnn", "co2", "co2", "rmse", "serving_dense"),
    "lstm": FamilyCard("models.families.lstm", "co2", "co2", "rmse", "serving_dense"),
    "gru": FamilyCard("models.families.gru", "co2", "co2", "rmse", "serving_dense"),
    # Agents: their task is an environment of models.rl.environments.ENVIRONMENTS.
    "dqn": FamilyCard("models.rl.dqn", "cartpole", "cartpole", "mean_return", "serving_default"),
    "reinforce": FamilyCard(
        "models.rl.reinforce", "cartpole", "cartpole", "mean_return", "serving_default"
    ),
    "actor_critic": FamilyCard(
        "models.rl.actor_critic", "cartpole", "cartpole", "mean_return", "serving_default"
    ),
    "qlearning": FamilyCard(
        "models.rl.qlearning", "frozenlake", "frozenlake", "success_rate", "serving_default"
    ),
    # Text families over passages of the Python documentation (docs/text.md). A Keras LSTM/GRU
    # over a batch of unknown size lowers to TensorList ops that TFLite builtins cannot express,
    # so the recurrent families convert their one-sequence signature.
    "text_rnn": FamilyCard(
        "models.families.text_rnn", "text", "text", "accuracy", "serving_single"
    ),
    "text_transformer": FamilyCard(
        "models.families.text_transformer", "text", "text", "accuracy", "serving_default"
    ),
    # Tokenises raw passages in the graph (tensorflow_text's FastBertTokenizer, a TF Text op
    # that TFLite builtins do not have); docs/text.md.
    "bert": FamilyCard(
        "models.families.bert",
        "text",
        "text",
        "accuracy",
        tflite_note="WordPiece tokenisation in the graph is a TF Text op, not a TFLite builtin",
    ),
    "char_lstm_lm": FamilyCard(
        "models.families.char_lstm_lm", "text_lm", "text_lm", "perplexity", "serving_single"
    ),
    "transformer_lm": FamilyCard(
        "models.families.transformer_lm", "text_lm", "text_lm", "perplexity", "serving_default"
    ),
}


def family_names(pipeline: str | None = None) -> list[str]:
    """The registered family names, sorted; only those of `pipeline` when given."""
    return sorted(
        name for name, card in FAMILIES.items() if pipeline is None or card.pipeline == pipeline
    )


def check_family(name: str) -> None:
    """Checks that a family is registered, without importing it.

    Raises:
        ValueError: If `name` is not registered; the message lists the valid names.
    """
    if name not in FAMILIES:
        raise ValueError(f"Expected a model family in {family_names()}, received {name!r}.")


def get_card(name: str) -> FamilyCard:
    """Returns the card of a family.

    Raises:
        ValueError: If `name` is not registered; the message lists the valid names.
    """
    check_family(name)
    return FAMILIES[name]


def get_family(name: str) -> ModuleType:
    """Returns the module of a model family.

    Raises:
        ValueError: If `name` is not registered; the message lists the valid names.
    """
    return importlib.import_module(get_card(name).module)


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
