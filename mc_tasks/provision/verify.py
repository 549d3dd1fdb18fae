"""Check that the event path delivers this application's job events to the queue."""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mc_tasks.metadata import APPLICATION_KEY
from mc_tasks.provision.calls import EventPathClients, aws_step, error_code
from mc_tasks.provision.reports import VerificationReport
from mc_tasks.provision.resources import (
    CONSUMED_STATUSES,
    DEAD_LETTER_POLICY_SID,
    EVENT_DETAIL_TYPE,
    EVENT_SOURCE,
    QUEUE_POLICY_SID,
    TARGET_ID,
    EventPath,
    is_queue_arn,
    send_message_statement,
    statement_matches,
)
from mc_tasks.provision.setup import caller_account_id, find_queue, list_rule_targets
from mc_tasks.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

logger = logging.getLogger(__name__)

#: Job id used in the sample events; only its shape matters.
SAMPLE_JOB_ID = "1700000000000-sample"
#: Application marker of a sample event that the rule must not match.
FOREIGN_APPLICATION = "another-application"


class UnsupportedPatternError(ValueError):
    """The pattern uses an EventBridge feature that :func:`pattern_matches` does not evaluate."""


def verify_event_delivery(settings: Settings | None = None, *,
                          clients: EventPathClients | None = None) -> VerificationReport:
    """Check the rule, its pattern, its target, the queue policies and the redrive policy.

    Each check passes or fails with a message; nothing is changed. Sample events
    of every consumed status are tested against the rule's pattern with
    EventBridge TestEventPattern. When TestEventPattern returns no result (moto
    5.2.5 implements it as an empty response) the pattern is evaluated locally
    by :func:`pattern_matches`, and the report records this in a note. Raises
    ProvisioningError only when a call fails, for example on an access denial.
    """
    settings = settings or get_settings()
    clients = clients or EventPathClients.from_settings(settings)
    report = VerificationReport()
    path = EventPath.from_settings(settings, caller_account_id(clients))

    rule = _describe_rule(clients.events, path.rule_name)
    if rule is None:
        report.add("rule", False, f"Rule {path.rule_name} does not exist: run setup.")
    else:
        enabled = rule.get("State") == "ENABLED"
        report.add("rule", enabled, f"Rule {path.rule_name} is {rule.get('State')}.")
        _check_pattern(clients.events, report, settings, path, str(rule.get("EventPattern", "")))
        _check_target(clients.events, report, path)

    queue = find_queue(clients.sqs, path.queue_name)
    dead_letter = find_queue(clients.sqs, path.dead_letter_queue_name)
    if queue is None:
        report.add("queue", False, f"Queue {path.queue_name} does not exist: run setup.")
    else:
        report.add("queue", True, f"Queue {path.queue_name} exists.")
        _check_redrive(report, path, queue.attributes.get("RedrivePolicy", ""))
        _check_statement(report, "queue policy", path.queue_name,
                         queue.attributes.get("Policy", ""),
                         send_message_statement(QUEUE_POLICY_SID, path.queue_arn, path.rule_arn))
    if dead_letter is None:
        report.add("dead-letter queue", False,
                   f"Queue {path.dead_letter_queue_name} does not exist: run setup.")
    else:
        report.add("dead-letter queue", True, f"Queue {path.dead_letter_queue_name} exists.")
        _check_statement(report, "dead-letter queue policy", path.dead_letter_queue_name,
                         dead_letter.attributes.get("Policy", ""),
                         send_message_statement(DEAD_LETTER_POLICY_SID,
                                                path.dead_letter_queue_arn, path.rule_arn))

    for check in report.failed:
        logger.warning("event path verification: check %s failed: %s", check.name, check.message)
    return report


