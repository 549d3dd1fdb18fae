"""MediaConvert job state change events: the model and the parser of SQS messages.

MediaConvert sends an EventBridge event with source ``aws.mediaconvert`` and
detail-type ``MediaConvert Job State Change`` for each job status change:
PROGRESSING, STATUS_UPDATE, COMPLETE, ERROR, CANCELED, INPUT_INFORMATION,
NEW_WARNING and QUEUE_HOP. There is no event for SUBMITTED. Delivery is at least
once and unordered, so the same event (same ``id``) can arrive twice and a
STATUS_UPDATE can arrive after COMPLETE; :mod:`mc_tasks.store` sorts that out.

An SQS message body is either the event itself (an EventBridge target) or an SNS
notification (``"Type": "Notification"``) whose ``Message`` is the event.
moto's EventBridge leaves out the envelope's ``account``, so the account falls
back to ``detail.accountId``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mc_tasks.errors import EventParseError
from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY, SUBMISSION_KEY
from mc_tasks.outputs import JobOutputs, OutputDetail, OutputGroup
from mc_tasks.settings import Settings

EVENT_SOURCE = "aws.mediaconvert"
EVENT_DETAIL_TYPE = "MediaConvert Job State Change"

PROGRESSING = "PROGRESSING"
STATUS_UPDATE = "STATUS_UPDATE"
COMPLETE = "COMPLETE"
ERROR = "ERROR"
CANCELED = "CANCELED"
INPUT_INFORMATION = "INPUT_INFORMATION"
NEW_WARNING = "NEW_WARNING"
QUEUE_HOP = "QUEUE_HOP"
#: Status of a job that was created and has no event yet (MediaConvert sends none).
SUBMITTED = "SUBMITTED"

#: Statuses a job never leaves.
FINAL_STATUSES = frozenset({COMPLETE, ERROR, CANCELED})
#: Statuses that add information without changing the job's status.
INFO_STATUSES = frozenset({INPUT_INFORMATION, NEW_WARNING, QUEUE_HOP})
KNOWN_STATUSES = FINAL_STATUSES | INFO_STATUSES | {PROGRESSING, STATUS_UPDATE}

#: MediaConvert job error codes after which resubmitting the same job may succeed:
#: 1999 and 3999 are the service's unknown or internal errors.
#: NOTE: a judgement from the documented code list, not a statement by AWS; every
#: other code (input, settings, permission, output errors) is treated as permanent.
TRANSIENT_ERROR_CODES = frozenset({1999, 3999})

#: Origins of a JobStateChange.
ORIGIN_EVENT = "event"
ORIGIN_GET_JOB = "get_job"
ORIGIN_CANCEL = "cancel"

__all__ = [
    "EventParseError",
    "JobOutputs",
    "JobStateChange",
    "OutputDetail",
    "OutputGroup",
    "discard_reason",
    "parse_event",
    "parse_message",
]


@dataclass(frozen=True)
class JobStateChange:
    """One job state change, from an event or rebuilt from GetJob.

    ``timestamp_ms`` is ``detail.timestamp`` (milliseconds since the epoch, set
    by MediaConvert). ``percent`` and ``phase`` are set for STATUS_UPDATE,
    ``error_code`` and ``error_message`` for ERROR, ``output_groups`` for
    COMPLETE. ``warnings`` contains ``{"code", "message"}`` for NEW_WARNING and the
    ``{"code", "count"}`` summary of a COMPLETE or ERROR event. ``detail`` is the
    event's raw ``detail``.
    """

    event_id: str
    job_id: str
    status: str
    timestamp_ms: int
    account_id: str | None = None
    region: str | None = None
    queue: str | None = None
    user_metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    reference: str | None = None
    percent: int | None = None
    phase: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    output_groups: tuple[OutputGroup, ...] = ()
    warnings: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)
    #: ``event`` for an SQS event, ``get_job`` or ``cancel`` when rebuilt by reconciliation.
    origin: str = ORIGIN_EVENT

    @property
    def is_final(self) -> bool:
        """True for COMPLETE, ERROR and CANCELED."""
        return self.status in FINAL_STATUSES

    @property
    def outputs(self) -> JobOutputs:
        """The output groups as :class:`JobOutputs` (empty unless COMPLETE)."""
        return JobOutputs(groups=self.output_groups)

    @property
    def permanent(self) -> bool:
        """For ERROR: True when resubmitting the same job would fail again."""
        return self.error_code not in TRANSIENT_ERROR_CODES

    @property
    def application(self) -> str | None:
        """The application marker from UserMetadata, or None for a foreign job."""
        return self.user_metadata.get(APPLICATION_KEY)

    @property
    def submission_id(self) -> str | None:
        """The submission id from UserMetadata, or None."""
        return self.user_metadata.get(SUBMISSION_KEY)

    @property
    def input_details(self) -> list[Any] | None:
        """``detail.inputDetails`` of an INPUT_INFORMATION event, else None."""
        details = self.detail.get("inputDetails")
        return details if isinstance(details, list) else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this change, without the raw detail."""
        return {
            "event_id": self.event_id,
            "job_id": self.job_id,
            "status": self.status,
            "timestamp_ms": self.timestamp_ms,
            "account_id": self.account_id,
            "region": self.region,
            "queue": self.queue,
            "user_metadata": dict(self.user_metadata),
            "reference": self.reference,
            "percent": self.percent,
            "phase": self.phase,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "outputs": self.outputs.to_dict(),
            "warnings": [dict(warning) for warning in self.warnings],
            "origin": self.origin,
        }


