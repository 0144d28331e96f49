"""Errors carrying TF Serving's status codes, and how each code maps to HTTP.

TF Serving reports every failure as a `tensorflow::Status` (a gRPC code and a message); its REST
front end turns the code into an HTTP status (`model_servers/http_server.cc`) and the message into
`{"error": "<message>"}`. The same codes flow through this server's REST and gRPC front ends.
"""

from __future__ import annotations

import grpc

# TF Serving's ToHTTPStatusCode: every code not listed is 500.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request that failed with one of TF Serving's status codes.

    Args:
        code: The gRPC status code TF Serving returns for this failure.
        message: The message, worded like TF Serving's where it has one for the case.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers this error with."""
        return http_status(self.code)

    @property
    def code_name(self) -> str:
        """The code's name as TF Serving prints it, e.g. `INVALID_ARGUMENT`."""
        return self.code.name


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving's REST API uses for a status code."""
    return _HTTP_STATUS.get(code, 500)


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def deadline_exceeded(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def internal(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INTERNAL, message)
