"""Settings read from the environment, validated once when built.

Credentials never pass through this object: boto3 finds them through its own
credential chain (environment, shared files, instance roles). Endpoints follow
boto3's own variables (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SQS``,
``AWS_ENDPOINT_URL_MEDIACONVERT`` and so on), which boto3 reads itself.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import boto3

from mc_tasks.errors import ConfigurationError

#: SQS queue that the EventBridge rule fills with job state change events.
DEFAULT_SQS_QUEUE_NAME = "mediaconvert-messages"
#: EventBridge rule that matches MediaConvert job state changes.
DEFAULT_EVENTBRIDGE_RULE_NAME = "mediaconvert-job-events"
#: MediaConvert queue that receives jobs when none is configured.
DEFAULT_MEDIACONVERT_QUEUE = "Default"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_KEY_PREFIX = "mc_tasks"
#: Value of the application marker in each job's UserMetadata.
DEFAULT_APPLICATION = "mc_tasks"
#: Seconds between two drain runs scheduled by celery beat.
DEFAULT_DRAIN_INTERVAL_S = 20.0
#: Maximum seconds one drain run keeps receiving. Equal to the interval, so a long
#: poll is open at almost every moment and an event is handled as soon as it lands;
#: each beat message expires after one interval, so runs do not pile up.
DEFAULT_DRAIN_MAX_DURATION_S = DEFAULT_DRAIN_INTERVAL_S
#: Maximum messages one drain run handles.
DEFAULT_DRAIN_MAX_MESSAGES = 2000
#: Seconds a received message stays invisible to other consumers.
DEFAULT_VISIBILITY_TIMEOUT_S = 120
#: Receives after which SQS moves a message to the dead-letter queue.
DEFAULT_MAX_RECEIVE_COUNT = 5
#: Seconds the job state store keeps a job's record after its last event (14 days).
DEFAULT_STATE_TTL_S = 14 * 24 * 3600
#: Total attempts of botocore's "standard" retry mode for each AWS call.
DEFAULT_AWS_MAX_ATTEMPTS = 3
#: Seconds a GetQueue result is reused by the submission checks of one process; 0 disables.
DEFAULT_QUEUE_STATUS_CACHE_S = 5.0
#: Maximum value of MC_TASKS_QUEUE_STATUS_CACHE_S, in seconds.
MAX_QUEUE_STATUS_CACHE_S = 300.0
#: Submission policy for a PAUSED MediaConvert queue (see PAUSED_QUEUE_POLICIES).
DEFAULT_PAUSED_QUEUE = "warn"
#: ``warn``: submit and log a warning; ``reject``: raise QueuePausedError;
#: ``ignore``: skip GetQueue entirely, for identities without mediaconvert:GetQueue.
PAUSED_QUEUE_POLICIES = ("warn", "reject", "ignore")
#: Submitted (waiting) jobs in the queue at which a new submission is delayed; 0 means no limit.
DEFAULT_MAX_SUBMITTED_JOBS = 0
#: Seconds a submission delayed by a busy queue waits before its next attempt.
DEFAULT_QUEUE_BUSY_RETRY_S = 60.0
#: CreateJob calls per second allowed across every worker sharing the Redis; 0 disables.
# NOTE: a conservative choice, not a documented value: the per-account CreateJob
# request rate is listed under "AWS Elemental MediaConvert endpoints and quotas"
# (docs.aws.amazon.com/general/latest/gr/mediaconvert.html) and in the Service
# Quotas console; set MC_TASKS_CREATE_JOB_RATE to your account's value.
DEFAULT_CREATE_JOB_RATE_PER_S = 10.0
#: CreateJob calls that may be sent at once after an idle period (the token bucket's size).
DEFAULT_CREATE_JOB_BURST = 10
#: Maximum seconds a submission waits for a CreateJob token before raising RateLimitedError.
DEFAULT_CREATE_JOB_MAX_WAIT_S = 10.0

#: Maximum MC_TASKS_DRAIN_INTERVAL_S, in seconds (one day); celery beat needs a finite interval.
MAX_DRAIN_INTERVAL_S = 86400.0

#: SQS limits (AWS quotas).
SQS_MAX_WAIT_TIME_S = 20
SQS_MAX_VISIBILITY_TIMEOUT_S = 12 * 3600
SQS_MAX_RECEIVE_COUNT_LIMIT = 1000

_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_RULE_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
_MEDIACONVERT_QUEUE = re.compile(
    r"^([A-Za-z0-9_-]{1,128}|arn:aws[a-zA-Z-]*:mediaconvert:[a-z0-9-]+:\d{12}:queues/[A-Za-z0-9_-]{1,128})$"
)
_METADATA_VALUE = re.compile(r"^[A-Za-z0-9_.:/=+\-@ ]{1,256}$")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated configuration of mc_tasks; build it with :meth:`from_env`."""

    region: str
    sqs_queue_name: str = DEFAULT_SQS_QUEUE_NAME
    eventbridge_rule_name: str = DEFAULT_EVENTBRIDGE_RULE_NAME
    #: IAM role that MediaConvert assumes to read inputs and write outputs; needed to submit.
    mediaconvert_role_arn: str | None = None
    #: MediaConvert queue name or ARN.
    mediaconvert_queue: str = DEFAULT_MEDIACONVERT_QUEUE
    redis_url: str = DEFAULT_REDIS_URL
    redis_key_prefix: str = DEFAULT_REDIS_KEY_PREFIX
    application: str = DEFAULT_APPLICATION
    drain_interval_s: float = DEFAULT_DRAIN_INTERVAL_S
    drain_max_duration_s: float = DEFAULT_DRAIN_MAX_DURATION_S
    drain_max_messages: int = DEFAULT_DRAIN_MAX_MESSAGES
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    state_ttl_s: int = DEFAULT_STATE_TTL_S
    aws_max_attempts: int = DEFAULT_AWS_MAX_ATTEMPTS
    queue_status_cache_s: float = DEFAULT_QUEUE_STATUS_CACHE_S
    #: One of PAUSED_QUEUE_POLICIES.
    paused_queue: str = DEFAULT_PAUSED_QUEUE
    max_submitted_jobs: int = DEFAULT_MAX_SUBMITTED_JOBS
    queue_busy_retry_s: float = DEFAULT_QUEUE_BUSY_RETRY_S
    create_job_rate_per_s: float = DEFAULT_CREATE_JOB_RATE_PER_S
    create_job_burst: int = DEFAULT_CREATE_JOB_BURST
    create_job_max_wait_s: float = DEFAULT_CREATE_JOB_MAX_WAIT_S

    def __post_init__(self) -> None:
        _check(_REGION.fullmatch(self.region), "AWS_DEFAULT_REGION", self.region,
               "an AWS region such as us-east-1")
        _check(_QUEUE_NAME.fullmatch(self.sqs_queue_name), "AWS_SQS_QUEUE_NAME",
               self.sqs_queue_name,
               "1-80 letters, digits, '-' or '_' (FIFO queues are not supported)")
        _check(_RULE_NAME.fullmatch(self.eventbridge_rule_name), "AWS_EVENTBRIDGE_RULE_NAME",
               self.eventbridge_rule_name, "1-64 letters, digits, '.', '-' or '_'")
        if self.mediaconvert_role_arn is not None:
            _check(_ROLE_ARN.fullmatch(self.mediaconvert_role_arn),
                   "MC_TASKS_MEDIACONVERT_ROLE_ARN", self.mediaconvert_role_arn,
                   "an IAM role ARN such as arn:aws:iam::123456789012:role/MediaConvertRole")
        _check(_MEDIACONVERT_QUEUE.fullmatch(self.mediaconvert_queue),
               "MC_TASKS_MEDIACONVERT_QUEUE", self.mediaconvert_queue,
               "a MediaConvert queue name such as Default, or its ARN")
        _check(_valid_redis_url(self.redis_url), "MC_TASKS_REDIS_URL", mask_url(self.redis_url),
               "a Redis URL such as redis://127.0.0.1:6379/0")
        _check(bool(self.redis_key_prefix), "MC_TASKS_REDIS_PREFIX", self.redis_key_prefix,
               "a non-empty key prefix")
        _check(_METADATA_VALUE.fullmatch(self.application), "MC_TASKS_APPLICATION",
               self.application,
               "1-256 letters, digits, spaces or _.:/=+-@ (a MediaConvert UserMetadata value)")
        _check(0 < self.drain_interval_s <= MAX_DRAIN_INTERVAL_S, "MC_TASKS_DRAIN_INTERVAL_S",
               self.drain_interval_s,
               f"a number of seconds above 0 and at most {MAX_DRAIN_INTERVAL_S:g}")
        _check(0 < self.drain_max_duration_s <= self.drain_interval_s,
               "MC_TASKS_DRAIN_MAX_DURATION_S", self.drain_max_duration_s,
               f"a number of seconds above 0 and at most MC_TASKS_DRAIN_INTERVAL_S "
               f"({self.drain_interval_s:g})")
        _check(self.drain_max_messages >= 1, "MC_TASKS_DRAIN_MAX_MESSAGES",
               self.drain_max_messages, "an integer of at least 1")
        _check(1 <= self.visibility_timeout_s <= SQS_MAX_VISIBILITY_TIMEOUT_S,
               "MC_TASKS_VISIBILITY_TIMEOUT_S", self.visibility_timeout_s,
               f"an integer from 1 to {SQS_MAX_VISIBILITY_TIMEOUT_S} seconds")
        _check(1 <= self.max_receive_count <= SQS_MAX_RECEIVE_COUNT_LIMIT,
               "MC_TASKS_MAX_RECEIVE_COUNT", self.max_receive_count,
               f"an integer from 1 to {SQS_MAX_RECEIVE_COUNT_LIMIT}")
        _check(self.state_ttl_s >= 60, "MC_TASKS_STATE_TTL_S", self.state_ttl_s,
               "an integer of at least 60 seconds")
        _check(1 <= self.aws_max_attempts <= 10, "MC_TASKS_AWS_MAX_ATTEMPTS",
               self.aws_max_attempts, "an integer from 1 to 10")
        _check(0 <= self.queue_status_cache_s <= MAX_QUEUE_STATUS_CACHE_S,
               "MC_TASKS_QUEUE_STATUS_CACHE_S", self.queue_status_cache_s,
               f"a number of seconds from 0 (no cache) to {MAX_QUEUE_STATUS_CACHE_S:g}")
        _check(self.paused_queue in PAUSED_QUEUE_POLICIES, "MC_TASKS_PAUSED_QUEUE",
               self.paused_queue, "warn, reject or ignore")
        _check(self.max_submitted_jobs >= 0, "MC_TASKS_MAX_SUBMITTED_JOBS",
               self.max_submitted_jobs, "an integer of at least 0 (0 means no limit)")
        _check(0 < self.queue_busy_retry_s < math.inf, "MC_TASKS_QUEUE_BUSY_RETRY_S",
               self.queue_busy_retry_s, "a number of seconds above 0")
        _check(0 <= self.create_job_rate_per_s < math.inf, "MC_TASKS_CREATE_JOB_RATE",
               self.create_job_rate_per_s,
               "a number of CreateJob calls per second of at least 0 (0 disables the limit)")
        _check(self.create_job_burst >= 1, "MC_TASKS_CREATE_JOB_BURST", self.create_job_burst,
               "an integer of at least 1")
        _check(0 <= self.create_job_max_wait_s < math.inf, "MC_TASKS_CREATE_JOB_MAX_WAIT_S",
               self.create_job_max_wait_s, "a number of seconds of at least 0")

    def __repr__(self) -> str:
        fields = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "redis_url":
                value = mask_url(value)
            fields.append(f"{field.name}={value!r}")
        return f"Settings({', '.join(fields)})"

    @property
    def redis_url_masked(self) -> str:
        """The Redis URL with any password replaced by ``***``, safe to log."""
        return mask_url(self.redis_url)

    def replace(self, **changes: object) -> Settings:
        """Return a copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; raise ConfigurationError on a bad value."""
        env = os.environ if environ is None else environ
        region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
        if not region and environ is None:
            region = boto3.session.Session().region_name
        if not region:
            raise ConfigurationError(
                "No AWS region is configured: set AWS_DEFAULT_REGION, for example to us-east-1."
            )

        return cls(
            region=region,
            sqs_queue_name=env.get("AWS_SQS_QUEUE_NAME", DEFAULT_SQS_QUEUE_NAME),
            eventbridge_rule_name=env.get("AWS_EVENTBRIDGE_RULE_NAME",
                                          DEFAULT_EVENTBRIDGE_RULE_NAME),
            mediaconvert_role_arn=env.get("MC_TASKS_MEDIACONVERT_ROLE_ARN") or None,
            mediaconvert_queue=env.get("MC_TASKS_MEDIACONVERT_QUEUE", DEFAULT_MEDIACONVERT_QUEUE),
            redis_url=env.get("MC_TASKS_REDIS_URL", DEFAULT_REDIS_URL),
            redis_key_prefix=env.get("MC_TASKS_REDIS_PREFIX", DEFAULT_REDIS_KEY_PREFIX),
            application=env.get("MC_TASKS_APPLICATION", DEFAULT_APPLICATION),
            drain_interval_s=_number(env, "MC_TASKS_DRAIN_INTERVAL_S", DEFAULT_DRAIN_INTERVAL_S),
            drain_max_duration_s=_number(env, "MC_TASKS_DRAIN_MAX_DURATION_S",
                                         DEFAULT_DRAIN_MAX_DURATION_S),
            drain_max_messages=_integer(env, "MC_TASKS_DRAIN_MAX_MESSAGES",
                                        DEFAULT_DRAIN_MAX_MESSAGES),
            visibility_timeout_s=_integer(env, "MC_TASKS_VISIBILITY_TIMEOUT_S",
                                          DEFAULT_VISIBILITY_TIMEOUT_S),
            max_receive_count=_integer(env, "MC_TASKS_MAX_RECEIVE_COUNT",
                                       DEFAULT_MAX_RECEIVE_COUNT),
            state_ttl_s=_integer(env, "MC_TASKS_STATE_TTL_S", DEFAULT_STATE_TTL_S),
            aws_max_attempts=_integer(env, "MC_TASKS_AWS_MAX_ATTEMPTS", DEFAULT_AWS_MAX_ATTEMPTS),
            queue_status_cache_s=_number(env, "MC_TASKS_QUEUE_STATUS_CACHE_S",
                                         DEFAULT_QUEUE_STATUS_CACHE_S),
            paused_queue=(env.get("MC_TASKS_PAUSED_QUEUE") or DEFAULT_PAUSED_QUEUE).strip().lower(),
            max_submitted_jobs=_integer(env, "MC_TASKS_MAX_SUBMITTED_JOBS",
                                        DEFAULT_MAX_SUBMITTED_JOBS),
            queue_busy_retry_s=_number(env, "MC_TASKS_QUEUE_BUSY_RETRY_S",
                                       DEFAULT_QUEUE_BUSY_RETRY_S),
            create_job_rate_per_s=_number(env, "MC_TASKS_CREATE_JOB_RATE",
                                          DEFAULT_CREATE_JOB_RATE_PER_S,
                                          expected="a number of CreateJob calls per second"),
            create_job_burst=_integer(env, "MC_TASKS_CREATE_JOB_BURST", DEFAULT_CREATE_JOB_BURST),
            create_job_max_wait_s=_number(env, "MC_TASKS_CREATE_JOB_MAX_WAIT_S",
                                          DEFAULT_CREATE_JOB_MAX_WAIT_S),
        )

    def require_role_arn(self) -> str:
        """Return the MediaConvert role ARN or raise ConfigurationError saying how to set it."""
        if self.mediaconvert_role_arn is None:
            raise ConfigurationError(
                "MC_TASKS_MEDIACONVERT_ROLE_ARN is not set: set it to the ARN of the IAM role "
                "MediaConvert assumes to read inputs and write outputs, for example "
                "arn:aws:iam::123456789012:role/MediaConvertRole "
                "(`mc-tasks iam-policies` prints the role's policies)."
            )
        return self.mediaconvert_role_arn


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use.

    Call ``get_settings.cache_clear()`` after changing the environment.
    """
    return Settings.from_env()


def _valid_redis_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("redis", "rediss", "unix")


def _check(condition: object, variable: str, value: object, expected: str) -> None:
    if not condition:
        raise ConfigurationError(f"Invalid {variable}={value!r}: set it to {expected}.")


def _number(env: Mapping[str, str], variable: str, default: float, *,
            expected: str = "a number of seconds") -> float:
    raw = env.get(variable)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"Invalid {variable}={raw!r}: set it to {expected}.") from None


def _integer(env: Mapping[str, str], variable: str, default: int) -> int:
    raw = env.get(variable)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"Invalid {variable}={raw!r}: set it to an integer.") from None


def mask_url(url: str) -> str:
    """Return ``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{hostport}", parts.path, parts.query,
                       parts.fragment))