def parse_message(body: str) -> JobStateChange:
    """Parse an SQS message body into a :class:`JobStateChange`.

    Accept the event JSON itself or an SNS notification that wraps it. Raise
    :class:`EventParseError` with ``reason`` ``not_json`` or ``wrong_shape``
    for a body that is not a usable event, and with ``discardable=True`` and
    reason ``other_source`` or ``other_detail_type`` for a well-formed event
    that is not a MediaConvert job state change.
    """
    envelope = _load_object(body, "message body")
    if envelope.get("Type") == "Notification" and "Message" in envelope:
        message = envelope["Message"]
        if not isinstance(message, str):
            raise EventParseError("The SNS notification's Message is not a string.",
                                  reason="wrong_shape")
        envelope = _load_object(message, "SNS Message")
    return parse_event(envelope)


def parse_event(envelope: Mapping[str, Any]) -> JobStateChange:
    """Parse a decoded EventBridge event; raise :class:`EventParseError` like parse_message."""
    source = envelope.get("source")
    detail_type = envelope.get("detail-type")
    if not isinstance(source, str) or not isinstance(detail_type, str):
        raise EventParseError("The message is not an EventBridge event: 'source' or "
                              "'detail-type' is missing.", reason="wrong_shape")
    if source != EVENT_SOURCE:
        raise EventParseError(f"Event source {source!r} is not {EVENT_SOURCE!r}.",
                              reason="other_source", discardable=True)
    if detail_type != EVENT_DETAIL_TYPE:
        raise EventParseError(f"Event detail-type {detail_type!r} is not "
                              f"{EVENT_DETAIL_TYPE!r}.", reason="other_detail_type",
                              discardable=True)

    event_id = envelope.get("id")
    detail = envelope.get("detail")
    if not isinstance(event_id, str) or not event_id:
        raise EventParseError("The event has no 'id'.", reason="wrong_shape")
    if not isinstance(detail, Mapping):
        raise EventParseError(f"Event {event_id} has no 'detail' object.", reason="wrong_shape")
    try:
        return _parse_detail(event_id, envelope, detail)
    except (TypeError, ValueError, ArithmeticError) as exc:
        # ArithmeticError: a number such as 1e999 or Infinity where an integer belongs.
        raise EventParseError(f"Event {event_id} has an invalid detail: {exc}.",
                              reason="wrong_shape") from exc


