"""The model server: the core, the gRPC server and the REST server, started and stopped together."""

from __future__ import annotations

from serving.config import ServerOptions
from serving.core import ServingCore
from serving.grpc_api import GrpcServer
from serving.manager import Loader
from serving.rest import RestServer
from serving.servable import Servable


class ModelServer:
    """A running server; use as a context manager or call `start` and `stop`.

    Args:
        options: What to serve and where.
        loader: Builds a Servable from (name, version, folder); `Servable` by default.
    """

    def __init__(self, options: ServerOptions, loader: Loader = Servable):
        self.options = options
        self.core = ServingCore(options, loader=loader)
        self.grpc: GrpcServer | None = None
        self.rest: RestServer | None = None

    @property
    def grpc_port(self) -> int:
        return self.grpc.port

    @property
    def rest_port(self) -> int | None:
        return self.rest.port if self.rest is not None else None

    def start(self) -> ModelServer:
        """Loads the models present now, then opens the ports."""
        self.core.start()
        try:
            self.grpc = GrpcServer(
                self.core, self.options.host, self.options.grpc_port, self.options.max_body_bytes
            )
            if self.options.rest_api_port is not None:
                self.rest = RestServer(
                    self.core,
                    self.options.host,
                    self.options.rest_api_port,
                    self.options.rest_api_timeout_ms,
                    self.options.max_body_bytes,
                )
        except BaseException:
            self.stop()
            raise
        self.grpc.start()
        if self.rest is not None:
            self.rest.start()
        return self

    def stop(self) -> None:
        """Closes the ports, then stops polling and batching."""
        if self.rest is not None:
            self.rest.stop()
        if self.grpc is not None:
            self.grpc.stop()
        self.core.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
