"""Drain the SQS queue of MediaConvert job state change events and fire signals.

Contract of one :func:`drain_status_queue` run:

- It calls ReceiveMessage (at most 10 messages, ``ApproximateReceiveCount``
  requested) with a long poll bounded by the time left, so the poll stays open
  through the whole slot and an event is handled as soon as it lands. The run
  ends after ``Settings.drain_max_duration_s`` seconds or
  ``Settings.drain_max_messages`` messages (both can be overridden per call).
  The last long poll may pass that time by less than a second, because
  WaitTimeSeconds is a whole number. A duration of 0 makes one short poll.
- Each message is parsed (:mod:`mc_tasks.events`). The events of a batch are
  applied to the job state store (:mod:`mc_tasks.store`) in one script call
  and, for each real change, its signal is fired in the batch's order
  (:func:`mc_tasks.dispatch.handle_batch`). Handled messages are then deleted with
  DeleteMessageBatch; an entry in ``Failed`` is logged and counted, and the
  message comes back later as a duplicate that changes nothing.
- Delivery is at least once and unordered. The store applies each event at most
  once even when two drains run at the same time, a final status is never left,
  and progress older than the last applied update is dropped.
- A host receiver that raises does not stop the others, and the event counts as
  handled: the exception is logged with the job id, stored on the job record and
  counted in ``receiver_errors``, and the message is deleted. Keeping the message
  to retry the signal would call the receivers that succeeded a second time, so
  the signal fires exactly once per change. The one exception is a process killed
  while receivers run: its lease expires and the redelivered message fires the
  signal again.
- A message that is not an event (``not_json``, ``wrong_shape``) is left in the
  queue and does not block the rest of its batch. It returns after the
  visibility timeout until SQS moves it to the dead-letter queue after the
  redrive policy's ``maxReceiveCount`` receives. Well-formed events that are not
  ours are deleted and counted under ``discarded``: other sources or
  detail-types, other accounts (when ``expected_account_id`` is given), other
  regions, jobs without this application's marker, unknown statuses. They fire
  no signal.
- When handling a batch takes more than half the visibility timeout, the
  visibility of its event messages is extended (ChangeMessageVisibilityBatch).
  Deduplication in the store stays the backstop if a message reappears anyway.
- A Redis error leaves the batch's events in the queue and ends the run after
  the batch's discarded messages are deleted. An event the store's script
  fails to apply (outcome ``error``) stays in the queue, counted under
  ``failed["store_error"]``, while the rest of its batch is handled.

Log lines carry the SQS message id and, once parsed, the job id.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from mc_tasks.clients import get_client
from mc_tasks.dispatch import Dispatch, handle_batch
from mc_tasks.errors import EventParseError, ProvisioningError
from mc_tasks.events import JobStateChange, discard_reason, parse_message
from mc_tasks.settings import SQS_MAX_WAIT_TIME_S, Settings, get_settings
from mc_tasks.store import IN_FLIGHT, STALE, STORE_ERROR, JobStore

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

logger = logging.getLogger(__name__)

#: SQS limit on messages per ReceiveMessage and per batch call.
SQS_MAX_BATCH = 10
#: Sender name passed to signal receivers.
SENDER = "mc_tasks.drain_status_queue"
#: Outcomes of a message without an event of ours: deleted, or kept for the
#: dead-letter queue.
_DISCARD = "discard"
_KEEP = "keep"


@dataclass
class DrainReport:
    """Counts of one drain run; every received message is counted exactly once by outcome."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    in_flight: int = 0
    discarded: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    deleted: int = 0
    delete_failed: int = 0
    receiver_errors: int = 0
    visibility_extended: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of the counts."""
        return {
            "received": self.received,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "in_flight": self.in_flight,
            "discarded": dict(self.discarded),
            "failed": dict(self.failed),
            "deleted": self.deleted,
            "delete_failed": self.delete_failed,
            "receiver_errors": self.receiver_errors,
            "visibility_extended": self.visibility_extended,
            "duration_s": round(self.duration_s, 3),
        }


def drain_status_queue(settings: Settings | None = None, *, max_duration_s: float | None = None,
                       max_messages: int | None = None, expected_account_id: str | None = None,
                       store: JobStore | None = None) -> DrainReport:
    """Receive job state change events for a bounded time and fire signals; see the module doc.

    ``expected_account_id`` enables the account check. ``store`` defaults to a
    :class:`~mc_tasks.store.JobStore` built from ``settings``.
    """
    settings = settings or get_settings()
    duration_s = settings.drain_max_duration_s if max_duration_s is None else max_duration_s
    limit = settings.drain_max_messages if max_messages is None else max_messages
    if duration_s < 0 or limit < 1:
        raise ValueError(f"Invalid drain bounds max_duration_s={duration_s!r}, "
                         f"max_messages={limit!r}: use a duration of at least 0 seconds and "
                         "at least 1 message.")
    store = store or JobStore(settings)
    sqs = get_client("sqs", settings)
    queue_url = _queue_url(sqs, settings)

    report = DrainReport()
    started = time.monotonic()
    deadline = started + duration_s
    while report.received < limit:
        # WaitTimeSeconds is a whole number: rounding up keeps the poll open to
        # the deadline and may pass it by less than a second.
        remaining_s = deadline - time.monotonic()
        wait_s = min(SQS_MAX_WAIT_TIME_S, max(0, math.ceil(remaining_s)))
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(SQS_MAX_BATCH, limit - report.received),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        report.received += len(messages)
        stop = False
        if messages:
            stop = _handle_batch(sqs, queue_url, messages, store, settings, report,
                                 expected_account_id)
        if stop or wait_s == 0 or time.monotonic() >= deadline:
            break

    report.duration_s = time.monotonic() - started
    logger.info("Drained queue %s: %s", settings.sqs_queue_name, report.to_dict())
    return report


def _queue_url(sqs: SQSClient, settings: Settings) -> str:
    """Return the queue's URL; raise ProvisioningError saying to run the setup if it is missing."""
    try:
        return sqs.get_queue_url(QueueName=settings.sqs_queue_name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise ProvisioningError(
            f"SQS queue {settings.sqs_queue_name!r} does not exist in {settings.region}: run "
            "`mc-tasks setup` (or the mc_tasks.setup_event_delivery task) once, or set "
            "AWS_SQS_QUEUE_NAME to the queue the EventBridge rule targets."
        ) from None


def _handle_batch(sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef],
                  store: JobStore, settings: Settings, report: DrainReport,
                  expected_account_id: str | None) -> bool:
    """Handle one received batch and delete what was handled; return True to end the run."""
    received_at = time.monotonic()
    extend_after_s = settings.visibility_timeout_s / 2
    extended = False
    to_delete: list[MessageTypeDef] = []
    events: list[JobStateChange] = []
    event_messages: list[MessageTypeDef] = []
    for message in messages:
        event = _parse(message, settings, report, expected_account_id)
        if event == _DISCARD:
            to_delete.append(message)
        elif isinstance(event, JobStateChange):
            events.append(event)
            event_messages.append(message)

    def keep_visible() -> None:
        # Every event message of the batch is extended: an event that waits for
        # another drain's lock fires after later ones, and the handled messages
        # are deleted at the end of the batch anyway.
        nonlocal extended
        if not extended and time.monotonic() - received_at > extend_after_s:
            _extend_visibility(sqs, queue_url, event_messages, settings, report)
            extended = True

    stop = False
    try:
        dispatches = handle_batch(
            store, events, sender=SENDER, before_signal=keep_visible,
            contexts=[f"Message {message['MessageId']}: " for message in event_messages])
    except redis.RedisError as exc:
        report.failed["store_error"] += len(events)
        logger.error("The job state store failed (%s); leaving the %d events of this batch in "
                     "the queue and ending this run", exc, len(events))
        dispatches = []
        stop = True
    # Without dispatches (a store error) every event's message stays in the queue.
    for message, dispatch in zip(event_messages, dispatches, strict=False):
        if _count(dispatch, report):
            to_delete.append(message)

    _delete(sqs, queue_url, to_delete, report)
    return stop


