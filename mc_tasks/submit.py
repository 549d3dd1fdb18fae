"""Submit transcoding jobs to MediaConvert, at most one job per submission.

:func:`submit_transcode` validates the request (see :mod:`mc_tasks.validation`),
builds the job settings from presets or from caller-given settings, and calls
CreateJob. Every job writes under its own prefix ``<destination><submission
id>/``, so two submissions never overwrite each other's outputs.

Idempotency. A submission is identified by ``submission_id`` (the Celery
wrapper passes its task id, which is stable across retries). Three layers keep
a retried submission from creating a second, billed job:

1. A Redis record ``<prefix>:submission:<id>`` stores the job id once
   CreateJob returned, and a later call returns that job without calling AWS.
2. Every attempt sends the same ``ClientRequestToken``, derived from the
   submission id, so MediaConvert returns the existing job for a repeated
   request within one minute of the successful one.
3. CreateJob may succeed while its response is lost, and the retry may come
   after the token window. The record is then still "pending", so the retry
   searches recent jobs (ListJobs) for one with this submission id in its
   UserMetadata and adopts it instead of creating another.

NOTE: two attempts of the same submission running at the same moment after
the token window has passed (for example a task redelivered while the first
worker still runs it) can both search, both find nothing and both create a
job. Celery runs one attempt at a time per task id unless a message is
redelivered, so this needs a worker to stall for longer than the broker's
visibility timeout.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import operator
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import redis.exceptions
from botocore.exceptions import ClientError

from mc_tasks.backpressure import check_queue, queue_checks_enabled
from mc_tasks.clients import get_client
from mc_tasks.errors import (
    InvalidJobError,
    MediaConvertError,
    MediaConvertForbidden,
    RedisUnavailableError,
    mediaconvert_error_from,
)
from mc_tasks.job_settings import load_job_settings, rebase_destinations, set_input
from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY, SUBMISSION_KEY
from mc_tasks.presets import (
    DEFAULT_PRESETS,
    NAMED_PRESETS,
    Preset,
    input_settings,
    is_plain_builtin_preset,
    preset_output_groups,
)
from mc_tasks.queues import QueueStatus, get_queue_status
from mc_tasks.ratelimit import CreateJobRateLimiter
from mc_tasks.settings import Settings, get_settings
from mc_tasks.signals import job_submitted
from mc_tasks.store import JobStore
from mc_tasks.submissions import PENDING, SubmissionRecord, SubmissionStore, redis_client
from mc_tasks.validation import (
    create_job_request_valid,
    normalize_destination,
    queue_name,
    validate_acceleration_mode,
    validate_create_job_request,
    validate_input_uri,
    validate_priority,
    validate_role_arn,
    validate_status_update_interval,
    validate_tags,
    validate_user_metadata,
)

if TYPE_CHECKING:
    from mypy_boto3_mediaconvert import MediaConvertClient

logger = logging.getLogger(__name__)

P = ParamSpec("P")

#: Age in seconds of a pending submission after which its ClientRequestToken
#: is treated as expired, so ListJobs is searched before a new CreateJob.
#: MediaConvert returns the original job for a token reused within one minute
#: of a successful request (API reference, "Preventing duplicate jobs"), and
#: 50 s leaves a margin for network delay.
CLIENT_REQUEST_TOKEN_WINDOW_S = 50.0
#: Maximum length of a ClientRequestToken that mc_tasks sends.
MAX_CLIENT_REQUEST_TOKEN_CHARS = 64
#: Jobs per ListJobs page when searching for a lost job (the API's maximum).
LIST_JOBS_PAGE_SIZE = 20
#: Maximum ListJobs pages read when searching for a lost job.
LIST_JOBS_MAX_PAGES = 5
#: Seconds of clock difference allowed between this host and MediaConvert when
#: comparing a job's CreatedAt with the time the first attempt began.
CLOCK_SKEW_ALLOWANCE_S = 300.0

#: Maximum number of request kinds remembered as valid (see _request_known_valid).
#: The memory is emptied when it is full.
MAX_CHECKED_REQUEST_KINDS = 64

_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_RESERVED_METADATA_KEYS = (REFERENCE_KEY, APPLICATION_KEY, SUBMISSION_KEY)
#: The weakest value that submit_transcode's own checks let through, for each
#: request field whose type those checks fix: an empty string in place of every
#: string. Priority is missing because every priority that validate_priority
#: accepts is at or above the model's minimum, which is all botocore checks.
_WEAKEST_VALUES: Mapping[str, Any] = {
    "Role": "",
    "Queue": "",
    "UserMetadata": {"": ""},
    "ClientRequestToken": "",
    "StatusUpdateInterval": "",
    "AccelerationSettings": {"Mode": ""},
    "Tags": {"": ""},
}
_KNOWN_FIELDS = frozenset({*_WEAKEST_VALUES, "Priority", "Settings"})
#: Request kinds known to pass botocore's model (see _request_known_valid): the
#: request's field names and preset names, each with the preset objects its names
#: were bound to at the time, because NAMED_PRESETS is a plain dict that an
#: application may change.
_checked_requests: dict[tuple[frozenset[str], tuple[str, ...]], tuple[Preset | None, ...]] = {}


@dataclass(frozen=True)
class SubmitResult:
    """The job of a submission.

    ``created`` is true when this call recorded the job for the submission
    (including a job found after a lost CreateJob response), false when the
    submission already had a recorded job and nothing was sent to AWS.
    """

    job_id: str
    submission_id: str
    queue: str
    created: bool
    #: Prefix under which the job writes its outputs, ``<destination><submission id>/``.
    destination: str

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict (a Celery task result)."""
        return asdict(self)


