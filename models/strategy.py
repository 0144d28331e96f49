"""The tf.distribute strategy a Trainer or Tuner runs under."""

from __future__ import annotations

import tensorflow as tf

from models.settings import STRATEGIES


def make_strategy(kind: str = "mirrored", tpu_address: str = "") -> tf.distribute.Strategy:
    """Builds a distribution strategy.

    Args:
        kind: "mirrored" (MirroredStrategy over all local devices: every GPU, or the CPU) or
            "one_device" (the first local device). Ignored when `tpu_address` is set.
        tpu_address: gRPC address or name of a TPU; when set, a TPUStrategy on that TPU.

    Returns:
        The strategy.

    Raises:
        ValueError: For an unknown `kind`, or when the TPU at `tpu_address` cannot be reached.
    """
    if tpu_address:
        return _tpu_strategy(tpu_address)
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy(tf.config.list_logical_devices()[0].name)
    raise ValueError(f"Expected a strategy in {list(STRATEGIES)}, received {kind!r}.")


def _tpu_strategy(tpu_address: str) -> tf.distribute.TPUStrategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        raise ValueError(
            f"Expected a reachable TPU at tpu_address={tpu_address!r}, but connecting failed: "
            f"{error}"
        ) from error
    return tf.distribute.TPUStrategy(resolver)
