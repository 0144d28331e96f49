"""The server's core, shared by the REST and gRPC front ends (TF Serving's ServerCore + impls).

It owns the model manager (versions), the batch scheduler and the metrics, and implements
model status and metadata, and the lookup of the version a request is served by.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving import inference, status
from serving.batching import BatchScheduler
from serving.config import ServerOptions
from serving.manager import Loader, ModelManager
from serving.metrics import Metrics
from serving.request_log import RequestLogger
from serving.servable import Servable

SIGNATURE_DEF_FIELD = "signature_def"


class ServingCore:
    """Versions, batching, metrics and the request threads behind both APIs.

    Args:
        options: The server options.
        loader: Builds a Servable from (name, version, folder); tests pass failing loaders.
    """

    def __init__(self, options: ServerOptions, loader: Loader = Servable):
        self.options = options
        self.metrics = Metrics()
        self._random = random.Random(options.traffic_seed)
        self._random_lock = threading.Lock()
        self.scheduler = (
            BatchScheduler(
                options.batching,
                on_batch=lambda servable, rows: self.metrics.record_batch(
                    servable.name, servable.version, rows
                ),
            )
            if options.batching is not None
            else None
        )
        self.request_log = (
            RequestLogger(
                options.request_log_dir, options.request_log_sampling_rate, options.traffic_seed
            )
            if options.request_log_dir
            else None
        )
        # Blocking work of the REST front end, which answers on one event loop (gRPC has its own
        # threads): model calls without batching, Classify and Regress.
        self.request_threads = ThreadPoolExecutor(
            options.rest_api_num_threads or 4 * (os.cpu_count() or 1),
            thread_name_prefix="dlforge-request",
        )
        self.manager = ModelManager(
            options.models,
            runner=self.runner(None),
            loader=loader,
            on_change=self.metrics.record_state,
        )

    def start(self) -> None:
        """Loads the models (first poll) and starts polling their base paths."""
        self.manager.start_polling(self.options.poll_wait_seconds)

    def stop(self) -> None:
        self.manager.stop()
        self.request_threads.shutdown(cancel_futures=True)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.request_log is not None:
            self.request_log.close()

    def predict(
        self,
        servable: Servable,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_filter: list[str],
        deadline: float | None,
    ) -> dict[str, np.ndarray]:
        """`inference.predict` within the deadline; a sampled successful request is logged."""
        outputs = inference.predict(
            servable, signature_name, inputs, output_filter, self.runner(deadline)
        )
        self._log(servable, inputs)
        return outputs

    def start_predict(
        self,
        servable: Servable,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_filter: list[str],
        deadline: float | None,
    ) -> Future:
        """`predict` without waiting: checks the request now and returns the future of the
        outputs (the model call queued for a batch, or on a request thread).

        The future fails with DEADLINE_EXCEEDED when the deadline passes before the call starts;
        cancelling it before then withdraws the call (a client gone). A sampled successful
        request is logged when it completes.

        Raises:
            ServingError: TF Serving's error for the request, found before the call.
        """
        call = inference.checked_call(servable, signature_name, inputs, output_filter)
        if self.scheduler is not None:
            future = self.scheduler.submit(servable, *call, deadline)
        else:
            future = self.request_threads.submit(self.runner(deadline), servable, *call)

        if self.request_log is not None:

            def log_success(done: Future) -> None:
                if not done.cancelled() and done.exception() is None:
                    self._log(servable, inputs)

            future.add_done_callback(log_success)
        return future

    def _log(self, servable: Servable, inputs: dict[str, np.ndarray]) -> None:
        if self.request_log is not None:
            self.request_log.log(servable.name, servable.version, inputs)

    def runner(self, deadline: float | None) -> inference.Runner:
        """How a request calls the model: batched or direct, within `deadline` (monotonic)."""
        if self.scheduler is not None:
            scheduler = self.scheduler

            def batched(servable, signature_name, inputs, output_keys):
                return scheduler.run(servable, signature_name, inputs, output_keys, deadline)

            return batched

        def direct(servable, signature_name, inputs, output_keys):
            if deadline is not None and time.monotonic() > deadline:
                raise status.deadline_exceeded("Deadline exceeded before the model call.")
            outputs = servable.run(signature_name, inputs, output_keys)
            # A call cannot be interrupted; an answer later than the deadline is not given.
            if deadline is not None and time.monotonic() > deadline:
                raise status.deadline_exceeded("Deadline exceeded during the model call.")
            return outputs

        return direct

    def servable(self, name: str, version: int | None, label: str | None) -> Servable:
        """The version a request for (name, version or label) is served by.

        A request that names neither a version nor a label goes where the model's A/B split
        sends it (its latest version when it has none, or when the drawn target is not
        available, so that a canary being loaded fails no request).
        """
        if version is None and label is None:
            model = self.manager.config(name)
            if model is not None and model.traffic:
                target = self._draw(model.traffic)
                try:
                    if target.isdigit():
                        return self.manager.get(name, int(target), None)
                    return self.manager.get(name, None, target)
                except status.ServingError:
                    pass
        return self.manager.get(name, version, label)

    def _draw(self, traffic: tuple[tuple[str, float], ...]) -> str:
        targets, weights = zip(*traffic, strict=True)
        with self._random_lock:
            return self._random.choices(targets, weights)[0]

    def model_metadata(
        self, name: str, version: int | None, label: str | None
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata with the `signature_def` field (the only one TF Serving has)."""
        servable = self.servable(name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
        return response

    def model_status(
        self, name: str, version: int | None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus: one version's state, or every version's, newest first.

        A version label does not narrow the answer: TF Serving's GetModelStatus reads only the
        version, so a request by label lists all versions, and so does this one.

        Raises:
            ServingError: NOT_FOUND when the model or version was never seen.
        """
        states = self.manager.version_states(name)
        if version is not None:
            if version not in states:
                raise status.not_found(f"Could not find version {version} of model {name}")
            chosen = {version: states[version]}
        else:
            if not states:
                raise status.not_found(f"Could not find any versions of model {name}")
            chosen = states
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(chosen, reverse=True):
            state = chosen[number]
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = state.state
            entry.status.SetInParent()
            entry.status.error_code = state.error_code.value[0]
            entry.status.error_message = state.error_message
        return response
