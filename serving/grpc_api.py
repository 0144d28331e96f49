"""TF Serving's gRPC API: `tensorflow.serving.PredictionService` and `ModelService`.

The servicers use the generated code of `tensorflow-serving-api`, so any TF Serving client
(stubs in any language) talks to this server unchanged. Failures abort the call with TF
Serving's status code and message.
"""

from __future__ import annotations

import time
from concurrent import futures

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import inference, status
from serving.core import SIGNATURE_DEF_FIELD, ServingCore


def _version_and_label(model_spec) -> tuple[int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    if choice == "version":
        return model_spec.version.value, None
    if choice == "version_label":
        return None, model_spec.version_label
    return None, None


def _deadline(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class _Calls:
    """Runs a servicer method body, aborting with its ServingError and recording metrics."""

    def __init__(self, core: ServingCore):
        self.core = core

    def run(self, api: str, model_name: str, context, body):
        start = time.perf_counter()
        served = {}
        try:
            response = body(served)
        except Exception as raised:  # Every failure becomes a status.
            error = inference.error_from_exception(raised)
            self._record(model_name, served, api, error.code_name, start)
            context.abort(error.code, error.message)
        self._record(model_name, served, api, "OK", start)
        return response

    def _record(self, model_name, served, api, code_name, start) -> None:
        if model_name:
            self.core.metrics.record_request(
                model_name,
                served.get("version"),
                api,
                "GRPC",
                code_name,
                (time.perf_counter() - start) * 1e6,
            )


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress and GetModelMetadata (MultiInference is not implemented)."""

    def __init__(self, core: ServingCore):
        self._core = core
        self._calls = _Calls(core)

    def Predict(self, request: predict_pb2.PredictRequest, context):  # noqa: N802
        spec = request.model_spec

        def body(served):
            servable = self._core.servable(spec.name, *_version_and_label(spec))
            served["version"] = servable.version
            inputs = {
                alias: inference.tensor_to_array(tensor) for alias, tensor in request.inputs.items()
            }
            outputs = self._core.predict(
                servable,
                spec.signature_name,
                inputs,
                list(request.output_filter),
                _deadline(context),
            )
            response = predict_pb2.PredictResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = inference.signature_or_default(spec.signature_name)
            for alias, value in outputs.items():
                response.outputs[alias].CopyFrom(inference.array_to_tensor(value))
            return response

        return self._calls.run("Predict", spec.name, context, body)

    def _examples_call(self, api, request, context, method, make_response):
        spec = request.model_spec

        def body(served):
            servable = self._core.servable(spec.name, *_version_and_label(spec))
            served["version"] = servable.version
            result = method(
                servable,
                spec.signature_name,
                request.input,
                self._core.runner(_deadline(context)),
            )
            response = make_response(result)
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = inference.signature_or_default(spec.signature_name)
            return response

        return self._calls.run(api, spec.name, context, body)

    def Classify(self, request: classification_pb2.ClassificationRequest, context):  # noqa: N802
        def make_response(results):
            response = classification_pb2.ClassificationResponse()
            for row in results:
                classifications = response.result.classifications.add()
                for label, score in row:
                    classifications.classes.add(label=label, score=score)
            return response

        return self._examples_call("Classify", request, context, inference.classify, make_response)

    def Regress(self, request: regression_pb2.RegressionRequest, context):  # noqa: N802
        def make_response(results):
            response = regression_pb2.RegressionResponse()
            for value in results:
                response.result.regressions.add(value=value)
            return response

        return self._examples_call("Regress", request, context, inference.regress, make_response)

    def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context
    ):
        def body(served):
            if not request.HasField("model_spec"):
                raise status.invalid_argument("Missing ModelSpec")
            if not request.metadata_field:
                raise status.invalid_argument(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            for field in request.metadata_field:
                if field != SIGNATURE_DEF_FIELD:
                    raise status.invalid_argument(f"Metadata field {field} is not supported")
            response = self._core.model_metadata(
                request.model_spec.name, *_version_and_label(request.model_spec)
            )
            served["version"] = response.model_spec.version.value
            return response

        return self._calls.run("GetModelMetadata", request.model_spec.name, context, body)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus (HandleReloadConfigRequest is not implemented)."""

    def __init__(self, core: ServingCore):
        self._core = core
        self._calls = _Calls(core)

    def GetModelStatus(self, request, context):  # noqa: N802
        def body(served):
            if not request.HasField("model_spec"):
                raise status.invalid_argument("Missing ModelSpec")
            version, _ = _version_and_label(request.model_spec)
            return self._core.model_status(request.model_spec.name, version)

        return self._calls.run("GetModelStatus", request.model_spec.name, context, body)


class GrpcServer:
    """Both services on one gRPC server.

    Args:
        core: The server core.
        host: Interface to bind.
        port: Port; 0 picks a free one (see `port`).
        max_message_bytes: Largest request message accepted.
        max_workers: Threads serving calls.
    """

    def __init__(
        self, core: ServingCore, host: str, port: int, max_message_bytes: int, max_workers: int = 64
    ):
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="dlforge-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(core), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), self._server)
        try:
            self.port = self._server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as error:  # grpcio raises this when the port is taken.
            raise OSError(f"cannot listen for gRPC on {host}:{port}: {error}") from None
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_seconds: float = 1.0) -> None:
        self._server.stop(grace_seconds).wait()
