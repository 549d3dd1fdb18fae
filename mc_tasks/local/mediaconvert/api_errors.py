"""Errors that the local MediaConvert returns to clients, in the service's own terms.

Each class is one of the exception shapes of botocore's ``mediaconvert`` model.
Its HTTP status is read from that model, so a client sees the same code and
status as from AWS.
"""

from __future__ import annotations

from mc_tasks.local.mediaconvert.model import service_model


class ApiError(Exception):
    """An error response: the modelled exception name, its HTTP status and a message."""

    code = "InternalServerErrorException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        status: int = service_model().shape_for(self.code).metadata["error"]["httpStatusCode"]
        return status


class BadRequest(ApiError):
    """The request is invalid or requests something the local server does not implement."""

    code = "BadRequestException"


class NotFound(ApiError):
    """The job, queue or route does not exist."""

    code = "NotFoundException"


class Conflict(ApiError):
    """The request conflicts with the resource's state, such as cancelling a finished job."""

    code = "ConflictException"


class InternalServerError(ApiError):
    """An unexpected failure inside the local server."""

    code = "InternalServerErrorException"