def discard_reason(event: JobStateChange, settings: Settings, *,
                   expected_account_id: str | None = None) -> str | None:
    """Return why this library must ignore ``event``, or None when the event is ours.

    Reasons: ``unknown_status`` (a status this version does not know),
    ``other_account`` (only checked when ``expected_account_id`` is given),
    ``other_region`` (the envelope's region differs from ``settings.region``) and
    ``foreign_job`` (UserMetadata lacks the application marker equal to
    ``settings.application``, so another application submitted the job).
    """
    if event.status not in KNOWN_STATUSES:
        return "unknown_status"
    if expected_account_id and event.account_id and event.account_id != expected_account_id:
        return "other_account"
    if event.region and event.region != settings.region:
        return "other_region"
    if event.application != settings.application:
        return "foreign_job"
    return None


def _load_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the parser's recursion limit.
        raise EventParseError(f"The {what} is not JSON: {exc}.", reason="not_json") from exc
    if "\\u" in text and _has_lone_surrogate(value):
        # JSON allows an escape such as \udc80 on its own, which is no Unicode text:
        # such a string can be neither encoded as UTF-8 nor stored in Redis.
        raise EventParseError(f"The {what} is not JSON text: it escapes an unpaired UTF-16 "
                              "surrogate (\\ud800 to \\udfff).", reason="not_json")
    if not isinstance(value, dict):
        raise EventParseError(f"The {what} is JSON {type(value).__name__}, expected an object.",
                              reason="wrong_shape")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parse_detail(event_id: str, envelope: Mapping[str, Any],
                  detail: Mapping[str, Any]) -> JobStateChange:
    job_id = detail.get("jobId")
    status = detail.get("status")
    timestamp = detail.get("timestamp")
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("'jobId' is missing")
    if not isinstance(status, str) or not status:
        raise ValueError("'status' is missing")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise ValueError(f"'timestamp' is {timestamp!r}, expected milliseconds")

    raw_metadata = detail.get("userMetadata") or {}
    if not isinstance(raw_metadata, Mapping):
        raise ValueError("'userMetadata' is not an object")
    user_metadata = {str(key): str(value) for key, value in raw_metadata.items()}

    progress = detail.get("jobProgress") or {}
    if not isinstance(progress, Mapping):
        raise ValueError("'jobProgress' is not an object")
    percent = progress.get("jobPercentComplete")
    phase = progress.get("currentPhase")

    error_code = detail.get("errorCode")
    output_groups: tuple[OutputGroup, ...] = ()
    if status == COMPLETE:
        output_groups = JobOutputs.from_event_detail(detail.get("outputGroupDetails", [])).groups

    account = envelope.get("account") or detail.get("accountId")
    region = envelope.get("region")
    queue = detail.get("queue")
    error_message = detail.get("errorMessage")
    return JobStateChange(
        event_id=event_id,
        job_id=job_id,
        status=status,
        timestamp_ms=int(timestamp),
        account_id=str(account) if account else None,
        region=str(region) if region else None,
        queue=str(queue) if queue else None,
        user_metadata=user_metadata,
        reference=user_metadata.get(REFERENCE_KEY),
        percent=int(percent) if isinstance(percent, int | float) else None,
        phase=str(phase) if phase else None,
        error_code=int(error_code) if error_code is not None else None,
        error_message=str(error_message) if error_message is not None else None,
        output_groups=output_groups,
        warnings=_warnings(status, detail),
        detail=detail,
    )


def _warnings(status: str, detail: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    if status == NEW_WARNING:
        return ({"code": detail.get("warningCode"), "message": detail.get("warningMessage")},)
    summary = detail.get("warnings") or []
    if not isinstance(summary, list):
        raise ValueError("'warnings' is not a list")
    return tuple(item for item in summary if isinstance(item, Mapping))
