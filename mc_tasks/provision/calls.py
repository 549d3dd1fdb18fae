"""AWS calls of the provisioning code: clients, error translation and the retry loop.

Two layers retry, and they do not overlap:

* botocore's "standard" retry mode (configured in :mod:`mc_tasks.clients`)
  retries each call on throttling codes (``Throttling``,
  ``ThrottlingException``, ``RequestThrottled``, ``TooManyRequestsException``
  and others), HTTP 429, 500, 502, 503 and 504, ``RequestTimeout`` and
  connection errors, up to ``Settings.aws_max_attempts`` attempts in total.
* :func:`run_with_retries` reruns the whole idempotent setup when a call
  still fails with one of those errors after botocore gave up. It also
  reruns on two errors that botocore never retries. SQS raises
  ``QueueDeletedRecently`` because a queue name cannot be reused for 60
  seconds after ``DeleteQueue``. EventBridge raises
  ``ConcurrentModificationException`` when another setup changes the rule at
  the same moment.

Every other error is permanent and raised at once as a
:class:`~mc_tasks.errors.ProvisioningError` naming the resource, and for an
access denial the IAM action that is missing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from mc_tasks.clients import get_client
from mc_tasks.errors import ProvisioningError
from mc_tasks.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

logger = logging.getLogger(__name__)

#: Attempts of a whole setup, verification or teardown run, the first one included.
SETUP_MAX_ATTEMPTS = 6
#: Upper bound of the first backoff delay, doubled for each later attempt.
SETUP_BACKOFF_BASE_S = 2.0
#: Upper bound of any single backoff delay.
SETUP_BACKOFF_MAX_S = 64.0

#: The IAM action each API operation needs, named in access-denied errors.
IAM_ACTIONS: dict[str, str] = {
    "GetCallerIdentity": "sts:GetCallerIdentity",
    "GetQueueUrl": "sqs:GetQueueUrl",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "CreateQueue": "sqs:CreateQueue",
    "SetQueueAttributes": "sqs:SetQueueAttributes",
    "DeleteQueue": "sqs:DeleteQueue",
    "DescribeRule": "events:DescribeRule",
    "ListRules": "events:ListRules",
    "PutRule": "events:PutRule",
    "DeleteRule": "events:DeleteRule",
    "ListTargetsByRule": "events:ListTargetsByRule",
    "PutTargets": "events:PutTargets",
    "RemoveTargets": "events:RemoveTargets",
    "TestEventPattern": "events:TestEventPattern",
    "GetRole": "iam:GetRole",
    "CreateRole": "iam:CreateRole",
    "UpdateAssumeRolePolicy": "iam:UpdateAssumeRolePolicy",
    "GetRolePolicy": "iam:GetRolePolicy",
    "PutRolePolicy": "iam:PutRolePolicy",
}

ACCESS_DENIED_CODES = frozenset({
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnauthorizedOperation",
    "KMS.AccessDeniedException",
})
QUEUE_DELETED_RECENTLY_CODES = frozenset({
    "AWS.SimpleQueueService.QueueDeletedRecently",
    "QueueDeletedRecently",
})
THROTTLING_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
})
RETRYABLE_CODES = (
    QUEUE_DELETED_RECENTLY_CODES | THROTTLING_CODES | {"ConcurrentModificationException"}
)

T = TypeVar("T")


@dataclass(frozen=True)
class EventPathClients:
    """The three clients that provisioning uses.

    Pass your own to choose endpoints or credentials, or to give each thread its own clients.
    """

    sqs: SQSClient
    events: EventBridgeClient
    sts: STSClient

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPathClients:
        """Return the process's cached clients for the region of ``settings``."""
        return cls(
            sqs=get_client("sqs", settings),
            events=get_client("events", settings),
            sts=get_client("sts", settings),
        )


