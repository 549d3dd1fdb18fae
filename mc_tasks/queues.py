"""Status of a MediaConvert queue (GetQueue).

A PAUSED queue still accepts jobs but starts none until it is resumed. The job
counts are MediaConvert's estimates.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from mc_tasks.clients import get_client
from mc_tasks.errors import mediaconvert_error_from
from mc_tasks.settings import Settings, get_settings
from mc_tasks.validation import queue_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueStatus:
    """A queue's state as returned by GetQueue."""

    name: str
    arn: str
    #: ``ACTIVE`` or ``PAUSED``.
    status: str
    #: Estimated jobs waiting in the queue.
    submitted_jobs_count: int
    #: Estimated jobs being transcoded.
    progressing_jobs_count: int

    @property
    def paused(self) -> bool:
        return self.status == "PAUSED"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict (a Celery task result)."""
        return asdict(self)


def get_queue_status(settings: Settings | None = None, queue: str | None = None) -> QueueStatus:
    """Return the status of ``queue`` (a name or ARN, default ``Settings.mediaconvert_queue``).

    Raises InvalidJobError for a malformed queue or an ARN of another region,
    and a :class:`~mc_tasks.errors.MediaConvertError` subclass when GetQueue
    fails, for example MediaConvertNotFound for an unknown queue.
    """
    settings = settings or get_settings()
    name = queue_name(queue or settings.mediaconvert_queue, region=settings.region)

    client = get_client("mediaconvert", settings)
    try:
        response = client.get_queue(Name=name)
    except ClientError as exc:
        raise mediaconvert_error_from(exc) from exc

    found = response["Queue"]
    status = QueueStatus(
        name=found["Name"],
        arn=found.get("Arn", ""),
        status=found.get("Status", "ACTIVE"),
        submitted_jobs_count=int(found.get("SubmittedJobsCount", 0)),
        progressing_jobs_count=int(found.get("ProgressingJobsCount", 0)),
    )
    logger.debug("MediaConvert queue %s is %s with %d submitted and %d progressing jobs",
                 status.name, status.status, status.submitted_jobs_count,
                 status.progressing_jobs_count)
    return status


__all__ = ["QueueStatus", "get_queue_status"]
