"""Exceptions raised by mc_tasks.

Every error derives from :class:`McTasksError`::

    McTasksError
    ├── ConfigurationError        a setting is missing or invalid
    ├── InvalidJobError           a job request failed validation before any AWS call
    ├── MediaConvertError         MediaConvert rejected a call (ClientError wrapped)
    │   ├── MediaConvertBadRequest          400 BadRequestException
    │   ├── MediaConvertForbidden           403 ForbiddenException
    │   ├── MediaConvertNotFound            404 NotFoundException
    │   ├── MediaConvertConflict            409 ConflictException
    │   ├── MediaConvertQuotaExceeded       402 ServiceQuotaExceededException
    │   ├── MediaConvertThrottled           429 TooManyRequestsException   (retryable)
    │   └── MediaConvertServiceError        5xx InternalServerErrorException (retryable)
    ├── QueuePausedError          the MediaConvert queue is paused and pauses are rejected
    ├── QueueBusyError            the queue has too many submitted jobs          (retryable)
    ├── RateLimitedError          the shared CreateJob rate limit had no token   (retryable)
    ├── EventParseError           an SQS message is not a usable MediaConvert job event
    ├── ProvisioningError         the EventBridge rule or SQS queue could not be set up
    ├── RedisUnavailableError     Redis could not be reached (retryable)
    └── LocalStackError           a process of the embedded local stack failed to start

``retryable`` is a class attribute: Celery tasks retry only errors whose
``retryable`` is true, so a permanent error fails the task at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import redis.exceptions
from botocore.exceptions import ClientError


class McTasksError(Exception):
    """Root of every exception raised by mc_tasks."""

    retryable: ClassVar[bool] = False


class ConfigurationError(McTasksError, ValueError):
    """A setting is missing or invalid; the message names the variable to set."""


class InvalidJobError(McTasksError, ValueError):
    """A job request is invalid; raised before any call to MediaConvert."""


class MediaConvertError(McTasksError):
    """MediaConvert returned an error response.

    ``code`` is the AWS error code, ``http_status`` the HTTP status and
    ``operation`` the API operation that failed.
    """

    #: What the user should change for this kind of error; shown after the AWS message.
    advice: ClassVar[str] = ""

    def __init__(self, message: str, *, code: str, http_status: int, operation: str) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.operation = operation


class MediaConvertBadRequest(MediaConvertError):
    """The request is malformed or its job settings are invalid (HTTP 400)."""

    advice = "Check the job settings named in the message."


class MediaConvertForbidden(MediaConvertError):
    """The caller lacks a permission, often iam:PassRole on the job role (HTTP 403)."""

    advice = (
        "Grant the submitting identity mediaconvert:CreateJob and iam:PassRole on the "
        "MediaConvert role (see `mc-tasks iam-policies`)."
    )


class MediaConvertNotFound(MediaConvertError):
    """The job, queue or template does not exist in this account and region (HTTP 404)."""

    advice = "Check the job id, queue or template name and the region."


class MediaConvertConflict(MediaConvertError):
    """The resource is in a state that does not allow the call (HTTP 409)."""

    advice = "The job or queue is in a state that does not allow this call."


class MediaConvertQuotaExceeded(MediaConvertError):
    """An account quota was reached (HTTP 402)."""

    advice = "Request a quota increase or wait for running jobs to finish."


class MediaConvertThrottled(MediaConvertError):
    """MediaConvert throttled the call (HTTP 429); safe to retry with backoff."""

    retryable = True


class MediaConvertServiceError(MediaConvertError):
    """MediaConvert failed internally (HTTP 5xx); safe to retry with backoff."""

    retryable = True


class QueuePausedError(McTasksError):
    """The MediaConvert queue is PAUSED and the settings reject submissions to a paused queue."""

    def __init__(self, message: str, *, queue: str = "") -> None:
        super().__init__(message)
        self.queue = queue


class QueueBusyError(McTasksError):
    """The MediaConvert queue has at least MC_TASKS_MAX_SUBMITTED_JOBS jobs waiting.

    Nothing was sent to CreateJob. ``retry_after_s`` is the delay before the
    next attempt, for example ``task.retry(countdown=exc.retry_after_s)``.
    """

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float = 0.0, queue: str = "",
                 submitted_jobs_count: int = 0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.queue = queue
        self.submitted_jobs_count = submitted_jobs_count


class RateLimitedError(McTasksError):
    """No CreateJob token of the shared rate limit became free within the maximum wait.

    Nothing was sent to CreateJob. ``retry_after_s`` is the delay before the
    next attempt, for example ``task.retry(countdown=exc.retry_after_s)``.
    """

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EventParseError(McTasksError, ValueError):
    """An SQS message body is not a MediaConvert job state change event.

    ``reason`` is a short code (``not_json``, ``wrong_shape``, ``other_source``,
    ``other_detail_type``). ``discardable`` is true for well-formed events that are
    simply not MediaConvert job state changes: the drain deletes those, and
    leaves the others in the queue so that SQS moves them to the dead-letter queue.
    """

    def __init__(self, message: str, *, reason: str, discardable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.discardable = discardable


class ProvisioningError(McTasksError):
    """The EventBridge rule, SQS queue or queue policy could not be set up."""


class RedisUnavailableError(McTasksError, redis.exceptions.ConnectionError):
    """Redis at ``MC_TASKS_REDIS_URL`` could not be reached; retryable.

    It is also a redis-py ``ConnectionError``, so code that retries those
    (the submit task does) retries it too.
    """

    retryable = True


class LocalStackError(McTasksError):
    """A process of the embedded local stack (moto, Redis, local MediaConvert) failed."""


_ERRORS_BY_CODE: dict[str, type[MediaConvertError]] = {
    "BadRequestException": MediaConvertBadRequest,
    "ForbiddenException": MediaConvertForbidden,
    "AccessDeniedException": MediaConvertForbidden,
    "NotFoundException": MediaConvertNotFound,
    "ConflictException": MediaConvertConflict,
    "ServiceQuotaExceededException": MediaConvertQuotaExceeded,
    "TooManyRequestsException": MediaConvertThrottled,
    "ThrottlingException": MediaConvertThrottled,
    "InternalServerErrorException": MediaConvertServiceError,
}


def mediaconvert_error_from(exc: ClientError) -> MediaConvertError:
    """Translate a botocore ``ClientError`` from MediaConvert into a named error.

    Unknown codes map by HTTP status: 5xx to :class:`MediaConvertServiceError`,
    429 to :class:`MediaConvertThrottled`, anything else to :class:`MediaConvertError`.
    """
    response: dict[str, Any] = dict(exc.response)
    error = response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", "")) or str(exc)
    http_status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    operation = exc.operation_name

    error_class = _ERRORS_BY_CODE.get(code)
    if error_class is None:
        if http_status >= 500:
            error_class = MediaConvertServiceError
        elif http_status == 429:
            error_class = MediaConvertThrottled
        else:
            error_class = MediaConvertError

    text = f"MediaConvert {operation} failed with {code} (HTTP {http_status}): {message}"
    if error_class.advice:
        text = f"{text.rstrip('.')}. {error_class.advice}"
    return error_class(text, code=code, http_status=http_status, operation=operation)
