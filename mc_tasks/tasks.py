"""Celery tasks of mc_tasks: thin wrappers over the plain functions.

The tasks are ``shared_task``s, so they register with whatever Celery app the
host application uses. Arguments and results are JSON-serialisable.

Retries: botocore first retries throttling, 5xx and connection errors itself
("standard" mode, ``Settings.aws_max_attempts`` attempts, see
:mod:`mc_tasks.clients`). When it gives up, ``submit_transcode`` and
``get_queue_status`` retry through Celery with exponential backoff and full
jitter, at most :data:`SUBMIT_MAX_RETRIES` times, and only for errors that are
retryable (:class:`~mc_tasks.errors.MediaConvertThrottled`,
:class:`~mc_tasks.errors.MediaConvertServiceError` and connection failures).
Permanent errors (bad request, forbidden, not found, conflict, quota) fail the
task at once. ``submit_transcode`` passes its Celery task id as the submission
id, so every retry sends the same ClientRequestToken and finds the job created
by an earlier attempt instead of creating a second one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from celery import Task, shared_task

from mc_tasks import drain, provision, reconcile, submit
from mc_tasks.clients import caller_account_id
from mc_tasks.errors import (
    ConfigurationError,
    InvalidJobError,
    MediaConvertError,
    MediaConvertServiceError,
    MediaConvertThrottled,
    ProvisioningError,
    QueueBusyError,
    QueuePausedError,
    RateLimitedError,
)

logger = logging.getLogger(__name__)

#: Errors retried by Celery after botocore's own retries gave up.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    MediaConvertThrottled,
    MediaConvertServiceError,
    EndpointConnectionError,
    ReadTimeoutError,
    ConnectionClosedError,
    # A Redis failure after CreateJob leaves the submission record "pending"; the
    # retry finds the job through the record or ListJobs instead of creating another.
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
#: Errors that a caller causes and must fix; Celery logs them in one line, without
#: a traceback, because they are not bugs of the worker.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    InvalidJobError,
    ConfigurationError,
    MediaConvertError,
    QueuePausedError,
)
#: Celery retries of a submission after botocore gave up.
SUBMIT_MAX_RETRIES = 6
#: Deferrals of one submission for a busy queue or the CreateJob rate limit.
DEFER_MAX_RETRIES = 60
#: Upper bound of the backoff between two Celery retries, in seconds.
RETRY_BACKOFF_MAX_S = 300


@shared_task(
    bind=True,
    name="mc_tasks.submit_transcode",
    autoretry_for=RETRYABLE_ERRORS,
    retry_backoff=True,
    retry_backoff_max=RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
    max_retries=SUBMIT_MAX_RETRIES,
    acks_late=True,
    throws=EXPECTED_ERRORS,
)
def submit_transcode(
    self: Task[Any, Any],
    input_uri: str,
    destination: str,
    *,
    reference: str | None = None,
    job_settings: Mapping[str, Any] | str | None = None,
    presets: Sequence[str] | None = None,
    job_template: str | None = None,
    user_metadata: Mapping[str, str] | None = None,
    priority: int = 0,
    status_update_interval: str = "SECONDS_10",
    acceleration: str | None = None,
    tags: Mapping[str, str] | None = None,
    hop_destinations: Sequence[Mapping[str, Any]] | None = None,
    submission_id: str | None = None,
) -> dict[str, Any]:
    """Create a MediaConvert job for ``input_uri``; return the job id and submission id.

    See :func:`mc_tasks.submit.submit_transcode` for the arguments. The
    submission id defaults to this task's id, which stays the same across
    retries, so a retried task never creates a second job.
    """
    try:
        result = submit.submit_transcode(
            input_uri,
            destination,
            reference=reference,
            job_settings=job_settings,
            presets=presets,
            job_template=job_template,
            user_metadata=user_metadata,
            priority=priority,
            status_update_interval=status_update_interval,
            acceleration=acceleration,
            tags=tags,
            hop_destinations=hop_destinations,
            submission_id=submission_id or self.request.id,
        )
    except (QueueBusyError, RateLimitedError) as exc:
        # A deferral, not a failure: retry after the delay the error names
        # instead of the exponential backoff used for AWS errors.
        raise self.retry(exc=exc, countdown=exc.retry_after_s * random.uniform(1.0, 1.5),  # noqa: S311
                         max_retries=DEFER_MAX_RETRIES) from exc
    return result.to_dict()


@shared_task(
    name="mc_tasks.get_queue_status",
    autoretry_for=RETRYABLE_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def get_queue_status(queue: str | None = None) -> dict[str, Any]:
    """Return the MediaConvert queue's status and estimated job counts (GetQueue)."""
    return submit.get_queue_status(queue=queue).to_dict()


@shared_task(name="mc_tasks.drain_status_queue", ignore_result=True)
def drain_status_queue() -> dict[str, Any]:
    """Receive job state change events from SQS and fire signals (see :mod:`mc_tasks.drain`).

    A missing queue is logged as one error line per run instead of a traceback,
    because beat keeps scheduling the task until the setup has run.
    """
    try:
        return drain.drain_status_queue(expected_account_id=caller_account_id()).to_dict()
    except ProvisioningError as exc:
        logger.error("Drain skipped: %s", exc)
        return {"error": str(exc)}


@shared_task(name="mc_tasks.reconcile_jobs", ignore_result=True)
def reconcile_jobs() -> dict[str, Any]:
    """Bring jobs whose events were lost to their final state with GetJob."""
    return reconcile.reconcile_jobs().to_dict()


@shared_task(
    name="mc_tasks.cancel_job",
    autoretry_for=RETRYABLE_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def cancel_job(job_id: str | None = None, *, reference: str | None = None) -> dict[str, Any]:
    """Cancel a job by MediaConvert job id or by the host's reference."""
    return reconcile.cancel_job(job_id, reference=reference).to_dict()


@shared_task(name="mc_tasks.setup_event_delivery")
def setup_event_delivery() -> dict[str, Any]:
    """Create or repair the SQS queue, dead-letter queue, queue policy and EventBridge rule."""
    return provision.setup_event_delivery().to_dict()