class RetryableStepError(Exception):
    """Failure of a call that a later attempt may not hit, used inside provisioning only."""

    def __init__(self, resource: str, error: str) -> None:
        super().__init__(f"{resource}: {error}")
        self.resource = resource
        self.error = error


def error_code(exc: ClientError) -> str:
    """Return the AWS error code of ``exc``, or ``"Unknown"``."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def describe_error(exc: ClientError) -> str:
    """Return ``"<operation> failed with <code> (HTTP n): <message>"`` for ``exc``."""
    response: dict[str, Any] = dict(exc.response)
    message = str(response.get("Error", {}).get("Message", "")) or "no message"
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    return f"{exc.operation_name} failed with {error_code(exc)} (HTTP {status}): {message}"


def is_retryable(exc: ClientError) -> bool:
    """Return whether a rerun of the setup may succeed where ``exc`` failed."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return error_code(exc) in RETRYABLE_CODES or status == 429 or status >= 500


def translate(resource: str, exc: ClientError) -> Exception:
    """Turn a ``ClientError`` raised while handling ``resource`` into the error to raise."""
    code = error_code(exc)
    if code in ACCESS_DENIED_CODES:
        action = IAM_ACTIONS.get(exc.operation_name, f"the IAM action of {exc.operation_name}")
        hint = ""
        if action.startswith(("sqs:", "events:", "sts:")):
            hint = (" (the setup policy printed by `mc-tasks iam-policies` lists every action "
                    "needed)")
        return ProvisioningError(
            f"Access denied to {action} on {resource}: grant {action} to the identity that runs "
            f"setup{hint}, then run it again. {describe_error(exc)}"
        )
    if is_retryable(exc):
        return RetryableStepError(resource, describe_error(exc))
    return ProvisioningError(f"Setting up {resource} failed: {describe_error(exc)}")


@contextmanager
def aws_step(resource: str) -> Iterator[None]:
    """Translate AWS errors raised in the block into errors that name ``resource``."""
    try:
        yield
    except ClientError as exc:
        raise translate(resource, exc) from exc
    except BotoCoreError as exc:
        # botocore has already retried connection errors. Its messages contain no secret.
        raise ProvisioningError(f"Setting up {resource} failed: {exc}") from exc


def backoff_delay_s(attempt: int) -> float:
    """Return the delay before retry number ``attempt`` (1-based), with full jitter."""
    ceiling_s = min(SETUP_BACKOFF_MAX_S, SETUP_BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.SystemRandom().uniform(0.0, ceiling_s)


def run_with_retries(run: Callable[[], T], *, operation: str,
                     sleep: Callable[[float], None]) -> tuple[T, int]:
    """Call ``run`` until it succeeds, retrying :class:`RetryableStepError` with backoff.

    Returns the result and the number of attempts. After
    :data:`SETUP_MAX_ATTEMPTS` failed attempts, raises ProvisioningError naming
    the resource and the last error.
    """
    last: RetryableStepError | None = None
    for attempt in range(1, SETUP_MAX_ATTEMPTS + 1):
        try:
            return run(), attempt
        except RetryableStepError as exc:
            last = exc
            if attempt == SETUP_MAX_ATTEMPTS:
                break
            delay_s = backoff_delay_s(attempt)
            logger.info("%s: attempt %d/%d failed on %s (%s); retrying in %.1f s",
                        operation, attempt, SETUP_MAX_ATTEMPTS, exc.resource, exc.error, delay_s)
            sleep(delay_s)

    assert last is not None
    logger.warning("%s: gave up after %d attempts on %s: %s",
                   operation, SETUP_MAX_ATTEMPTS, last.resource, last.error)
    hint = ""
    if "QueueDeletedRecently" in last.error:
        hint = (" SQS does not allow a queue name to be reused within 60 seconds of deleting "
                "the queue: wait a minute and run it again.")
    raise ProvisioningError(
        f"{operation} failed after {SETUP_MAX_ATTEMPTS} attempts on {last.resource}: "
        f"{last.error}.{hint}"
    ) from last