def _parse(message: MessageTypeDef, settings: Settings, report: DrainReport,
           expected_account_id: str | None) -> JobStateChange | str:
    """Return the message's event, or ``_DISCARD`` or ``_KEEP`` when it has none of ours."""
    message_id = message["MessageId"]
    receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    try:
        event = parse_message(message["Body"])
    except EventParseError as exc:
        if exc.discardable:
            report.discarded[exc.reason] += 1
            logger.info("Message %s discarded (%s): %s", message_id, exc.reason, exc)
            return _DISCARD
        report.failed[exc.reason] += 1
        if receive_count >= settings.max_receive_count:
            logger.error("Message %s is not a job event (%s), receive %d of %d: SQS moves it to "
                         "the dead-letter queue next: %s", message_id, exc.reason, receive_count,
                         settings.max_receive_count, exc)
        else:
            logger.warning("Message %s is not a job event (%s), receive %d; leaving it for the "
                           "dead-letter queue: %s", message_id, exc.reason, receive_count, exc)
        return _KEEP

    reason = discard_reason(event, settings, expected_account_id=expected_account_id)
    if reason is not None:
        report.discarded[reason] += 1
        logger.info("Message %s: job %s event %s (%s) discarded: %s", message_id, event.job_id,
                    event.event_id, event.status, reason)
        return _DISCARD
    return event


def _count(dispatch: Dispatch, report: DrainReport) -> bool:
    """Count one handled event in ``report``; return True when its message may be deleted."""
    outcome = dispatch.transition.outcome
    if dispatch.fired:
        report.applied += 1
        report.receiver_errors += len(dispatch.receiver_errors)
    elif outcome == IN_FLIGHT:
        report.in_flight += 1
        return False
    elif outcome == STORE_ERROR:
        report.failed["store_error"] += 1
        return False
    elif outcome == STALE:
        report.stale += 1
    else:
        report.duplicates += 1
    return True


def _extend_visibility(sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef],
                       settings: Settings, report: DrainReport) -> None:
    entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"],
         "VisibilityTimeout": settings.visibility_timeout_s}
        for index, message in enumerate(messages)
    ]
    response = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    report.visibility_extended += len(response.get("Successful", []))
    for failure in response.get("Failed", []):
        message_id = messages[int(failure["Id"])]["MessageId"]
        logger.warning("Message %s: extending its visibility failed (%s: %s); another drain may "
                       "receive it, and the store will see a duplicate", message_id,
                       failure.get("Code"), failure.get("Message"))


def _delete(sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef],
            report: DrainReport) -> None:
    for start in range(0, len(messages), SQS_MAX_BATCH):
        chunk = messages[start:start + SQS_MAX_BATCH]
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                   for index, message in enumerate(chunk)]
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        report.deleted += len(response.get("Successful", []))
        for failure in response.get("Failed", []):
            report.delete_failed += 1
            message_id = chunk[int(failure["Id"])]["MessageId"]
            logger.warning("Message %s: delete failed (%s: %s); it will be received again and "
                           "counted as a duplicate", message_id, failure.get("Code"),
                           failure.get("Message"))
