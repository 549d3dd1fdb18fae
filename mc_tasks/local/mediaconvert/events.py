"""Publish "MediaConvert Job State Change" events to EventBridge as MediaConvert does.

Each event has source ``aws.mediaconvert``, the job ARN as its only resource
and a ``detail`` with ``timestamp`` (epoch milliseconds), ``accountId``,
``queue`` (ARN), ``jobId``, ``status`` and ``userMetadata``, plus what the
status adds (``jobProgress``, ``outputGroupDetails``, ``errorCode`` and
``errorMessage``). A failed PutEvents is logged and not retried beyond
botocore's own retries: as in AWS, delivery of an event is not guaranteed.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mc_tasks.local.mediaconvert.aws import make_client

logger = logging.getLogger(__name__)

EVENT_SOURCE = "aws.mediaconvert"
EVENT_DETAIL_TYPE = "MediaConvert Job State Change"


@dataclass(frozen=True)
class JobIdentity:
    """Fields that every event of one job repeats."""

    job_id: str
    job_arn: str
    queue_arn: str
    user_metadata: Mapping[str, str]


class EventPublisher:
    """Send job state change events to the default event bus."""

    def __init__(self, region: str, account_id: str) -> None:
        self.account_id = account_id
        self._client = make_client("events", "EVENTS", region)

    def publish(self, job: JobIdentity, status: str, extra: Mapping[str, Any] | None = None
                ) -> None:
        """Send one event for ``job`` with ``status`` and the status's own ``extra`` fields."""
        detail: dict[str, Any] = {
            "timestamp": int(time.time() * 1000),
            "accountId": self.account_id,
            "queue": job.queue_arn,
            "jobId": job.job_id,
            "status": status,
            "userMetadata": dict(job.user_metadata),
            **(extra or {}),
        }
        entry = {
            "Time": datetime.datetime.now(datetime.UTC),
            "Source": EVENT_SOURCE,
            "DetailType": EVENT_DETAIL_TYPE,
            "Resources": [job.job_arn],
            "Detail": json.dumps(detail),
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            logger.warning("Job %s: sending the %s event failed: %s", job.job_id, status, exc)
            return
        if response.get("FailedEntryCount"):
            logger.warning("Job %s: EventBridge rejected the %s event: %s", job.job_id, status,
                           response.get("Entries"))
            return
        logger.debug("Job %s: sent the %s event", job.job_id, status)