def sample_event(settings: Settings, path: EventPath, status: str, *,
                 application: str | None = None) -> dict[str, Any]:
    """Build a MediaConvert job state change event of ``status``, as EventBridge delivers it."""
    prefix = f"arn:{path.partition}:mediaconvert:{path.region}:{path.account_id}"
    job_arn = f"{prefix}:jobs/{SAMPLE_JOB_ID}"
    queue_arn = settings.mediaconvert_queue
    if not is_queue_arn(queue_arn):
        queue_arn = f"{prefix}:queues/{queue_arn}"

    return {
        "version": "0",
        "id": f"mc-tasks-sample-{status.lower()}",
        "detail-type": EVENT_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": path.account_id,
        "time": "2024-01-01T00:00:00Z",
        "region": path.region,
        "resources": [job_arn],
        "detail": {
            "timestamp": 1704067200000,
            "accountId": path.account_id,
            "queue": queue_arn,
            "jobId": SAMPLE_JOB_ID,
            "status": status,
            "userMetadata": {APPLICATION_KEY: application or settings.application},
        },
    }


def pattern_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Return whether ``event`` matches an EventBridge pattern of exact values.

    Supports nested objects and arrays of exact string, number, boolean or null
    values, where an array in the event matches if any element does. Raises
    UnsupportedPatternError for content filters (prefix, anything-but, numeric
    and others), which this evaluator does not implement.
    """
    for key, expected in pattern.items():
        if isinstance(expected, Mapping):
            value = event.get(key)
            if not isinstance(value, Mapping) or not pattern_matches(expected, value):
                return False
            continue
        if not isinstance(expected, list) or any(isinstance(v, (dict, list)) for v in expected):
            raise UnsupportedPatternError(
                f"the pattern field {key!r} is {expected!r}, which is not a list of exact values"
            )
        if key not in event:
            return False
        value = event[key]
        candidates = value if isinstance(value, list) else [value]
        if not any(candidate in expected for candidate in candidates):
            return False
    return True


def _describe_rule(events: EventBridgeClient, name: str) -> dict[str, Any] | None:
    with aws_step(f"rule {name}"):
        try:
            return dict(events.describe_rule(Name=name))
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise


def _check_pattern(events: EventBridgeClient, report: VerificationReport, settings: Settings,
                   path: EventPath, raw_pattern: str) -> None:
    try:
        pattern = json.loads(raw_pattern)
    except ValueError:
        report.add("event pattern", False, f"Rule {path.rule_name} has no valid event pattern.")
        return

    cases = [(f"pattern matches {status}", sample_event(settings, path, status), True)
             for status in CONSUMED_STATUSES]
    foreign = sample_event(settings, path, "COMPLETE", application=FOREIGN_APPLICATION)
    cases.append(("pattern rejects other applications", foreign, False))

    evaluated_locally = False
    for name, event, expected in cases:
        with aws_step(f"event pattern of rule {path.rule_name}"):
            response = events.test_event_pattern(EventPattern=raw_pattern, Event=json.dumps(event))
        result = response.get("Result")
        if result is None:
            evaluated_locally = True
            try:
                result = pattern_matches(pattern, event)
            except UnsupportedPatternError as exc:
                report.add(name, False, f"Could not evaluate the pattern locally: {exc}.")
                continue
        status = event["detail"]["status"]
        if expected:
            message = (f"An event with status {status} of application {settings.application!r} "
                       f"{'matches' if result else 'does not match'} the pattern.")
        else:
            message = (f"An event of application {FOREIGN_APPLICATION!r} "
                       f"{'matches' if result else 'does not match'} the pattern.")
        report.add(name, bool(result) == expected, message)

    if evaluated_locally:
        report.notes.append(
            "TestEventPattern returned no result, so the pattern was evaluated locally "
            "(exact-value matching only)."
        )


def _check_target(events: EventBridgeClient, report: VerificationReport, path: EventPath) -> None:
    targets = list_rule_targets(events, path.rule_name)
    target = next((t for t in targets if t.get("Id") == TARGET_ID), None)
    if target is None:
        report.add("target", False, f"Rule {path.rule_name} has no target {TARGET_ID}: run setup.")
        return
    problems = []
    if target.get("Arn") != path.queue_arn:
        problems.append(f"it delivers to {target.get('Arn')}, not {path.queue_arn}")
    dead_letter_arn = target.get("DeadLetterConfig", {}).get("Arn")
    if dead_letter_arn != path.dead_letter_queue_arn:
        problems.append(f"its dead-letter queue is {dead_letter_arn}, "
                        f"not {path.dead_letter_queue_arn}")
    if problems:
        report.add("target", False, f"Target {TARGET_ID}: {'; '.join(problems)}.")
    else:
        report.add("target", True, f"Target {TARGET_ID} delivers to {path.queue_arn} with "
                                   f"dead-letter queue {path.dead_letter_queue_arn}.")


def _check_redrive(report: VerificationReport, path: EventPath, raw: str) -> None:
    try:
        redrive = json.loads(raw) if raw else {}
    except ValueError:
        redrive = {}
    target = redrive.get("deadLetterTargetArn")
    if target == path.dead_letter_queue_arn:
        report.add("redrive policy", True,
                   f"Queue {path.queue_name} moves a message to {path.dead_letter_queue_name} "
                   f"after {redrive.get('maxReceiveCount')} receives.")
    else:
        report.add("redrive policy", False,
                   f"Queue {path.queue_name} has no redrive policy to "
                   f"{path.dead_letter_queue_arn}: run setup.")


def _check_statement(report: VerificationReport, name: str, queue_name: str, raw: str,
                     desired: dict[str, Any]) -> None:
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        document = {}
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    sid = desired["Sid"]
    found = next((s for s in statements if isinstance(s, dict) and s.get("Sid") == sid), None)
    if found is None:
        report.add(name, False, f"The policy of queue {queue_name} has no statement {sid}: "
                                "EventBridge cannot deliver to it. Run setup.")
    elif not statement_matches(found, desired):
        report.add(name, False, f"Statement {sid} in the policy of queue {queue_name} does not "
                                "allow the rule to send messages. Run setup.")
    else:
        rule_arn = desired["Condition"]["ArnEquals"]["aws:SourceArn"]
        report.add(name, True, f"Statement {sid} lets rule {rule_arn} send to {queue_name}.")
    _check_denials(report, name, queue_name, statements)


def _check_denials(report: VerificationReport, name: str, queue_name: str,
                   statements: list[Any]) -> None:
    """Fail when a Deny statement without conditions blocks EventBridge's SendMessage.

    An explicit Deny wins over our Allow. A Deny with conditions (for example
    ``aws:SecureTransport`` false) usually does not apply to EventBridge, so it
    is reported as a note rather than a failure.
    """
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        if not (_denies_send_message(statement) and _names_eventbridge(statement)):
            continue
        label = statement.get("Sid") or "without a Sid"
        if statement.get("Condition"):
            report.notes.append(
                f"Statement {label} in the policy of queue {queue_name} denies sqs:SendMessage "
                "under conditions; check that they never match EventBridge's deliveries.")
            continue
        report.add(f"{name} denials", False,
                   f"Statement {label} in the policy of queue {queue_name} denies "
                   "sqs:SendMessage to EventBridge, and a Deny overrides every Allow: remove "
                   "it or narrow it so that events.amazonaws.com may send.")


def _denies_send_message(statement: dict[str, Any]) -> bool:
    actions = statement.get("Action", [])
    if isinstance(actions, str):
        actions = [actions]
    return any(isinstance(action, str) and fnmatch.fnmatchcase("sqs:sendmessage", action.lower())
               for action in actions)


def _names_eventbridge(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    names: list[Any] = []
    for key in ("AWS", "Service"):
        value = principal.get(key, [])
        names.extend(value if isinstance(value, list) else [value])
    return "*" in names or "events.amazonaws.com" in names