def _naming_redis_url(function: Callable[P, SubmitResult]) -> Callable[P, SubmitResult]:
    """Turn a Redis connection failure into RedisUnavailableError naming MC_TASKS_REDIS_URL."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> SubmitResult:
        try:
            return function(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if isinstance(exc, RedisUnavailableError):
                raise
            given = kwargs.get("settings")
            settings = given if isinstance(given, Settings) else get_settings()
            raise RedisUnavailableError(
                f"Redis at MC_TASKS_REDIS_URL={settings.redis_url_masked} could not be reached "
                f"({exc}): start it or set MC_TASKS_REDIS_URL to a reachable server."
            ) from exc

    return wrapper


@_naming_redis_url
def submit_transcode(
    input_uri: str,
    destination: str,
    *,
    reference: str | None = None,
    job_settings: Mapping[str, Any] | str | Path | None = None,
    presets: Sequence[str | Preset] | None = None,
    job_template: str | None = None,
    user_metadata: Mapping[str, str] | None = None,
    priority: int = 0,
    status_update_interval: str = "SECONDS_10",
    acceleration: str | None = None,
    tags: Mapping[str, str] | None = None,
    hop_destinations: Sequence[Mapping[str, Any]] | None = None,
    submission_id: str | None = None,
    settings: Settings | None = None,
) -> SubmitResult:
    """Create a MediaConvert job transcoding ``input_uri`` into ``destination``.

    The job's outputs come from ``job_settings``, a Settings dict, a JSON
    string or a path to a job exported from the console. Without it they come
    from ``presets``: names from :data:`mc_tasks.presets.NAMED_PRESETS` or
    preset objects, by default mp4, hls and thumbnails. A ``job_template``
    alone defines them too. Outputs go under ``<destination><submission_id>/``,
    except those a job template alone defines.

    ``hop_destinations`` is CreateJob's HopDestinations list (``Queue``,
    ``Priority``, ``WaitMinutes``), checked against botocore's model.

    Calling again with the same ``submission_id`` returns the first call's job
    without creating another, whatever the other arguments are.

    Raises InvalidJobError or ConfigurationError before any AWS call when the
    request is invalid; QueuePausedError, QueueBusyError or RateLimitedError
    before CreateJob when :mod:`mc_tasks.backpressure` delays or rejects a new
    submission (never one that already has a job); a
    :class:`~mc_tasks.errors.MediaConvertError` subclass
    when MediaConvert rejects it, and botocore's connection errors
    (EndpointConnectionError, ReadTimeoutError, ConnectionClosedError)
    unchanged, so the caller can retry with the same ``submission_id``.
    """
    settings = settings or get_settings()
    submission_id = submission_id or uuid.uuid4().hex
    _check_submission_id(submission_id)
    validate_input_uri(input_uri)
    prefix = f"{normalize_destination(destination)}{submission_id}/"
    role_arn = validate_role_arn(settings.require_role_arn())
    queue_name(settings.mediaconvert_queue, region=settings.region)
    metadata = build_user_metadata(settings, submission_id, reference, user_metadata)

    params: dict[str, Any] = {
        "Role": role_arn,
        "Settings": build_job_settings(input_uri, prefix, job_settings=job_settings,
                                       presets=presets, job_template=job_template),
        "Queue": settings.mediaconvert_queue,
        "UserMetadata": metadata,
        "ClientRequestToken": client_request_token(submission_id),
        "Priority": validate_priority(priority),
        "StatusUpdateInterval": validate_status_update_interval(status_update_interval),
    }
    if job_template is not None:
        params["JobTemplate"] = job_template
    if acceleration is not None:
        params["AccelerationSettings"] = {"Mode": validate_acceleration_mode(acceleration)}
    if tags:
        params["Tags"] = validate_tags(tags)
    if hop_destinations:
        params["HopDestinations"] = [dict(hop) for hop in hop_destinations]
    if job_settings is not None or not _request_known_valid(params, presets):
        validate_create_job_request(params)

    # Backpressure (mc_tasks.backpressure): a first attempt passes the queue checks
    # and takes a rate-limit token before it is recorded, so a delayed submission
    # leaves no record. SubmissionStore.claim takes the token and writes the pending
    # record in one script call, or returns the existing record and takes no token.
    # The queue checks run only when there is no record, so with checks enabled a
    # read comes first. A later attempt was already admitted: it only takes a
    # token, and only when it will send CreateJob.
    connection = redis_client(settings.redis_url)
    store = SubmissionStore(settings, connection)
    limiter = CreateJobRateLimiter(settings, connection)
    record = None
    if queue_checks_enabled(settings):
        record = store.get(submission_id)
        if record is None:
            check_queue(settings, submission_id=submission_id)
    claimed = False
    if record is None:
        record, claimed = store.claim(submission_id, limiter)
    if record.created:
        return _replay(record, submission_id, reference, prefix)

    client = get_client("mediaconvert", settings)
    job = None
    if _token_window_passed(record):
        job = find_submitted_job(client, settings, submission_id, since=record.since or 0.0)
    if job is None:
        if not claimed:
            limiter.acquire(submission_id=submission_id)
        job = _create_job(client, params, role_arn)

    job_id = str(job["Id"])
    queue = str(job.get("Queue") or settings.mediaconvert_queue)
    # The job state store learns of the job here because MediaConvert emits no
    # SUBMITTED event; reconciliation needs the record if every event is lost.
    # The same script call writes the submission's final record.
    final_record = store.created_value(job_id, queue=queue, destination=prefix)
    _job_store(settings).record_submitted(job_id, reference, queue=queue,
                                          user_metadata=dict(metadata),
                                          submission_id=submission_id, read_back=False,
                                          also_set=(store.key(submission_id), final_record),
                                          client=connection)
    logger.info("Submission %s created MediaConvert job %s (reference %s, queue %s)",
                submission_id, job_id, reference, queue)
    job_submitted.send(sender="submit_transcode", job_id=job_id, reference=reference,
                       queue=queue, user_metadata=dict(metadata))
    return SubmitResult(job_id=job_id, submission_id=submission_id, queue=queue, created=True,
                        destination=prefix)


def build_job_settings(input_uri: str, prefix: str, *,
                       job_settings: Mapping[str, Any] | str | Path | None = None,
                       presets: Sequence[str | Preset] | None = None,
                       job_template: str | None = None) -> dict[str, Any]:
    """Return the job ``Settings`` for ``input_uri`` with every output under ``prefix``.

    ``job_settings`` and ``presets`` exclude each other, and so do
    ``job_template`` and ``presets``.
    """
    if job_settings is not None and presets is not None:
        raise InvalidJobError(
            "Both job_settings and presets were given: pass one of them, because presets build "
            "the output groups that job_settings already contain."
        )
    if presets is not None and len(presets) == 0:
        raise InvalidJobError(
            "presets is empty: name at least one preset (mp4, hls, thumbnails), or leave "
            "presets out to get all three."
        )
    if job_template is not None and presets is not None:
        raise InvalidJobError(
            f"Both job_template {job_template!r} and presets were given: pass one of them, "
            "because the template defines the output groups."
        )

    if job_settings is not None:
        settings = load_job_settings(job_settings)
        set_input(settings, input_uri)
        rebase_destinations(settings, prefix)
        return settings
    if job_template is not None:
        # NOTE: the template's output groups keep the destinations the template
        # defines, so jobs from the same template may overwrite each other's files.
        return {"Inputs": [{"FileInput": input_uri}]}
    return {
        "Inputs": [input_settings(input_uri)],
        "OutputGroups": preset_output_groups(presets or DEFAULT_PRESETS, prefix),
    }


def build_user_metadata(settings: Settings, submission_id: str, reference: str | None,
                        user_metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Return the job's UserMetadata: the caller's pairs plus the mc_tasks keys."""
    caller = dict(user_metadata or {})
    overridden = sorted(key for key in caller if key in _RESERVED_METADATA_KEYS)
    if overridden:
        raise InvalidJobError(
            f"UserMetadata key(s) {', '.join(overridden)} are set by mc_tasks: pass the "
            "reference as reference= and rename the other keys."
        )
    metadata = {**caller, APPLICATION_KEY: settings.application, SUBMISSION_KEY: submission_id}
    if reference is not None:
        metadata[REFERENCE_KEY] = reference
    return validate_user_metadata(metadata)


