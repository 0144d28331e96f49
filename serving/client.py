"""A client of TF Serving's APIs (this server's or the real one's): one call, REST or gRPC.

`PredictionClient(address, protocol="rest"|"grpc").predict(model, inputs)` sends the same
request either way (columnar `inputs` over REST, a PredictRequest over gRPC) and returns the
outputs as numpy arrays with the version that served them (when the server says).
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from dataclasses import dataclass

import numpy as np

REST, GRPC = "rest", "grpc"
VERSION_HEADER = "X-Dlforge-Model-Version"


class ClientError(RuntimeError):
    """A request the server refused or could not answer.

    Attributes:
        code: The HTTP status (REST) or the gRPC status code name.
    """

    def __init__(self, code, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Prediction:
    """A predict response: output name -> values, and the version that served it if known."""

    outputs: dict[str, np.ndarray]
    version: int | None


def _split_address(address: str) -> tuple[str, int]:
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ValueError(f"Expected an address HOST:PORT, received {address!r}.")
    return host, int(port)


def _json_value(array: np.ndarray):
    if array.dtype == object or array.dtype.kind == "S":
        flat = [{"b64": base64.b64encode(bytes(item)).decode("ascii")} for item in array.flat]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


class PredictionClient:
    """Predict (and status/metadata) against a TF-Serving-compatible server.

    Args:
        address: `HOST:PORT` of the REST or gRPC port.
        protocol: `rest` or `grpc`.
        timeout_seconds: Deadline of each call.

    Raises:
        ValueError: On a malformed address or an unknown protocol.
    """

    def __init__(self, address: str, protocol: str = REST, timeout_seconds: float = 30.0):
        if protocol not in (REST, GRPC):
            raise ValueError(f"Expected protocol {REST!r} or {GRPC!r}, received {protocol!r}.")
        self.host, self.port = _split_address(address)
        self.protocol = protocol
        self.timeout_seconds = timeout_seconds
        self._local = threading.local()
        self._output_names: dict[tuple[str, str], list[str]] = {}
        if protocol == GRPC:
            import grpc
            from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

            self._channel = grpc.insecure_channel(
                f"{self.host}:{self.port}",
                options=[("grpc.max_receive_message_length", -1)],
            )
            self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
            self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        if self.protocol == GRPC:
            self._channel.close()
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()

    def __enter__(self) -> PredictionClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # REST ---------------------------------------------------------------------------------
    def _rest(self, method: str, path: str, body: dict | None = None):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout_seconds
            )
            self._local.connection = connection
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self._local.connection = None
            raise ClientError(
                "UNAVAILABLE", f"cannot reach {self.host}:{self.port}: {error}"
            ) from error
        document = json.loads(payload) if payload else {}
        if response.status != 200:
            raise ClientError(
                response.status, document.get("error", payload.decode("utf-8", "replace"))
            )
        version = response.getheader(VERSION_HEADER)
        return document, int(version) if version else None

    @staticmethod
    def _model_path(model: str, version: int | None, label: str | None) -> str:
        path = "/v1/models/" + urllib.parse.quote(model, safe="")
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += "/labels/" + urllib.parse.quote(label, safe="")
        return path

    # API ----------------------------------------------------------------------------------
    def predict(
        self,
        model: str,
        inputs: np.ndarray | dict[str, np.ndarray],
        *,
        signature_name: str = "",
        version: int | None = None,
        label: str | None = None,
    ) -> Prediction:
        """Runs `:predict` / `PredictionService.Predict`.

        Args:
            model: The model name.
            inputs: One array (for a signature with one input) or input alias -> array.
            signature_name: The signature; "" for `serving_default`.
            version: A version to ask for, or None.
            label: A version label to ask for, or None (not with `version`).

        Returns:
            Output alias -> array, and the serving version if the server reports it.

        Raises:
            ClientError: With the server's status and message.
        """
        if version is not None and label is not None:
            raise ValueError("Expected a version or a label, received both.")
        if self.protocol == GRPC:
            return self._grpc_predict(model, inputs, signature_name, version, label)
        body: dict = {}
        if signature_name:
            body["signature_name"] = signature_name
        if isinstance(inputs, dict):
            body["inputs"] = {key: _json_value(np.asarray(value)) for key, value in inputs.items()}
        else:
            body["inputs"] = _json_value(np.asarray(inputs))
        document, served = self._rest(
            "POST", self._model_path(model, version, label) + ":predict", body
        )
        outputs = document["outputs"]
        if not isinstance(outputs, dict):
            (name,) = self._outputs_of(model, signature_name or "serving_default")
            outputs = {name: outputs}
        return Prediction({key: np.asarray(value) for key, value in outputs.items()}, served)

    def _outputs_of(self, model: str, signature_name: str) -> list[str]:
        key = (model, signature_name)
        if key not in self._output_names:
            metadata = self.metadata(model)
            signature = metadata["metadata"]["signature_def"]["signature_def"][signature_name]
            self._output_names[key] = sorted(signature["outputs"])
        return self._output_names[key]

    def metadata(self, model: str, version: int | None = None) -> dict:
        """The model's metadata as TF Serving's REST API shows it (signature defs)."""
        if self.protocol == GRPC:
            from google.protobuf import json_format
            from tensorflow_serving.apis import get_model_metadata_pb2

            request = get_model_metadata_pb2.GetModelMetadataRequest(
                metadata_field=["signature_def"]
            )
            request.model_spec.name = model
            if version is not None:
                request.model_spec.version.value = version
            response = self._grpc_call(self._prediction.GetModelMetadata, request)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signatures)
            options = {"preserving_proto_field_name": True}
            return {
                "model_spec": json_format.MessageToDict(response.model_spec, **options),
                "metadata": {"signature_def": json_format.MessageToDict(signatures, **options)},
            }
        return self._rest("GET", self._model_path(model, version, None) + "/metadata")[0]

    def status(self, model: str) -> dict:
        """The model's version states as TF Serving's REST API shows them."""
        if self.protocol == GRPC:
            from google.protobuf import json_format
            from tensorflow_serving.apis import get_model_status_pb2

            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = model
            response = self._grpc_call(self._models.GetModelStatus, request)
            return json_format.MessageToDict(response, preserving_proto_field_name=True)
        return self._rest("GET", self._model_path(model, None, None))[0]

    # gRPC ---------------------------------------------------------------------------------
    def _grpc_call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout_seconds)
        except grpc.RpcError as error:
            raise ClientError(error.code().name, error.details()) from None

    def _grpc_predict(self, model, inputs, signature_name, version, label) -> Prediction:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        elif label is not None:
            request.model_spec.version_label = label
        if not isinstance(inputs, dict):
            (name,) = self._inputs_of(model, signature_name or "serving_default")
            inputs = {name: inputs}
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        response = self._grpc_call(self._prediction.Predict, request)
        outputs = {key: tf.make_ndarray(tensor) for key, tensor in response.outputs.items()}
        return Prediction(outputs, response.model_spec.version.value)

    def _inputs_of(self, model: str, signature_name: str) -> list[str]:
        metadata = self.metadata(model)
        signature = metadata["metadata"]["signature_def"]["signature_def"][signature_name]
        return sorted(signature["inputs"])
