"""Create or repair the event path: DLQ, queue, queue policies, EventBridge rule and target."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from mc_tasks.errors import ConfigurationError, ProvisioningError
from mc_tasks.provision.calls import (
    EventPathClients,
    RetryableStepError,
    aws_step,
    describe_error,
    error_code,
    run_with_retries,
)
from mc_tasks.provision.reports import Action, ResourceResult, SetupReport
from mc_tasks.provision.resources import (
    AWS_MANAGED_SQS_KEY_ALIAS,
    DEAD_LETTER_POLICY_SID,
    POLICY_VERSION,
    QUEUE_POLICY_SID,
    TARGET_ID,
    EventPath,
    attribute_differences,
    dead_letter_queue_attributes,
    event_pattern,
    is_queue_arn,
    normalize_document,
    queue_attributes,
    queue_target,
    send_message_statement,
    statement_matches,
    target_matches,
)
from mc_tasks.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

logger = logging.getLogger(__name__)

RULE_DESCRIPTION = "MediaConvert job state changes for mc_tasks, delivered to SQS"
_QUEUE_EXISTS_CODES = frozenset({"QueueAlreadyExists", "QueueNameExists"})
_TARGET_FIELDS = (
    "Arn", "RetryPolicy", "DeadLetterConfig", "Input", "InputPath", "InputTransformer",
)
_NO_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


@dataclass(frozen=True)
class ExistingQueue:
    """A queue found in the account: its URL and all its attributes."""

    url: str
    attributes: dict[str, str]


def setup_event_delivery(settings: Settings | None = None, *,
                         restrict_to_mediaconvert_queue: bool = False,
                         clients: EventPathClients | None = None,
                         sleep: Callable[[float], None] = time.sleep) -> SetupReport:
    """Create or repair the SQS queue, its DLQ, their policies, the rule and its target.

    Idempotent: a second run reports every resource "unchanged", and a run
    after drift (a changed pattern, a removed target or policy statement, a
    changed queue attribute) repairs it and reports "updated". Concurrent runs
    converge on one set of resources, because every write is a create-or-get
    or an overwrite with the same content. The queue policies are merged:
    statements with other Sids are kept.

    Pre-flight checks run before anything is created: a FIFO queue or a queue
    encrypted with ``alias/aws/sqs`` is rejected. Throttling, 5xx,
    ``QueueDeletedRecently`` and concurrent-modification errors rerun the
    whole setup with backoff (see :mod:`mc_tasks.provision.calls`).

    Raises ConfigurationError for an unusable setting and ProvisioningError
    when AWS rejects a call, naming the resource, and for an access denial
    the missing IAM action. ``sleep`` is the function that waits between attempts.
    """
    settings = settings or get_settings()
    clients = clients or EventPathClients.from_settings(settings)

    def run() -> SetupReport:
        return _setup_once(settings, clients, restrict_to_mediaconvert_queue)

    report, attempts = run_with_retries(run, operation="event delivery setup", sleep=sleep)
    report.attempts = attempts
    return report


def caller_account_id(clients: EventPathClients) -> str:
    """Return the account id of the caller's credentials (STS GetCallerIdentity)."""
    with aws_step("the caller identity"):
        return clients.sts.get_caller_identity()["Account"]


def find_queue(sqs: SQSClient, name: str) -> ExistingQueue | None:
    """Return the queue called ``name`` with all its attributes, or None if it does not exist."""
    with aws_step(f"queue {name}"):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in _NO_QUEUE_CODES:
                return None
            raise
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    return ExistingQueue(url, {str(key): value
                               for key, value in attributes.get("Attributes", {}).items()})


def check_queue_name(name: str) -> None:
    """Raise ConfigurationError for a FIFO queue name."""
    if name.endswith(".fifo"):
        raise ConfigurationError(
            f"Invalid SQS queue name {name!r}: FIFO queues are not supported, because "
            "EventBridge needs a MessageGroupId to deliver to one and mc_tasks reads a standard "
            "queue. Set AWS_SQS_QUEUE_NAME to a name without '.fifo'."
        )


def check_existing_queue(name: str, attributes: dict[str, str]) -> None:
    """Raise ProvisioningError if an existing queue cannot receive EventBridge events.

    Rejects a FIFO queue and a queue encrypted with the AWS managed key
    ``alias/aws/sqs``, whose key policy does not let EventBridge encrypt.
    """
    if attributes.get("FifoQueue") == "true":
        raise ProvisioningError(
            f"Queue {name} is a FIFO queue: EventBridge needs a MessageGroupId to deliver to "
            "a FIFO queue and mc_tasks reads a standard queue. Use another queue name."
        )
    key = attributes.get("KmsMasterKeyId", "")
    if key == AWS_MANAGED_SQS_KEY_ALIAS or key.endswith(f":{AWS_MANAGED_SQS_KEY_ALIAS}"):
        raise ProvisioningError(
            f"Queue {name} is encrypted with the AWS managed key {AWS_MANAGED_SQS_KEY_ALIAS}, "
            "so EventBridge cannot deliver to it and events would be lost. Switch the queue to "
            "SSE-SQS (SqsManagedSseEnabled) or to a customer managed KMS key whose key policy "
            "allows events.amazonaws.com kms:GenerateDataKey and kms:Decrypt."
        )