def client_request_token(submission_id: str) -> str:
    """Return the ClientRequestToken of a submission: its id, or a SHA-256 of a long id."""
    if len(submission_id) <= MAX_CLIENT_REQUEST_TOKEN_CHARS:
        return submission_id
    return hashlib.sha256(submission_id.encode()).hexdigest()


def find_submitted_job(client: MediaConvertClient, settings: Settings, submission_id: str, *,
                       since: float) -> dict[str, Any] | None:
    """Search recent jobs of the queue for one created by ``submission_id``.

    Reads at most :data:`LIST_JOBS_MAX_PAGES` pages of the newest jobs and
    stops at jobs created before ``since`` (epoch seconds, minus a clock skew
    allowance). Returns the job or None.
    """
    name = queue_name(settings.mediaconvert_queue, region=settings.region)
    oldest_s = since - CLOCK_SKEW_ALLOWANCE_S
    request: dict[str, Any] = {"MaxResults": LIST_JOBS_PAGE_SIZE, "Order": "DESCENDING",
                               "Queue": name}
    for page in range(1, LIST_JOBS_MAX_PAGES + 1):
        try:
            response = client.list_jobs(**request)
        except ClientError as exc:
            raise mediaconvert_error_from(exc) from exc

        for job in response.get("Jobs", []):
            metadata = job.get("UserMetadata", {})
            if (metadata.get(SUBMISSION_KEY) == submission_id
                    and metadata.get(APPLICATION_KEY) == settings.application):
                logger.warning("Submission %s: adopting MediaConvert job %s found with ListJobs "
                               "after a CreateJob response was lost", submission_id, job["Id"])
                return dict(job)
            created_at = job.get("CreatedAt")
            if created_at is not None and created_at.timestamp() < oldest_s:
                return None

        if not response.get("NextToken"):
            return None
        request["NextToken"] = response["NextToken"]
        logger.debug("Submission %s: no job on ListJobs page %d, reading the next", submission_id,
                     page)
    logger.warning("Submission %s: no job found in the newest %d jobs of queue %s, so creating one",
                   submission_id, LIST_JOBS_PAGE_SIZE * LIST_JOBS_MAX_PAGES, name)
    return None


