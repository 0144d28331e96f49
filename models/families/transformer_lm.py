"""Decoder-only transformer language model over characters: token and learned position
embeddings, causally masked self-attention blocks, a softmax over the next character."""

from __future__ import annotations

from models import text_models
from models.classifier import OPTIMIZERS
from models.keras_lib import keras
from models.spec import TaskSpec


def make_model(
    spec: TaskSpec,
    *,
    embedding_dim: int = 64,
    num_heads: int = 4,
    num_layers: int = 2,
    feed_forward_dim: int = 256,
    dropout: float = 0.1,
    optimizer: str = "adam",
    learning_rate: float = 2e-3,
) -> keras.Model:
    """Builds a compiled decoder-only transformer language model over character ids.

    Each position attends to itself and the positions before it that are not padding, so the
    prediction at position t depends on ids 0..t only.

    Args:
        spec: A language-model task (ids in, the next ids as labels, `spec.vocabulary_size` set).
        embedding_dim: Width of the embeddings and of every block; divisible by `num_heads`.
        num_heads: Attention heads per block.
        num_layers: Number of decoder blocks, >= 1.
        feed_forward_dim: Hidden width of each block's feed-forward network.
        dropout: Dropout rate in the blocks, in [0, 1).
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.

    Returns:
        A compiled model mapping ids [batch, length] to next-id probabilities
        [batch, length, spec.num_classes], with a perplexity metric.

    Raises:
        ValueError: For a value outside the ranges above.
    """
    if num_layers < 1 or num_heads < 1 or feed_forward_dim < 1:
        raise ValueError(
            "Expected num_layers, num_heads and feed_forward_dim >= 1, received "
            f"{num_layers}, {num_heads} and {feed_forward_dim}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    inputs = text_models.token_inputs(spec)
    mask = text_models.token_mask(inputs)
    hidden = text_models.TokenAndPositionEmbedding(
        spec.vocabulary_size, spec.num_features, embedding_dim, name="embedding"
    )(inputs)
    for index in range(num_layers):
        hidden = text_models.TransformerBlock(
            embedding_dim, num_heads, feed_forward_dim, dropout, causal=True, name=f"block_{index}"
        )(hidden, mask)
    return text_models.finish_language_model(
        inputs,
        hidden,
        spec,
        name="transformer_lm",
        optimizer=optimizer,
        learning_rate=learning_rate,
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the transformer language model, with their defaults."""
    return {
        "embedding_dim": hp.Choice("embedding_dim", [32, 64, 128], default=64),
        "num_heads": hp.Choice("num_heads", [2, 4], default=4),
        "num_layers": hp.Int("num_layers", 1, 4, default=2),
        "feed_forward_dim": hp.Choice("feed_forward_dim", [128, 256, 512], default=256),
        "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1, default=0.1),
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS), default="adam"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


sample_batch = text_models.language_model_sample_batch
model_signatures = text_models.language_model_signatures