def _setup_once(settings: Settings, clients: EventPathClients,
                restrict_to_mediaconvert_queue: bool) -> SetupReport:
    report = SetupReport()
    path = EventPath.from_settings(settings, caller_account_id(clients))

    check_queue_name(path.queue_name)
    check_queue_name(path.dead_letter_queue_name)
    existing_dead_letter = find_queue(clients.sqs, path.dead_letter_queue_name)
    existing_queue = find_queue(clients.sqs, path.queue_name)
    for name, found in ((path.dead_letter_queue_name, existing_dead_letter),
                        (path.queue_name, existing_queue)):
        if found is not None:
            check_existing_queue(name, found.attributes)
    if restrict_to_mediaconvert_queue and not is_queue_arn(settings.mediaconvert_queue):
        report.notes.append(
            f"The rule is not restricted to MediaConvert queue {settings.mediaconvert_queue!r}: "
            "events name the queue by ARN, so set MC_TASKS_MEDIACONVERT_QUEUE to the queue ARN."
        )

    dead_letter_url = _ensure_queue(clients.sqs, report, "dead-letter queue",
                                    path.dead_letter_queue_name, path.dead_letter_queue_arn,
                                    dead_letter_queue_attributes(), existing_dead_letter)
    queue_url = _ensure_queue(clients.sqs, report, "queue", path.queue_name, path.queue_arn,
                              queue_attributes(settings, path), existing_queue)
    _ensure_policy_statement(
        clients.sqs, report, "dead-letter queue policy", path.dead_letter_queue_name,
        dead_letter_url,
        send_message_statement(DEAD_LETTER_POLICY_SID, path.dead_letter_queue_arn, path.rule_arn),
        parent_created=report.action_of("dead-letter queue") == "created",
    )
    _ensure_policy_statement(
        clients.sqs, report, "queue policy", path.queue_name, queue_url,
        send_message_statement(QUEUE_POLICY_SID, path.queue_arn, path.rule_arn),
        parent_created=report.action_of("queue") == "created",
    )
    pattern = event_pattern(settings, restrict_to_mediaconvert_queue=restrict_to_mediaconvert_queue)
    _ensure_rule(clients.events, report, path, pattern)
    _ensure_target(clients.events, report, path,
                   parent_created=report.action_of("rule") == "created")
    return report


def _ensure_queue(sqs: SQSClient, report: SetupReport, kind: str, name: str, arn: str,
                  desired: dict[str, str], existing: ExistingQueue | None) -> str:
    if existing is None:
        with aws_step(f"{kind} {name}"):
            try:
                response = sqs.create_queue(QueueName=name, Attributes=_sqs_attributes(desired))
                url = response["QueueUrl"]
            except ClientError as exc:
                if error_code(exc) not in _QUEUE_EXISTS_CODES:
                    raise
                # Created a moment ago by a concurrent setup, with other attributes.
                existing = find_queue(sqs, name)
                if existing is None:
                    raise RetryableStepError(f"{kind} {name}", describe_error(exc)) from exc
        if existing is None:
            logger.info("event path: created %s %s", kind, name)
            report.add(ResourceResult(kind, name, "created", arn))
            return url

    check_existing_queue(name, existing.attributes)
    if existing.attributes.get("KmsMasterKeyId"):
        # Keep a customer managed key, because forcing SSE-SQS would replace it.
        desired = {key: value for key, value in desired.items() if key != "SqsManagedSseEnabled"}
    changed = attribute_differences(existing.attributes, desired)
    if not changed:
        report.add(ResourceResult(kind, name, "unchanged", arn))
        return existing.url

    with aws_step(f"{kind} {name}"):
        sqs.set_queue_attributes(QueueUrl=existing.url, Attributes=_sqs_attributes(changed))
    changes = tuple(
        f"{attribute}: {existing.attributes.get(attribute, 'unset')} -> {value}"
        for attribute, value in changed.items()
    )
    logger.info("event path: updated %s %s: %s", kind, name, "; ".join(changes))
    report.add(ResourceResult(kind, name, "updated", arn, changes))
    return existing.url


