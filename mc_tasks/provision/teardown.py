"""Remove the event path that setup created: target, rule, queue and dead-letter queue."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from mc_tasks.errors import ProvisioningError
from mc_tasks.provision.calls import (
    EventPathClients,
    RetryableStepError,
    aws_step,
    error_code,
    run_with_retries,
)
from mc_tasks.provision.reports import ResourceResult, SetupReport
from mc_tasks.provision.resources import TARGET_ID, EventPath
from mc_tasks.provision.setup import caller_account_id, find_queue, list_rule_targets
from mc_tasks.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def teardown_event_delivery(settings: Settings | None = None, *,
                            clients: EventPathClients | None = None,
                            sleep: Callable[[float], None] = time.sleep) -> SetupReport:
    """Delete the rule's target, the rule, the queue and the DLQ, reporting "deleted" or "absent".

    Messages still in either queue are lost. A rule that has targets other than
    the one setup created is kept and reported "kept", because deleting it would
    stop delivery to those targets. SQS refuses to create a queue with a deleted
    queue's name for 60 seconds, so a setup right after a teardown retries
    until then.
    """
    settings = settings or get_settings()
    clients = clients or EventPathClients.from_settings(settings)

    def run() -> SetupReport:
        return _teardown_once(settings, clients)

    report, attempts = run_with_retries(run, operation="event delivery teardown", sleep=sleep)
    report.attempts = attempts
    return report


def _teardown_once(settings: Settings, clients: EventPathClients) -> SetupReport:
    report = SetupReport()
    path = EventPath.from_settings(settings, caller_account_id(clients))
    events = clients.events

    rule_exists = True
    with aws_step(f"rule {path.rule_name}"):
        try:
            events.describe_rule(Name=path.rule_name)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            rule_exists = False

    if not rule_exists:
        report.add(ResourceResult("target", TARGET_ID, "absent"))
        report.add(ResourceResult("rule", path.rule_name, "absent"))
    else:
        targets = list_rule_targets(events, path.rule_name)
        if any(target.get("Id") == TARGET_ID for target in targets):
            resource = f"target {TARGET_ID} of rule {path.rule_name}"
            with aws_step(resource):
                response = events.remove_targets(Rule=path.rule_name, Ids=[TARGET_ID])
            failed = response.get("FailedEntries", [])
            if response.get("FailedEntryCount", 0) and failed:
                error = f"RemoveTargets failed with {failed[0].get('ErrorCode')}: " \
                        f"{failed[0].get('ErrorMessage')}"
                if failed[0].get("ErrorCode") == "ConcurrentModificationException":
                    raise RetryableStepError(resource, error)
                raise ProvisioningError(f"Removing {resource} failed: {error}")
            report.add(ResourceResult("target", TARGET_ID, "deleted", path.queue_arn))
        else:
            report.add(ResourceResult("target", TARGET_ID, "absent"))

        others = sorted(str(t.get("Id")) for t in targets if t.get("Id") != TARGET_ID)
        if others:
            report.add(ResourceResult("rule", path.rule_name, "kept", path.rule_arn))
            report.notes.append(
                f"Rule {path.rule_name} was kept because it has other targets: "
                f"{', '.join(others)}. Remove them and run teardown again to delete it."
            )
        else:
            with aws_step(f"rule {path.rule_name}"):
                events.delete_rule(Name=path.rule_name)
            report.add(ResourceResult("rule", path.rule_name, "deleted", path.rule_arn))

    for kind, name, arn in (("queue", path.queue_name, path.queue_arn),
                            ("dead-letter queue", path.dead_letter_queue_name,
                             path.dead_letter_queue_arn)):
        found = find_queue(clients.sqs, name)
        if found is None:
            report.add(ResourceResult(kind, name, "absent"))
            continue
        with aws_step(f"{kind} {name}"):
            clients.sqs.delete_queue(QueueUrl=found.url)
        report.add(ResourceResult(kind, name, "deleted", arn))

    for result in report.resources:
        logger.info("event path teardown: %s %s %s", result.kind, result.name, result.action)
    return report
