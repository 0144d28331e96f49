"""Dense autoencoder of digits images, also an anomaly detector by its reconstruction error.

The model maps the transformed pixels to their reconstruction and trains on
`model.train_on_batch(images, images)` (the targets are the inputs) with a mean squared error
loss. An image unlike the training digits (noise, corruption) reconstructs badly, so its
reconstruction error is its anomaly score.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import generative
from models.classifier import make_optimizer
from models.keras_lib import keras
from models.spec import TaskSpec


def make_model(
    spec: TaskSpec,
    *,
    latent_dim: int = 16,
    units: int = 128,
    num_layers: int = 2,
    learning_rate: float = 2e-3,
) -> keras.Model:
    """Builds a compiled dense autoencoder.

    The encoder is `num_layers` ReLU layers of `units`, `units / 2`, ... and a linear layer of
    `latent_dim`; the decoder mirrors it and ends in a linear layer of `spec.num_features`
    (the inputs are z-scores, not intensities in [0, 1]).

    Args:
        spec: The task; its feature vector is what is reconstructed.
        latent_dim: Width of the code, >= 1.
        units: Width of the encoder's first layer, >= 1.
        num_layers: Hidden layers in the encoder and in the decoder, >= 1.
        learning_rate: Adam's step size.

    Returns:
        A model mapping `spec.feature_key` to the reconstruction, compiled with a mean squared
        error loss; its nested models `encoder` and `decoder` are reachable by `get_layer`.

    Raises:
        ValueError: If a size is below 1.
    """
    if latent_dim < 1 or units < 1 or num_layers < 1:
        raise ValueError(
            "Expected latent_dim, units and num_layers >= 1, received "
            f"{latent_dim}, {units} and {num_layers}."
        )
    widths = [max(units // 2**layer, 1) for layer in range(num_layers)]
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    hidden = inputs
    for layer, width in enumerate(widths):
        hidden = keras.layers.Dense(width, activation="relu", name=f"encoder_dense_{layer}")(hidden)
    code = keras.layers.Dense(latent_dim, name="code")(hidden)
    encoder = keras.Model(inputs, code, name="encoder")

    latent = keras.Input(shape=(latent_dim,), name=generative.LATENT)
    hidden = latent
    for layer, width in enumerate(reversed(widths)):
        hidden = keras.layers.Dense(width, activation="relu", name=f"decoder_dense_{layer}")(hidden)
    reconstruction = keras.layers.Dense(spec.num_features, name=generative.RECONSTRUCTION)(hidden)
    decoder = keras.Model(latent, reconstruction, name="decoder")

    model = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    model.compile(optimizer=make_optimizer("adam", learning_rate), loss="mean_squared_error")
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the autoencoder, with their defaults."""
    return {
        "latent_dim": hp.Choice("latent_dim", [4, 8, 16, 32], default=16),
        "units": hp.Choice("units", [64, 128, 256], default=128),
        "num_layers": hp.Int("num_layers", 1, 3, default=2),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of transformed digits and its targets, which are the same images."""
    images = generative.sample_images(spec, size, seed)
    return images, images


def reconstruction_errors(images: tf.Tensor, reconstructions: tf.Tensor) -> tf.Tensor:
    """Mean squared error per example over its features: the anomaly score."""
    return tf.reduce_mean(tf.math.squared_difference(images, reconstructions), axis=-1)


def anomaly_scores(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Scores examples by reconstruction error; higher means less like the training data.

    Args:
        model: A trained autoencoder from `make_model`.
        images: Transformed images, [n, num_features].

    Returns:
        One score per image, float32 [n].
    """
    images = np.asarray(images, np.float32)
    reconstructions = model.predict(images, verbose=0, batch_size=256)
    return reconstruction_errors(images, reconstructions).numpy()


def model_signatures(
    model: keras.Model, spec: TaskSpec
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """The autoencoder's signatures over transformed images.

    Returns:
        `serving_default`: images -> {`reconstruction`, `anomaly_score`}; `encode`: images ->
        {`latent`}.
    """
    encoder = model.get_layer("encoder")

    @tf.function(input_signature=[generative.images_spec(spec)])
    def serve(images):
        reconstructions = model(images, training=False)
        return {
            generative.RECONSTRUCTION: reconstructions,
            generative.ANOMALY_SCORE: reconstruction_errors(images, reconstructions),
        }

    @tf.function(input_signature=[generative.images_spec(spec)])
    def encode(images):
        return {generative.LATENT: encoder(images, training=False)}

    return {
        "serving_default": serve.get_concrete_function(),
        "encode": encode.get_concrete_function(),
    }