def pass_role_statement(role_arn: str) -> str:
    """Return the IAM policy statement that lets the caller pass ``role_arn`` to MediaConvert."""
    return (
        '{"Effect": "Allow", "Action": "iam:PassRole", '
        f'"Resource": "{role_arn}", '
        '"Condition": {"StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}}}'
    )


def _create_job(client: MediaConvertClient, params: Mapping[str, Any], role_arn: str
                ) -> dict[str, Any]:
    try:
        response = client.create_job(**params)
    except ClientError as exc:
        error = mediaconvert_error_from(exc)
        aws_message = str(exc.response.get("Error", {}).get("Message", ""))
        if isinstance(error, MediaConvertForbidden) and "iam:passrole" in aws_message.lower():
            error = _with_pass_role_hint(error, role_arn)
        raise error from exc
    return dict(response["Job"])


def _with_pass_role_hint(error: MediaConvertError, role_arn: str) -> MediaConvertError:
    message = (f"{error} The submitting identity needs this statement in an IAM policy: "
               f"{pass_role_statement(role_arn)}")
    return type(error)(message, code=error.code, http_status=error.http_status,
                       operation=error.operation)


def _replay(record: SubmissionRecord, submission_id: str, reference: str | None,
            prefix: str) -> SubmitResult:
    job_id = str(record.job_id)
    logger.info("Submission %s already created MediaConvert job %s (reference %s), "
                "so not creating another", submission_id, job_id, reference)
    return SubmitResult(job_id=job_id, submission_id=submission_id, queue=record.queue or "",
                        created=False, destination=record.destination or prefix)


