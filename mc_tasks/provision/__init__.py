"""Provisioning of the event path: MediaConvert events through EventBridge into SQS.

The path, as :func:`setup_event_delivery` builds it::

    MediaConvert --job state change--> EventBridge rule <eventbridge_rule_name>
        pattern: source aws.mediaconvert, detail-type "MediaConvert Job State Change",
                 detail.status in the consumed statuses,
                 detail.userMetadata.mc_tasks_application = <application>
        target mc-tasks-sqs --> SQS queue <sqs_queue_name> (standard, SSE-SQS, long poll)
                        \\--failed deliveries--> <sqs_queue_name>-dlq
    queue --maxReceiveCount receives--> <sqs_queue_name>-dlq (14 days retention)

Both queue policies carry one statement each, with a fixed Sid, that allows
``events.amazonaws.com`` to ``sqs:SendMessage`` only for this rule's ARN.
:func:`verify_event_delivery` checks the path without changing it and
:func:`teardown_event_delivery` removes it.
"""

from mc_tasks.provision.calls import EventPathClients
from mc_tasks.provision.reports import (
    CheckResult,
    ResourceResult,
    SetupReport,
    VerificationReport,
)
from mc_tasks.provision.resources import CONSUMED_STATUSES, event_pattern
from mc_tasks.provision.setup import setup_event_delivery
from mc_tasks.provision.teardown import teardown_event_delivery
from mc_tasks.provision.verify import verify_event_delivery

__all__ = [
    "CONSUMED_STATUSES",
    "CheckResult",
    "EventPathClients",
    "ResourceResult",
    "SetupReport",
    "VerificationReport",
    "event_pattern",
    "setup_event_delivery",
    "teardown_event_delivery",
    "verify_event_delivery",
]
