"""The desired state of the event path: names, ARNs, attributes, pattern, target, policy.

Everything here is pure: functions build the documents that setup writes and
verification compares, and normalise what AWS returns so that a harmless
difference in formatting (a string where a list was written, reordered keys)
is not reported as drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mc_tasks.metadata import APPLICATION_KEY
from mc_tasks.settings import Settings

#: Job statuses the library consumes; the rule forwards these and no others.
CONSUMED_STATUSES: tuple[str, ...] = (
    "PROGRESSING",
    "STATUS_UPDATE",
    "COMPLETE",
    "ERROR",
    "CANCELED",
    "INPUT_INFORMATION",
    "NEW_WARNING",
    "QUEUE_HOP",
)
EVENT_SOURCE = "aws.mediaconvert"
EVENT_DETAIL_TYPE = "MediaConvert Job State Change"

#: Suffix appended to the queue name to name its dead-letter queue.
DEAD_LETTER_QUEUE_SUFFIX = "-dlq"
#: Seconds SQS keeps an event in the queue (4 days, the SQS default).
QUEUE_MESSAGE_RETENTION_S = 4 * 24 * 3600
#: Seconds SQS keeps a message in the dead-letter queue (14 days, the SQS maximum).
DEAD_LETTER_MESSAGE_RETENTION_S = 14 * 24 * 3600
#: Long-poll wait of a receive call (the SQS maximum).
QUEUE_RECEIVE_WAIT_TIME_S = 20

#: Id of the rule's target that delivers to the queue.
TARGET_ID = "mc-tasks-sqs"
#: Times EventBridge retries a failed delivery before it gives up (185 is the EventBridge maximum).
TARGET_MAX_RETRY_ATTEMPTS = 185
#: Seconds EventBridge keeps retrying one event (24 hours, the EventBridge maximum).
TARGET_MAX_EVENT_AGE_S = 24 * 3600

#: Sid of the statement that lets the rule send to the queue.
QUEUE_POLICY_SID = "McTasksEventBridgeSendMessage"
#: Sid of the statement that lets the rule send events it failed to deliver to the DLQ.
DEAD_LETTER_POLICY_SID = "McTasksEventBridgeSendFailedEvents"
EVENTS_SERVICE_PRINCIPAL = "events.amazonaws.com"
POLICY_VERSION = "2012-10-17"

#: The AWS managed SQS key: EventBridge cannot encrypt with it, so deliveries fail.
AWS_MANAGED_SQS_KEY_ALIAS = "alias/aws/sqs"


@dataclass(frozen=True)
class EventPath:
    """Names and ARNs of every resource of the event path in one account and region."""

    account_id: str
    region: str
    partition: str
    queue_name: str
    dead_letter_queue_name: str
    rule_name: str

    @classmethod
    def from_settings(cls, settings: Settings, account_id: str) -> EventPath:
        return cls(
            account_id=account_id,
            region=settings.region,
            partition=partition_for_region(settings.region),
            queue_name=settings.sqs_queue_name,
            dead_letter_queue_name=dead_letter_queue_name(settings.sqs_queue_name),
            rule_name=settings.eventbridge_rule_name,
        )

    @property
    def queue_arn(self) -> str:
        return self._arn("sqs", self.queue_name)

    @property
    def dead_letter_queue_arn(self) -> str:
        return self._arn("sqs", self.dead_letter_queue_name)

    @property
    def rule_arn(self) -> str:
        return self._arn("events", f"rule/{self.rule_name}")

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


def partition_for_region(region: str) -> str:
    """Return the ARN partition of ``region`` (``aws``, ``aws-cn`` or ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def dead_letter_queue_name(queue_name: str) -> str:
    """Return the name of the dead-letter queue that belongs to ``queue_name``."""
    return f"{queue_name}{DEAD_LETTER_QUEUE_SUFFIX}"


def is_queue_arn(value: str) -> bool:
    """Return whether a MediaConvert queue setting is an ARN rather than a name."""
    return value.startswith("arn:") and ":mediaconvert:" in value and ":queues/" in value


def event_pattern(settings: Settings, *, restrict_to_mediaconvert_queue: bool = False
                  ) -> dict[str, Any]:
    """Build the rule's event pattern: this application's job state changes.

    With ``restrict_to_mediaconvert_queue`` and a queue setting that is an ARN,
    the pattern also requires ``detail.queue`` to equal that ARN. Events carry
    the queue as an ARN, so a bare queue name is never used to restrict.
    """
    detail: dict[str, Any] = {
        "status": list(CONSUMED_STATUSES),
        "userMetadata": {APPLICATION_KEY: [settings.application]},
    }
    if restrict_to_mediaconvert_queue and is_queue_arn(settings.mediaconvert_queue):
        detail["queue"] = [settings.mediaconvert_queue]
    return {"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE], "detail": detail}


def queue_attributes(settings: Settings, path: EventPath) -> dict[str, str]:
    """Build the attributes of the event queue, as SQS returns them (strings)."""
    redrive = {
        "deadLetterTargetArn": path.dead_letter_queue_arn,
        "maxReceiveCount": settings.max_receive_count,
    }
    return {
        "MessageRetentionPeriod": str(QUEUE_MESSAGE_RETENTION_S),
        "ReceiveMessageWaitTimeSeconds": str(QUEUE_RECEIVE_WAIT_TIME_S),
        "VisibilityTimeout": str(settings.visibility_timeout_s),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps(redrive, separators=(",", ":")),
    }


def dead_letter_queue_attributes() -> dict[str, str]:
    """Build the attributes of the dead-letter queue."""
    return {
        "MessageRetentionPeriod": str(DEAD_LETTER_MESSAGE_RETENTION_S),
        "SqsManagedSseEnabled": "true",
    }


def queue_target(path: EventPath) -> dict[str, Any]:
    """Build the rule's target: the queue, with retries and the DLQ for failed deliveries."""
    return {
        "Id": TARGET_ID,
        "Arn": path.queue_arn,
        "RetryPolicy": {
            "MaximumRetryAttempts": TARGET_MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": TARGET_MAX_EVENT_AGE_S,
        },
        "DeadLetterConfig": {"Arn": path.dead_letter_queue_arn},
    }


def send_message_statement(sid: str, queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Build the statement that lets the rule, and only the rule, send to ``queue_arn``."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": EVENTS_SERVICE_PRINCIPAL},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


def attribute_differences(current: Mapping[str, str], desired: Mapping[str, str]
                          ) -> dict[str, str]:
    """Return the desired attributes whose current value differs, keyed by attribute name.

    ``RedrivePolicy`` is compared as JSON with ``maxReceiveCount`` as an
    integer, because SQS may return the count as a string.
    """
    changed: dict[str, str] = {}
    for name, value in desired.items():
        if name == "RedrivePolicy":
            if _redrive(current.get(name)) != _redrive(value):
                changed[name] = value
        elif current.get(name) != value:
            changed[name] = value
    return changed


def _redrive(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    try:
        document = json.loads(raw)
        return str(document["deadLetterTargetArn"]), int(document["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        return None


def normalize_document(value: Any) -> Any:
    """Return ``value`` with every string-or-list field as a sorted list, for comparison.

    IAM-style documents allow ``"Action": "x"`` and ``"Action": ["x"]`` to
    mean the same thing, and event patterns do not depend on the order of
    their value lists.
    """
    if isinstance(value, Mapping):
        return {key: normalize_document(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [item if isinstance(item, str) else normalize_document(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, str):
        return [value]
    return value


def statement_matches(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Return whether two policy statements grant the same thing, ignoring formatting."""
    keys = ("Effect", "Principal", "Action", "Resource", "Condition")
    return all(
        normalize_document(current.get(key)) == normalize_document(desired.get(key))
        for key in keys
    )


def target_matches(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Return whether a target delivers the same way; any input transformation is a mismatch."""
    for key in ("Arn", "RetryPolicy", "DeadLetterConfig"):
        if current.get(key) != desired.get(key):
            return False
    return not any(current.get(key) for key in ("Input", "InputPath", "InputTransformer"))