def _ensure_policy_statement(sqs: SQSClient, report: SetupReport, kind: str, queue_name: str,
                             queue_url: str, statement: dict[str, Any], *,
                             parent_created: bool) -> None:
    """Merge ``statement`` into the queue's policy, keeping statements with other Sids.

    The statement is reported "created" with its queue, and "updated" when it
    is added to or repaired in a queue that already existed.

    NOTE: SQS has no conditional write. A statement that someone else adds
    between this read and the write below is lost, and rerunning setup does
    not restore it. The window is one round trip.
    """
    resource = f"{kind} of {queue_name}"
    with aws_step(resource):
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
    raw = attributes.get("Attributes", {}).get("Policy", "")
    document = _parse_policy(raw, queue_name)

    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    sid = statement["Sid"]
    ours = [item for item in statements if isinstance(item, dict) and item.get("Sid") == sid]
    others = [item for item in statements if not any(item is mine for mine in ours)]
    if len(ours) == 1 and statement_matches(ours[0], statement):
        report.add(ResourceResult(kind, queue_name, "unchanged"))
        return

    document["Version"] = document.get("Version", POLICY_VERSION)
    document["Statement"] = [*others, statement]
    with aws_step(resource):
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(document)})

    action: Action = "created" if parent_created else "updated"
    changes = () if parent_created else (
        f"statement {sid} {'repaired' if ours else 'added'}",)
    logger.info("event path: %s statement %s in the policy of queue %s (%d other statements kept)",
                action, sid, queue_name, len(others))
    report.add(ResourceResult(kind, queue_name, action, None, changes))


def _parse_policy(raw: str, queue_name: str) -> dict[str, Any]:
    if not raw:
        return {"Version": POLICY_VERSION, "Statement": []}
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ProvisioningError(
            f"The policy of queue {queue_name} is not valid JSON ({exc}); fix or remove it and "
            "run setup again."
        ) from exc
    if not isinstance(document, dict):
        raise ProvisioningError(
            f"The policy of queue {queue_name} is not a JSON object; fix or remove it and run "
            "setup again."
        )
    return document


def _ensure_rule(events: EventBridgeClient, report: SetupReport, path: EventPath,
                 pattern: dict[str, Any]) -> None:
    resource = f"rule {path.rule_name}"
    with aws_step(resource):
        try:
            current: dict[str, Any] | None = dict(events.describe_rule(Name=path.rule_name))
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            current = None

    changes: list[str] = []
    if current is not None:
        try:
            current_pattern = json.loads(current.get("EventPattern") or "null")
        except ValueError:
            current_pattern = None
        if normalize_document(current_pattern) != normalize_document(pattern):
            changes.append("EventPattern replaced")
        if current.get("State") != "ENABLED":
            changes.append(f"State: {current.get('State')} -> ENABLED")
        if not changes:
            report.add(ResourceResult("rule", path.rule_name, "unchanged", current.get("Arn")))
            return

    with aws_step(resource):
        arn = events.put_rule(Name=path.rule_name, EventPattern=json.dumps(pattern),
                              State="ENABLED", Description=RULE_DESCRIPTION)["RuleArn"]
    action: Action = "created" if current is None else "updated"
    logger.info("event path: %s rule %s %s", action, path.rule_name, "; ".join(changes))
    report.add(ResourceResult("rule", path.rule_name, action, arn, tuple(changes)))


def list_rule_targets(events: EventBridgeClient, rule_name: str) -> list[dict[str, Any]]:
    """Return every target of ``rule_name``, following NextToken."""
    targets: list[dict[str, Any]] = []
    token: str | None = None
    with aws_step(f"targets of rule {rule_name}"):
        while True:
            if token:
                page = events.list_targets_by_rule(Rule=rule_name, NextToken=token)
            else:
                page = events.list_targets_by_rule(Rule=rule_name)
            targets.extend(dict(target) for target in page.get("Targets", []))
            token = page.get("NextToken")
            if not token:
                return targets


def _ensure_target(events: EventBridgeClient, report: SetupReport, path: EventPath, *,
                   parent_created: bool) -> None:
    """Put the queue target on the rule: "created" with the rule, else "updated"."""
    desired = queue_target(path)
    current = next((t for t in list_rule_targets(events, path.rule_name)
                    if t.get("Id") == TARGET_ID), None)
    if current is not None and target_matches(current, desired):
        report.add(ResourceResult("target", TARGET_ID, "unchanged", path.queue_arn))
        return

    resource = f"target {TARGET_ID} of rule {path.rule_name}"
    with aws_step(resource):
        response = events.put_targets(Rule=path.rule_name, Targets=[desired])  # type: ignore[list-item]
    failed = response.get("FailedEntries", [])
    if response.get("FailedEntryCount", 0) and failed:
        entry = failed[0]
        error = f"PutTargets failed with {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
        if entry.get("ErrorCode") == "ConcurrentModificationException":
            raise RetryableStepError(resource, error)
        raise ProvisioningError(f"Setting up {resource} failed: {error}")

    action: Action = "created" if parent_created else "updated"
    changes: tuple[str, ...] = ()
    if current is None and not parent_created:
        changes = (f"target {TARGET_ID} was missing and is added",)
    elif current is not None:
        changes = tuple(f"{key} repaired" for key in _TARGET_FIELDS
                        if current.get(key) != desired.get(key))
    logger.info("event path: %s target %s of rule %s", action, TARGET_ID, path.rule_name)
    report.add(ResourceResult("target", TARGET_ID, action, path.queue_arn, changes))


def _sqs_attributes(attributes: Mapping[str, str]) -> Mapping[QueueAttributeNameType, str]:
    return cast("Mapping[QueueAttributeNameType, str]", attributes)
