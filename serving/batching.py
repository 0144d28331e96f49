"""Server-side batching: concurrent model calls merged into one (TF Serving's BasicBatchScheduler).

Calls that can share a model call (same version, signature, outputs, input dtypes and
per-example shapes) join an open batch; a batch runs when it is full (`max_batch_size` rows) or
when its oldest call has waited `batch_timeout_micros`, on one of `num_batch_threads` threads.
The merged outputs are split back by rows. A call larger than `max_batch_size` fails, and when
`max_enqueued_batches` batches already wait a new call fails with UNAVAILABLE, as in TF Serving.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from serving import status
from serving.config import BatchingParameters
from serving.servable import Servable

BatchObserver = Callable[[Servable, int], None]


@dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    deadline: float | None
    # Cancellable (a client gone) only while it waits; running once its batch starts.
    future: Future = field(default_factory=Future)


@dataclass
class _Batch:
    key: tuple
    servable: Servable
    signature_name: str
    output_keys: list[str]
    deadline: float
    tasks: list[_Task] = field(default_factory=list)
    rows: int = 0


class BatchScheduler:
    """Merges concurrent model calls; its `run` has the signature of an `inference.Runner`.

    Args:
        parameters: Batch size, timeout, threads and queue bound.
        on_batch: Called with (servable, rows) for every merged call that runs.
    """

    def __init__(self, parameters: BatchingParameters, on_batch: BatchObserver | None = None):
        self.parameters = parameters
        self._on_batch = on_batch
        self._timeout = parameters.batch_timeout_micros / 1e6
        self._condition = threading.Condition()
        self._open: dict[tuple, _Batch] = {}
        self._ready: deque[_Batch] = deque()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"dlforge-batch-{index}", daemon=True)
            for index in range(parameters.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queued_batches(self) -> int:
        """Batches waiting to run (open or closed), as `max_enqueued_batches` counts them."""
        with self._condition:
            return len(self._ready) + len(self._open)

    def run(
        self,
        servable: Servable,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_keys: list[str],
        deadline: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs one call as part of a batch and returns its own rows of the outputs.

        Raises:
            ServingError: As `submit`, or the error of the call.
        """
        return self.submit(servable, signature_name, inputs, output_keys, deadline).result()

    def submit(
        self,
        servable: Servable,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_keys: list[str],
        deadline: float | None = None,
    ) -> Future:
        """Queues one call and returns at once: the future of its own rows of the outputs.

        A batch runs at its oldest call's timeout or at the earliest deadline of its calls,
        whichever comes first; a call whose deadline has passed when its batch runs fails with
        DEADLINE_EXCEEDED, as do TF Serving's batching sessions. Cancelling the future before
        its batch runs takes the call out of the batch (a client gone).

        Args:
            deadline: `time.monotonic()` by which the call must have started, or None.

        Raises:
            ServingError: INVALID_ARGUMENT for inputs without a common batch dimension or larger
                than the maximum batch size, UNAVAILABLE when the queue is full.
        """
        rows = {value.shape[0] if value.ndim else -1 for value in inputs.values()}
        if len(rows) != 1 or -1 in rows:
            raise status.invalid_argument(
                "Batching session Run() input tensors must have equal 0th-dimension size, "
                f"received sizes {sorted(rows)}"
            )
        (count,) = rows
        if count > self.parameters.max_batch_size:
            raise status.invalid_argument(
                f"Task size {count} is larger than maximum input batch size "
                f"{self.parameters.max_batch_size}"
            )
        key = (
            id(servable),
            signature_name,
            tuple(output_keys),
            tuple(
                (alias, value.dtype.str, value.shape[1:]) for alias, value in sorted(inputs.items())
            ),
        )
        task = _Task(inputs=inputs, rows=count, deadline=deadline)
        with self._condition:
            if self._stopped:
                raise status.unavailable("The batch scheduler is shut down.")
            batch = self._open.get(key)
            if batch is not None and batch.rows + count > self.parameters.max_batch_size:
                self._close(batch)
                self._condition.notify()  # A worker runs it now.
                batch = None
            if batch is None:
                if len(self._ready) + len(self._open) >= self.parameters.max_enqueued_batches:
                    raise status.unavailable(
                        "The batch scheduling queue to which this task was submitted is full"
                    )
                batch = _Batch(
                    key,
                    servable,
                    signature_name,
                    list(output_keys),
                    time.monotonic() + self._timeout,
                )
                self._open[key] = batch
                self._condition.notify()  # A worker times the new batch.
            batch.tasks.append(task)
            batch.rows += count
            if deadline is not None and deadline < batch.deadline:
                batch.deadline = deadline
                self._condition.notify()  # A worker times it anew.
            if batch.rows >= self.parameters.max_batch_size:
                self._close(batch)
                self._condition.notify()  # A worker runs it now.
        return task.future

    def _close(self, batch: _Batch) -> None:
        del self._open[batch.key]
        self._ready.append(batch)

    def _next_batch(self) -> _Batch | None:
        with self._condition:
            while True:
                if self._ready:
                    return self._ready.popleft()
                if self._stopped:
                    return None
                if self._open:
                    oldest = min(self._open.values(), key=lambda batch: batch.deadline)
                    remaining = oldest.deadline - time.monotonic()
                    if remaining <= 0:
                        del self._open[oldest.key]
                        return oldest
                    self._condition.wait(remaining)
                else:
                    self._condition.wait()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._process(batch)

    def _process(self, batch: _Batch) -> None:
        now = time.monotonic()
        tasks = []
        for task in batch.tasks:
            if not task.future.set_running_or_notify_cancel():
                continue  # Cancelled while it waited.
            if task.deadline is not None and task.deadline <= now:
                task.future.set_exception(
                    status.deadline_exceeded("Deadline exceeded before the batch ran.")
                )
            else:
                tasks.append(task)
        if not tasks:
            return
        try:
            merged = {
                alias: np.concatenate([task.inputs[alias] for task in tasks])
                for alias in tasks[0].inputs
            }
            rows = sum(task.rows for task in tasks)
            outputs = batch.servable.run(batch.signature_name, merged, batch.output_keys)
            if self._on_batch is not None:
                self._on_batch(batch.servable, rows)
            for key, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != rows:
                    raise status.internal(
                        f"Batched output {key!r} has {value.shape[0] if value.ndim else 0} rows "
                        f"for {rows} input rows; this signature cannot be batched."
                    )
        except Exception as error:  # Every caller of the batch gets the error.
            for task in tasks:
                task.future.set_exception(error)
            return
        start = 0
        for task in tasks:
            task.future.set_result(
                {key: value[start : start + task.rows] for key, value in outputs.items()}
            )
            start += task.rows

    def stop(self) -> None:
        """Runs the batches already queued, then stops the threads."""
        with self._condition:
            self._stopped = True
            for batch in list(self._open.values()):
                self._close(batch)
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()
