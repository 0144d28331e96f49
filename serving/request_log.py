"""Sampled request logging: the inputs of served predictions as TFRecord files of tf.Examples.

Each sampled request's rows are written as tf.Examples under
`<directory>/<model>/<version>/requests-<start time>-<pid>.tfrecord`, by one writer thread so
that requests never wait for the disk. Serialized tf.Examples (`serving_default`) are logged as
they came; a numeric input of shape [n, k] is logged as n Examples with one float feature of k
values named after the input (`inputs`), which `dlforge drift` maps back to the raw features.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time

import numpy as np
import tensorflow as tf

_LOG = logging.getLogger("dlforge.serving")


def examples_of(inputs: dict[str, np.ndarray]) -> list[bytes]:
    """The request's rows as serialized tf.Examples (see the module docstring)."""
    if len(inputs) == 1:
        ((alias, value),) = inputs.items()
        if value.dtype == object and value.ndim == 1:
            return [bytes(item) for item in value]
    rows = None
    for value in inputs.values():
        rows = value.shape[0] if value.ndim else 1
        break
    examples = []
    for index in range(rows or 0):
        features = {}
        for alias, value in inputs.items():
            row = np.asarray(value[index] if value.ndim else value).reshape(-1)
            if row.dtype == object:
                feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(row)))
            elif np.issubdtype(row.dtype, np.floating):
                feature = tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist()))
            else:
                feature = tf.train.Feature(int64_list=tf.train.Int64List(value=row.tolist()))
            features[alias] = feature
        examples.append(
            tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
        )
    return examples


class RequestLogger:
    """Samples requests and appends their examples to per-version TFRecord files.

    Args:
        directory: The log root, e.g. `<home>/logs`.
        sampling_rate: Fraction of requests logged, in (0, 1].
        seed: Seed of the sampling, for reproducible tests; None for a random one.
    """

    def __init__(self, directory: str, sampling_rate: float, seed: int | None = None):
        if not 0 < sampling_rate <= 1:
            raise ValueError(f"Expected a sampling rate in (0, 1], received {sampling_rate}.")
        self.directory = directory
        self.sampling_rate = sampling_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=10000)
        self._writers: dict[tuple[str, int], tf.io.TFRecordWriter] = {}
        self._stamp = time.strftime("%Y%m%d-%H%M%S")
        self._thread = threading.Thread(target=self._write, name="dlforge-request-log", daemon=True)
        self._thread.start()

    def log(self, model: str, version: int, inputs: dict[str, np.ndarray]) -> None:
        """Queues a request's inputs if it is sampled; drops it if the writer is far behind."""
        with self._lock:
            if self._random.random() >= self.sampling_rate:
                return
        try:
            self._queue.put_nowait((model, version, inputs))
        except queue.Full:
            _LOG.warning("Request log queue full: a sampled request of %s is not logged", model)

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            model, version, inputs = item
            try:
                writer = self._writers.get((model, version))
                if writer is None:
                    folder = os.path.join(self.directory, model, str(version))
                    os.makedirs(folder, exist_ok=True)
                    path = os.path.join(folder, f"requests-{self._stamp}-{os.getpid()}.tfrecord")
                    writer = self._writers[(model, version)] = tf.io.TFRecordWriter(path)
                for example in examples_of(inputs):
                    writer.write(example)
                writer.flush()  # A drift check may read the file while the server runs.
            except Exception:  # Logging must never break serving.
                _LOG.exception("Could not log a request of %s", model)

    def close(self) -> None:
        """Writes what is queued and closes the files."""
        self._queue.put(None)
        self._thread.join()
        for writer in self._writers.values():
            writer.close()
