"""Checks that delay or reject a submission before CreateJob: paused queue, busy queue, rate limit.

Before the first CreateJob attempt of a submission, :func:`check_queue` runs
and a CreateJob token is taken (:func:`admit_submission` does both;
:func:`mc_tasks.submit.submit_transcode` takes the token in the script call
that writes the submission's pending record). They raise without any AWS write:

* :class:`~mc_tasks.errors.QueuePausedError` when the queue is PAUSED and
  ``MC_TASKS_PAUSED_QUEUE=reject``. With ``warn`` (the default) the job is
  submitted and a warning is logged, because a paused queue accepts jobs but
  starts none until it is resumed. With ``ignore`` GetQueue is never called.
* :class:`~mc_tasks.errors.QueueBusyError` (retryable, with ``retry_after_s``)
  when the queue's SubmittedJobsCount is at or above
  ``MC_TASKS_MAX_SUBMITTED_JOBS``.
* :class:`~mc_tasks.errors.RateLimitedError` (retryable, with
  ``retry_after_s``) when the shared CreateJob rate limit of
  :mod:`mc_tasks.ratelimit` had no token within ``MC_TASKS_CREATE_JOB_MAX_WAIT_S``.

The Celery task catches the two retryable errors and calls
``self.retry(countdown=exc.retry_after_s)``, so a delayed submission keeps its
task id, and so its submission id and ClientRequestToken.

GetQueue results are cached per process for ``MC_TASKS_QUEUE_STATUS_CACHE_S``
seconds, keyed by region and queue name, so a burst of submissions costs one
GetQueue call. The job counts are MediaConvert's estimates and may be that
many seconds old, so the busy limit is approximate: concurrent submissions
can overshoot it by the number of workers. When no check can reject (``warn``
without a busy limit), a failing GetQueue is logged and the job is submitted.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from botocore.exceptions import BotoCoreError

from mc_tasks.errors import McTasksError, QueueBusyError, QueuePausedError
from mc_tasks.queues import QueueStatus, get_queue_status
from mc_tasks.ratelimit import acquire_create_job_token
from mc_tasks.settings import Settings, get_settings
from mc_tasks.validation import queue_name

logger = logging.getLogger(__name__)

_lock = threading.Lock()
#: (region, queue name) -> (time.monotonic() when fetched, status)
_queue_statuses: dict[tuple[str, str], tuple[float, QueueStatus]] = {}
#: Queues whose failing GetQueue was already logged at WARNING level by this process.
_warned_lookup_failures: set[tuple[str, str]] = set()


def _clear_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _queue_statuses.clear()
    _warned_lookup_failures.clear()


os.register_at_fork(after_in_child=_clear_after_fork)


def get_queue_status_cached(settings: Settings | None = None, queue: str | None = None
                            ) -> QueueStatus:
    """Return the queue's status, calling GetQueue only when the cached one has expired.

    A status expires ``Settings.queue_status_cache_s`` seconds after GetQueue
    returned it, and 0 calls GetQueue every time. Two threads that miss the
    cache at the same moment may both call GetQueue. Errors are those of
    :func:`mc_tasks.queues.get_queue_status` and are not cached.
    """
    settings = settings or get_settings()
    key = (settings.region, queue_name(queue or settings.mediaconvert_queue,
                                       region=settings.region))
    max_age_s = settings.queue_status_cache_s

    if max_age_s > 0:
        with _lock:
            cached = _queue_statuses.get(key)
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]

    status = get_queue_status(settings, queue)
    if max_age_s > 0:
        with _lock:
            _queue_statuses[key] = (time.monotonic(), status)
    return status


def clear_queue_status_cache() -> None:
    """Forget every cached queue status; the next check calls GetQueue."""
    with _lock:
        _queue_statuses.clear()
        _warned_lookup_failures.clear()


def queue_checks_enabled(settings: Settings) -> bool:
    """Return whether :func:`check_queue` has anything to check with ``settings``.

    It has nothing with ``MC_TASKS_PAUSED_QUEUE=ignore`` and no busy limit.
    """
    return settings.paused_queue != "ignore" or settings.max_submitted_jobs > 0


def check_queue(settings: Settings | None = None, *, submission_id: str | None = None
                ) -> QueueStatus | None:
    """Check that the configured queue may receive a job now, and return its status.

    Raises QueuePausedError or QueueBusyError as described in the module
    docstring. Returns None without calling GetQueue when
    ``MC_TASKS_PAUSED_QUEUE=ignore`` and there is no busy limit, and also
    when GetQueue failed while no check could reject.
    """
    settings = settings or get_settings()
    if not queue_checks_enabled(settings):
        return None
    can_reject = settings.paused_queue == "reject" or settings.max_submitted_jobs > 0

    try:
        status = get_queue_status_cached(settings)
    except (McTasksError, BotoCoreError) as exc:
        if can_reject:
            raise
        _log_lookup_failure(settings, submission_id, exc)
        return None

    if status.paused:
        _handle_paused(settings, status, submission_id)
    if 0 < settings.max_submitted_jobs <= status.submitted_jobs_count:
        _raise_busy(settings, status, submission_id)
    return status


def admit_submission(settings: Settings | None = None, *, submission_id: str | None = None
                     ) -> None:
    """Run the queue checks, then take a CreateJob token, raising when the job must wait.

    Call it only on the path that will send CreateJob for a new submission:
    an idempotent replay of a recorded job must not be delayed or rejected.
    Raises QueuePausedError, QueueBusyError or RateLimitedError, a
    MediaConvertError from GetQueue when a check could reject, and Redis
    errors unchanged.
    """
    settings = settings or get_settings()
    check_queue(settings, submission_id=submission_id)
    acquire_create_job_token(settings, submission_id=submission_id)


def _handle_paused(settings: Settings, status: QueueStatus, submission_id: str | None) -> None:
    if settings.paused_queue == "reject":
        logger.warning("Submission %s rejected: MediaConvert queue %s is PAUSED",
                       submission_id, status.name)
        raise QueuePausedError(
            f"MediaConvert queue {status.name} is PAUSED, so it would accept the job but not "
            "start it. Resume the queue in the MediaConvert console or with UpdateQueue "
            f"(Status=ACTIVE), or set MC_TASKS_PAUSED_QUEUE=warn to submit to a paused queue.",
            queue=status.name,
        )
    logger.warning("Submission %s: MediaConvert queue %s is PAUSED, so its job will wait until "
                   "the queue is resumed (console or UpdateQueue Status=ACTIVE)",
                   submission_id, status.name)


def _raise_busy(settings: Settings, status: QueueStatus, submission_id: str | None) -> None:
    retry_after_s = settings.queue_busy_retry_s
    logger.info("Submission %s delayed %g s: MediaConvert queue %s has %d submitted jobs "
                "(limit %d)", submission_id, retry_after_s, status.name,
                status.submitted_jobs_count, settings.max_submitted_jobs)
    raise QueueBusyError(
        f"MediaConvert queue {status.name} has about {status.submitted_jobs_count} submitted "
        f"jobs, at or above MC_TASKS_MAX_SUBMITTED_JOBS={settings.max_submitted_jobs}. Retry in "
        f"{retry_after_s:g} s, or raise MC_TASKS_MAX_SUBMITTED_JOBS (0 removes the limit).",
        retry_after_s=retry_after_s,
        queue=status.name,
        submitted_jobs_count=status.submitted_jobs_count,
    )


def _log_lookup_failure(settings: Settings, submission_id: str | None,
                        exc: Exception) -> None:
    key = (settings.region, settings.mediaconvert_queue)
    with _lock:
        first = key not in _warned_lookup_failures
        _warned_lookup_failures.add(key)
    level = logging.WARNING if first else logging.DEBUG
    logger.log(level, "Submission %s: GetQueue of MediaConvert queue %s failed, so submitting "
               "without the paused-queue check (set MC_TASKS_PAUSED_QUEUE=ignore to skip it): %s",
               submission_id, settings.mediaconvert_queue, exc)


__all__ = [
    "admit_submission",
    "check_queue",
    "clear_queue_status_cache",
    "get_queue_status_cached",
    "queue_checks_enabled",
]
