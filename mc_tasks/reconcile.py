"""Bring jobs to their final state with GetJob, and cancel jobs.

Events can be lost: the EventBridge rule was missing for a while, a message sat
in the dead-letter queue, or the queue's retention ran out. Reconciliation
calls MediaConvert GetJob for every job that the store records as not final
and that has been silent for ``older_than_s`` seconds, and applies what GetJob
returns through the same store rules and signals as the drain. A change built
from GetJob has the event id ``get_job:<job id>:<status>``, so reconciling
twice applies it once, and the real event arriving later is a duplicate.

GetJob returns no output file paths and no group types (only durations and
video sizes), so a ``job_completed`` fired by reconciliation carries outputs
whose path lists are empty, with group types read from the job settings.

:func:`cancel_job` calls CancelJob and applies CANCELED at once (event id
``cancel:<job id>``), whether or not MediaConvert sends its own CANCELED event.
When the job already finished (ConflictException), it applies the job's real
final state from GetJob instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mc_tasks.clients import get_client
from mc_tasks.dispatch import handle_event
from mc_tasks.errors import (
    InvalidJobError,
    MediaConvertConflict,
    MediaConvertError,
    MediaConvertNotFound,
    mediaconvert_error_from,
)
from mc_tasks.events import (
    CANCELED,
    FINAL_STATUSES,
    ORIGIN_CANCEL,
    ORIGIN_GET_JOB,
    PROGRESSING,
    STATUS_UPDATE,
    JobStateChange,
)
from mc_tasks.metadata import REFERENCE_KEY
from mc_tasks.outputs import JobOutputs
from mc_tasks.settings import Settings, get_settings
from mc_tasks.store import JobRecord, JobStore

logger = logging.getLogger(__name__)

#: Seconds a non-final job must be silent before reconciliation calls GetJob; above
#: MediaConvert's longest status update interval (10 minutes).
DEFAULT_RECONCILE_AFTER_S = 900.0
#: Maximum jobs checked by one reconciliation run.
DEFAULT_RECONCILE_LIMIT = 200
RECONCILE_SENDER = "mc_tasks.reconcile_jobs"
CANCEL_SENDER = "mc_tasks.cancel_job"


@dataclass
class ReconcileReport:
    """Counts of one reconciliation run."""

    checked: int = 0
    applied: int = 0
    finalized: list[str] = field(default_factory=list)
    unchanged: int = 0
    not_found: int = 0
    failed: int = 0
    receiver_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of the counts and the finalized job ids."""
        return {
            "checked": self.checked,
            "applied": self.applied,
            "finalized": list(self.finalized),
            "unchanged": self.unchanged,
            "not_found": self.not_found,
            "failed": self.failed,
            "receiver_errors": self.receiver_errors,
        }


@dataclass(frozen=True)
class CanceledJob:
    """Outcome of canceling one job."""

    job_id: str
    #: True when CancelJob succeeded; False when the job had already finished.
    canceled: bool
    #: The job's status in the store afterwards.
    status: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "canceled": self.canceled, "status": self.status}


