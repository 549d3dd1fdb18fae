"""In-memory records of jobs and queues, and how each appears in the API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mc_tasks.local.mediaconvert.events import JobIdentity
from mc_tasks.local.mediaconvert.plan import JobPlan

SUBMITTED = "SUBMITTED"
PROGRESSING = "PROGRESSING"
COMPLETE = "COMPLETE"
ERROR = "ERROR"
CANCELED = "CANCELED"
#: Statuses a job never leaves.
FINAL_STATUSES = frozenset({COMPLETE, ERROR, CANCELED})

QUEUE_ACTIVE = "ACTIVE"
QUEUE_PAUSED = "PAUSED"


@dataclass
class QueueRecord:
    name: str
    arn: str
    status: str = QUEUE_ACTIVE
    description: str | None = None
    created_at: float = field(default_factory=time.time)
    last_updated: float = field(default_factory=time.time)

    def to_api(self, submitted: int, progressing: int) -> dict[str, Any]:
        """Return the queue as the API's ``Queue`` shape, with its current job counts."""
        return {
            "Arn": self.arn,
            "Name": self.name,
            "Status": self.status,
            "Description": self.description,
            "Type": "ON_DEMAND",
            "PricingPlan": "ON_DEMAND",
            "CreatedAt": self.created_at,
            "LastUpdated": self.last_updated,
            "SubmittedJobsCount": submitted,
            "ProgressingJobsCount": progressing,
        }


@dataclass
class JobRecord:
    """One job; the job store's lock guards every field that changes after creation."""

    id: str
    arn: str
    queue: QueueRecord
    role: str
    settings: Mapping[str, Any]
    plan: JobPlan
    user_metadata: Mapping[str, str]
    priority: int
    status_update_interval: str
    client_request_token: str | None
    tags: Mapping[str, str]
    acceleration_settings: Mapping[str, Any] | None
    submit_time: float = field(default_factory=time.time)
    status: str = SUBMITTED
    start_time: float | None = None
    finish_time: float | None = None
    percent_complete: int | None = None
    current_phase: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    #: The COMPLETE event's ``outputGroupDetails`` (event member names).
    output_group_details: list[dict[str, Any]] | None = None
    cancel_requested: bool = False
    process: subprocess.Popen[str] | None = None

    @property
    def identity(self) -> JobIdentity:
        return JobIdentity(self.id, self.arn, self.queue.arn, self.user_metadata)

    def to_api(self) -> dict[str, Any]:
        """Return the job as the API's ``Job`` shape (API member names)."""
        return {
            "Id": self.id,
            "Arn": self.arn,
            "CreatedAt": self.submit_time,
            "Queue": self.queue.arn,
            "Role": self.role,
            "Settings": self.settings,
            "Status": self.status,
            "StatusUpdateInterval": self.status_update_interval,
            "UserMetadata": self.user_metadata,
            "Priority": self.priority,
            "ClientRequestToken": self.client_request_token,
            "AccelerationSettings": self.acceleration_settings,
            "AccelerationStatus": "NOT_APPLICABLE",
            "RetryCount": 0,
            "JobPercentComplete": self.percent_complete,
            "CurrentPhase": self.current_phase,
            "ErrorCode": self.error_code,
            "ErrorMessage": self.error_message,
            "Timing": {"SubmitTime": self.submit_time, "StartTime": self.start_time,
                       "FinishTime": self.finish_time},
            "OutputGroupDetails": _api_output_group_details(self.output_group_details),
        }


def _api_output_group_details(details: list[dict[str, Any]] | None
                              ) -> list[dict[str, Any]] | None:
    # GetJob's OutputGroupDetails carries only durations and frame sizes, not file paths.
    if details is None:
        return None
    groups = []
    for group in details:
        outputs = []
        for output in group["outputDetails"]:
            api_output: dict[str, Any] = {"DurationInMs": output.get("durationInMs")}
            video = output.get("videoDetails")
            if video:
                api_output["VideoDetails"] = {"WidthInPx": video["widthInPx"],
                                              "HeightInPx": video["heightInPx"]}
            outputs.append(api_output)
        groups.append({"OutputDetails": outputs})
    return groups