@functools.lru_cache(maxsize=8)
def _job_store(settings: Settings) -> JobStore:
    # A JobStore computes the SHA-1 of each of its scripts when it is created. Its
    # connection pool renews itself in a forked child.
    return JobStore(settings)


def _request_known_valid(params: Mapping[str, Any],
                         presets: Sequence[str | Preset] | None) -> bool:
    """Return True when the preset-built CreateJob request ``params`` is known to pass botocore.

    A request qualifies when all its fields are in :data:`_WEAKEST_VALUES` or are
    Priority and Settings, and its Settings come from plain built-in presets
    named in ``presets`` (:func:`~mc_tasks.presets.is_plain_builtin_preset`).
    The first request of each kind is checked with the weakest values and with
    Settings built for an empty input and destination. Later requests of that
    kind differ from it only in longer strings, in maps with more such strings
    and in a priority that the model's range admits. botocore checks only the
    type and the minimum of a string or a number, so they pass too.
    """
    if not params.keys() <= _KNOWN_FIELDS:
        return False
    if presets is None:
        preset_names = DEFAULT_PRESETS
    elif isinstance(presets, str):
        return False
    else:
        preset_names = tuple(name for name in presets if isinstance(name, str))
        if len(preset_names) != len(presets):
            return False
    kind = (frozenset(params), preset_names)
    current = tuple(map(NAMED_PRESETS.get, preset_names))
    checked = _checked_requests.get(kind)
    if checked is not None and all(map(operator.is_, checked, current)):
        return True
    if not all(map(is_plain_builtin_preset, current)):
        return False

    weakest = {name: _WEAKEST_VALUES.get(name, value) for name, value in params.items()}
    weakest["Settings"] = build_job_settings("", "", presets=preset_names)
    if not create_job_request_valid(weakest):
        return False
    if len(_checked_requests) >= MAX_CHECKED_REQUEST_KINDS:
        _checked_requests.clear()
    _checked_requests[kind] = current
    return True


def _token_window_passed(record: SubmissionRecord) -> bool:
    if record.state != PENDING or record.since is None:
        return False
    return time.time() - record.since >= CLIENT_REQUEST_TOKEN_WINDOW_S


def _check_submission_id(submission_id: str) -> None:
    if not isinstance(submission_id, str) or not _SUBMISSION_ID.match(submission_id):
        raise InvalidJobError(
            f"Invalid submission id {submission_id!r}: use 1-128 letters, digits, '_', '.', ':' "
            "or '-' (a Celery task id or a UUID)."
        )


__all__ = [
    "CLIENT_REQUEST_TOKEN_WINDOW_S",
    "QueueStatus",
    "SubmitResult",
    "build_job_settings",
    "build_user_metadata",
    "client_request_token",
    "find_submitted_job",
    "get_queue_status",
    "pass_role_statement",
    "submit_transcode",
]