@dataclass(frozen=True)
class CancelResult:
    """Outcome of :func:`cancel_job`, one entry per job."""

    jobs: tuple[CanceledJob, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": [job.to_dict() for job in self.jobs]}


def reconcile_jobs(settings: Settings | None = None, *,
                   older_than_s: float = DEFAULT_RECONCILE_AFTER_S,
                   limit: int = DEFAULT_RECONCILE_LIMIT,
                   store: JobStore | None = None) -> ReconcileReport:
    """Check non-final jobs silent for ``older_than_s`` seconds with GetJob and apply their state.

    A job still SUBMITTED or PROGRESSING is marked as checked, so it is checked
    again only after another ``older_than_s`` seconds. GetJob errors are logged
    and counted, and never stop the run.
    """
    settings = settings or get_settings()
    store = store or JobStore(settings)
    client = get_client("mediaconvert", settings)
    report = ReconcileReport()

    for record in store.pending_jobs(older_than_s, limit=limit):
        report.checked += 1
        try:
            job = client.get_job(Id=record.job_id)["Job"]
        except ClientError as exc:
            error = mediaconvert_error_from(exc)
            if isinstance(error, MediaConvertNotFound):
                report.not_found += 1
                logger.warning("Job %s: GetJob found no such job; it stays %s in the store",
                               record.job_id, record.status)
            else:
                report.failed += 1
                logger.warning("Job %s: GetJob failed, checking again next run: %s",
                               record.job_id, error)
            store.touch(record.job_id)
            continue

        applied, receiver_errors = apply_get_job(store, dict(job), record.reference,
                                                 sender=RECONCILE_SENDER)
        report.applied += applied
        report.receiver_errors += receiver_errors
        if job["Status"] in FINAL_STATUSES:
            report.finalized.append(record.job_id)
        else:
            store.touch(record.job_id)
            if not applied:
                report.unchanged += 1

    logger.info("Reconciled jobs silent for %g s: %s", older_than_s, report.to_dict())
    return report


def cancel_job(job_id: str | None = None, *, reference: str | None = None,
               settings: Settings | None = None, store: JobStore | None = None) -> CancelResult:
    """Cancel one job by id, or every non-final job of a host reference; apply CANCELED once.

    Raise InvalidJobError unless exactly one of ``job_id`` and ``reference`` is
    given. A job that already finished is not an error. Other CancelJob failures
    raise MediaConvertError subclasses: MediaConvertNotFound for an unknown job
    id, and retryable ones for throttling and service errors.
    """
    if (job_id is None) == (reference is None):
        raise InvalidJobError("cancel_job needs exactly one of job_id and reference; got "
                              f"job_id={job_id!r}, reference={reference!r}.")
    settings = settings or get_settings()
    store = store or JobStore(settings)
    if job_id is not None:
        job_ids = [job_id]
    else:
        assert reference is not None
        job_ids = [record.job_id for record in store.find_jobs(reference) if not record.is_final]
        if not job_ids:
            logger.info("No unfinished job with reference %s to cancel", reference)
    return CancelResult(jobs=tuple(_cancel_one(store, settings, one) for one in job_ids))


def apply_get_job(store: JobStore, job: Mapping[str, Any], reference: str | None, *,
                  sender: str) -> tuple[int, int]:
    """Apply the state of a GetJob ``Job``; return (changes applied, receiver errors)."""
    applied = 0
    receiver_errors = 0
    for event in changes_from_get_job(job, reference):
        dispatch = handle_event(store, event, sender=sender)
        applied += int(dispatch.fired)
        receiver_errors += len(dispatch.receiver_errors)
    return applied, receiver_errors


def changes_from_get_job(job: Mapping[str, Any], reference: str | None = None
                         ) -> list[JobStateChange]:
    """Build the state changes that a GetJob ``Job`` implies (none while SUBMITTED)."""
    status = job["Status"]
    job_id = job["Id"]
    metadata = {str(key): str(value) for key, value in (job.get("UserMetadata") or {}).items()}
    timing = job.get("Timing") or {}
    common: dict[str, Any] = {
        "job_id": job_id,
        "queue": job.get("Queue"),
        "user_metadata": metadata,
        "reference": metadata.get(REFERENCE_KEY, reference),
        "origin": ORIGIN_GET_JOB,
    }

    if status in FINAL_STATUSES:
        warnings = tuple({"code": item.get("Code"), "count": item.get("Count")}
                         for item in job.get("Warnings") or [])
        outputs = JobOutputs.from_get_job(job) if status == "COMPLETE" else JobOutputs()
        return [JobStateChange(
            event_id=f"get_job:{job_id}:{status}", status=status,
            timestamp_ms=_ms(timing.get("FinishTime")), error_code=job.get("ErrorCode"),
            error_message=job.get("ErrorMessage"), output_groups=outputs.groups,
            warnings=warnings, **common)]
    if status != PROGRESSING:
        return []

    changes = [JobStateChange(event_id=f"get_job:{job_id}:{PROGRESSING}", status=PROGRESSING,
                              timestamp_ms=_ms(timing.get("StartTime")), **common)]
    percent = job.get("JobPercentComplete")
    if percent is not None:
        now_ms = _ms(None)
        changes.append(JobStateChange(
            event_id=f"get_job:{job_id}:{STATUS_UPDATE}:{now_ms}", status=STATUS_UPDATE,
            timestamp_ms=now_ms, percent=int(percent), phase=job.get("CurrentPhase"), **common))
    return changes


def _cancel_one(store: JobStore, settings: Settings, job_id: str) -> CanceledJob:
    client = get_client("mediaconvert", settings)
    record = store.get_job(job_id)
    reference = record.reference if record is not None else None
    try:
        client.cancel_job(Id=job_id)
    except ClientError as exc:
        error: MediaConvertError = mediaconvert_error_from(exc)
        if not isinstance(error, MediaConvertConflict):
            raise error from exc
        logger.info("Job %s: CancelJob returned Conflict; applying its state from GetJob",
                    job_id)
        try:
            job = client.get_job(Id=job_id)["Job"]
        except ClientError as get_exc:
            raise mediaconvert_error_from(get_exc) from get_exc
        apply_get_job(store, dict(job), reference, sender=CANCEL_SENDER)
        return CanceledJob(job_id=job_id, canceled=False, status=_status(store.get_job(job_id)))

    metadata = dict(record.user_metadata) if record is not None else {}
    event = JobStateChange(
        event_id=f"cancel:{job_id}", job_id=job_id, status=CANCELED, timestamp_ms=_ms(None),
        queue=record.queue if record is not None else None, user_metadata=metadata,
        reference=reference, origin=ORIGIN_CANCEL,
    )
    handle_event(store, event, sender=CANCEL_SENDER)
    logger.info("Job %s canceled", job_id)
    return CanceledJob(job_id=job_id, canceled=True, status=_status(store.get_job(job_id)))


def _status(record: JobRecord | None) -> str | None:
    return record.status if record is not None else None


def _ms(value: datetime | None) -> int:
    if value is None:
        return int(time.time() * 1000)
    return int(value.timestamp() * 1000)
