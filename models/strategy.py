"""The tf.distribute strategy a Trainer or Tuner runs under, and the process's part in it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from models.settings import STRATEGIES

# Where TensorFlow (and Vertex AI custom training, which sets it) describes the cluster.
TF_CONFIG = "TF_CONFIG"
# TPUClusterResolver's name for the TPU attached to this VM (Vertex AI TPU VMs).
LOCAL_TPU = "local"


def make_strategy(kind: str = "mirrored", tpu_address: str = "") -> tf.distribute.Strategy:
    """Builds a distribution strategy.

    Args:
        kind: "mirrored" (MirroredStrategy over all local devices: every GPU, or the CPU),
            "one_device" (the first local device), "multi_worker_mirrored" (synchronous training
            over the workers TF_CONFIG lists, each with all its local devices; one worker when
            TF_CONFIG is unset) or "tpu" (TPUStrategy on `tpu_address`, or the TPU of this VM).
        tpu_address: gRPC address or name of a TPU; when set, a TPUStrategy on that TPU whatever
            `kind` is.

    Returns:
        The strategy.

    Raises:
        ValueError: For an unknown `kind`, a malformed TF_CONFIG, or when the TPU cannot be
            reached.
    """
    if tpu_address or kind == "tpu":
        return _tpu_strategy(tpu_address or LOCAL_TPU)
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy(tf.config.list_logical_devices()[0].name)
    if kind == "multi_worker_mirrored":
        check_tf_config(os.environ.get(TF_CONFIG))
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Expected a strategy in {list(STRATEGIES)}, received {kind!r}.")


def check_tf_config(text: str | None) -> dict[str, Any] | None:
    """Parses and checks a TF_CONFIG value (None or empty: no cluster, one worker).

    Returns:
        The parsed value, or None.

    Raises:
        ValueError: If it is not JSON, has no cluster or task, or its task is not in the
            cluster; the message says what was expected and what was found.
    """
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Expected {TF_CONFIG} to be JSON, received {text!r}: {error}.") from error
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, Mapping) or not isinstance(task, Mapping):
        raise ValueError(
            f"Expected {TF_CONFIG} to hold a 'cluster' and a 'task' object, received {text!r}."
        )
    kind, index = task.get("type"), task.get("index")
    members = cluster.get(kind)
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        raise ValueError(
            f"Expected {TF_CONFIG}'s task to be one of its cluster's members, received task "
            f"{task!r} for cluster {dict(cluster)!r}."
        )
    return config


def is_chief(tf_config: Mapping[str, Any] | None) -> bool:
    """Whether this process writes the training's results (the exported model).

    The chief is the "chief" task when the cluster has one, else worker 0; a process outside a
    cluster (no TF_CONFIG) is its own chief.

    Args:
        tf_config: The parsed TF_CONFIG (see `check_tf_config`), or None.
    """
    if not tf_config:
        return True
    task = tf_config["task"]
    if task["type"] == "chief":
        return True
    return task["type"] == "worker" and task["index"] == 0 and "chief" not in tf_config["cluster"]


def export_dir(serving_model_dir: str, tf_config: Mapping[str, Any] | None) -> str:
    """Where this process saves the trained model.

    Under MultiWorkerMirroredStrategy every worker takes part in saving (the variables are
    synchronised), but only the chief's copy is the result: the others write into a folder of
    their own beside it, which the caller deletes afterwards.

    Args:
        serving_model_dir: The Trainer's model folder.
        tf_config: The parsed TF_CONFIG, or None.

    Returns:
        `serving_model_dir` on the chief, else `<serving_model_dir>-worker-<type>-<index>`.
    """
    if is_chief(tf_config):
        return serving_model_dir
    task = tf_config["task"]
    return f"{serving_model_dir.rstrip('/')}-worker-{task['type']}-{task['index']}"


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
