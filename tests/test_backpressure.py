"""Queue checks and the rate limit in submit_transcode, against the local MediaConvert.

The local MediaConvert has only the ``Default`` queue. Tests that pause it
resume it before they end. Jobs submitted while it is paused stay SUBMITTED,
which is how the busy-queue test fills the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mc_tasks.backpressure import (
    check_queue,
    clear_queue_status_cache,
    get_queue_status_cached,
    queue_checks_enabled,
)
from mc_tasks.clients import get_client
from mc_tasks.errors import (
    ConfigurationError,
    MediaConvertNotFound,
    QueueBusyError,
    QueuePausedError,
    RateLimitedError,
)
from mc_tasks.ratelimit import CreateJobRateLimiter
from mc_tasks.settings import (
    DEFAULT_MAX_SUBMITTED_JOBS,
    DEFAULT_PAUSED_QUEUE,
    DEFAULT_QUEUE_BUSY_RETRY_S,
    DEFAULT_QUEUE_STATUS_CACHE_S,
    Settings,
)
from mc_tasks.submissions import SubmissionStore
from mc_tasks.submit import submit_transcode

INPUT_URI = "s3://media-in/uploads/clip.mp4"
DESTINATION = "s3://media-out/videos"
#: Cache period used where a test waits for the cache to expire, in seconds.
SHORT_CACHE_S = 0.3


@pytest.fixture(autouse=True)
def _fresh_queue_cache() -> Iterator[None]:
    clear_queue_status_cache()
    yield
    clear_queue_status_cache()


@pytest.fixture
def mc_settings(settings: Settings, local_mediaconvert: str) -> Settings:
    return settings


@pytest.fixture
def operations(mc_settings: Settings) -> Iterator[list[str]]:
    """Record the name of every MediaConvert operation the client sends."""
    calls: list[str] = []
    client = get_client("mediaconvert", mc_settings)

    def record(model: Any, **kwargs: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.mediaconvert", record,
                                unique_id="test-record-operations")
    yield calls
    client.meta.events.unregister("before-call.mediaconvert",
                                  unique_id="test-record-operations")


@pytest.fixture
def paused_queue(mc_settings: Settings) -> Iterator[None]:
    client = get_client("mediaconvert", mc_settings)
    client.update_queue(Name="Default", Status="PAUSED")
    yield
    client.update_queue(Name="Default", Status="ACTIVE")


def empty_bucket(settings: Settings) -> Settings:
    """Return settings whose CreateJob bucket is empty and refills only after 100 s."""
    limited = settings.replace(create_job_rate_per_s=0.01, create_job_burst=1,
                               create_job_max_wait_s=0.0)
    assert CreateJobRateLimiter(limited).try_acquire() == 0.0
    return limited


def test_cache_reuses_status_within_period(mc_settings: Settings,
                                           operations: list[str]) -> None:
    first = get_queue_status_cached(mc_settings)
    second = get_queue_status_cached(mc_settings)

    assert operations.count("GetQueue") == 1
    assert second == first


def test_cache_refreshes_after_period(mc_settings: Settings, operations: list[str]) -> None:
    short = mc_settings.replace(queue_status_cache_s=SHORT_CACHE_S)
    get_queue_status_cached(short)
    get_client("mediaconvert", short).update_queue(Name="Default", Status="PAUSED")
    try:
        stale = get_queue_status_cached(short)
        time.sleep(SHORT_CACHE_S + 0.1)
        fresh = get_queue_status_cached(short)
    finally:
        get_client("mediaconvert", short).update_queue(Name="Default", Status="ACTIVE")

    assert stale.status == "ACTIVE"
    assert fresh.status == "PAUSED"
    assert operations.count("GetQueue") == 2


def test_zero_cache_period_disables_cache(mc_settings: Settings,
                                                  operations: list[str]) -> None:
    uncached = mc_settings.replace(queue_status_cache_s=0.0)

    get_queue_status_cached(uncached)
    get_queue_status_cached(uncached)

    assert operations.count("GetQueue") == 2


def test_cache_key_accepts_queue_arn(mc_settings: Settings, operations: list[str]) -> None:
    arn = get_queue_status_cached(mc_settings).arn

    status = get_queue_status_cached(mc_settings, queue=arn)

    assert status.name == "Default"
    assert operations.count("GetQueue") == 1


@pytest.mark.usefixtures("paused_queue")
def test_paused_queue_reject_policy(mc_settings: Settings,
                                              operations: list[str]) -> None:
    rejecting = mc_settings.replace(paused_queue="reject")

    with pytest.raises(QueuePausedError) as caught:
        submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-paused-reject",
                         settings=rejecting)

    message = str(caught.value)
    assert "Default" in message
    assert "UpdateQueue" in message
    assert "MC_TASKS_PAUSED_QUEUE=warn" in message
    assert caught.value.retryable is False
    assert "CreateJob" not in operations
    assert SubmissionStore(rejecting).get("sub-paused-reject") is None


@pytest.mark.usefixtures("paused_queue")
def test_paused_queue_warns_and_submits(mc_settings: Settings,
                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mc_tasks.backpressure"):
        result = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-paused-warn",
                                  settings=mc_settings)

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert result.created is True
    assert len(warnings) == 1
    assert "Default" in warnings[0].getMessage()
    assert "sub-paused-warn" in warnings[0].getMessage()
    assert "PAUSED" in warnings[0].getMessage()


@pytest.mark.usefixtures("paused_queue")
def test_ignore_policy_skips_get_queue(mc_settings: Settings, operations: list[str]) -> None:
    ignoring = mc_settings.replace(paused_queue="ignore")

    result = submit_transcode(INPUT_URI, DESTINATION, settings=ignoring)

    assert result.created is True
    assert "GetQueue" not in operations
    assert "CreateJob" in operations


@pytest.mark.usefixtures("paused_queue")
def test_busy_queue_raises_with_delay(mc_settings: Settings,
                                            operations: list[str]) -> None:
    uncached = mc_settings.replace(queue_status_cache_s=0.0)
    waiting = get_queue_status_cached(uncached).submitted_jobs_count
    limited = uncached.replace(max_submitted_jobs=waiting + 2, queue_busy_retry_s=42.0)
    for number in range(2):
        submit_transcode(INPUT_URI, DESTINATION, submission_id=f"sub-fill-{number}",
                         settings=limited)
    operations.clear()

    with pytest.raises(QueueBusyError) as caught:
        submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-busy", settings=limited)

    assert caught.value.retryable is True
    assert caught.value.retry_after_s == 42.0
    assert caught.value.queue == "Default"
    assert caught.value.submitted_jobs_count == waiting + 2
    assert "MC_TASKS_MAX_SUBMITTED_JOBS" in str(caught.value)
    assert "CreateJob" not in operations
    assert SubmissionStore(limited).get("sub-busy") is None


def test_queue_below_limit_is_admitted(mc_settings: Settings) -> None:
    uncached = mc_settings.replace(queue_status_cache_s=0.0)
    waiting = get_queue_status_cached(uncached).submitted_jobs_count

    status = check_queue(uncached.replace(max_submitted_jobs=waiting + 1),
                         submission_id="sub-room")

    assert status is not None
    assert status.submitted_jobs_count == waiting


def test_replay_skips_all_checks(mc_settings: Settings,
                                                  operations: list[str]) -> None:
    first = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-replay",
                             settings=mc_settings)
    strict = empty_bucket(mc_settings.replace(paused_queue="reject", max_submitted_jobs=1))
    client = get_client("mediaconvert", mc_settings)
    client.update_queue(Name="Default", Status="PAUSED")
    operations.clear()
    try:
        replay = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-replay",
                                  settings=strict)
        sent_by_replay = list(operations)
    finally:
        client.update_queue(Name="Default", Status="ACTIVE")

    assert replay.created is False
    assert replay.job_id == first.job_id
    assert sent_by_replay == []


def test_pending_retry_skips_queue_checks(mc_settings: Settings,
                                                        operations: list[str]) -> None:
    SubmissionStore(mc_settings).mark_pending("sub-pending")
    rejecting = mc_settings.replace(paused_queue="reject")
    client = get_client("mediaconvert", mc_settings)
    client.update_queue(Name="Default", Status="PAUSED")
    operations.clear()
    try:
        result = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-pending",
                                  settings=rejecting)
    finally:
        client.update_queue(Name="Default", Status="ACTIVE")

    assert result.created is True
    assert "GetQueue" not in operations
    assert "CreateJob" in operations


def test_pending_retry_is_rate_limited(mc_settings: Settings,
                                                     operations: list[str]) -> None:
    SubmissionStore(mc_settings).mark_pending("sub-pending-limited")
    limited = empty_bucket(mc_settings)

    with pytest.raises(RateLimitedError):
        submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-pending-limited",
                         settings=limited)

    assert "CreateJob" not in operations


def test_new_submission_is_rate_limited(mc_settings: Settings,
                                                      operations: list[str]) -> None:
    limited = empty_bucket(mc_settings)

    with pytest.raises(RateLimitedError) as caught:
        submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-no-token",
                         settings=limited)

    assert caught.value.retry_after_s > 0
    assert "CreateJob" not in operations
    assert SubmissionStore(limited).get("sub-no-token") is None


def test_rejection_keeps_rate_token(mc_settings: Settings) -> None:
    strict = mc_settings.replace(paused_queue="reject", create_job_rate_per_s=0.01,
                                 create_job_burst=1)
    client = get_client("mediaconvert", mc_settings)
    client.update_queue(Name="Default", Status="PAUSED")
    try:
        with pytest.raises(QueuePausedError):
            submit_transcode(INPUT_URI, DESTINATION, settings=strict)
    finally:
        client.update_queue(Name="Default", Status="ACTIVE")

    assert CreateJobRateLimiter(strict).try_acquire() == 0.0


def test_advisory_lookup_failure_is_logged(
        mc_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    unknown = mc_settings.replace(mediaconvert_queue="no-such-queue")

    with caplog.at_level(logging.WARNING, logger="mc_tasks.backpressure"):
        status = check_queue(unknown, submission_id="sub-unknown-queue")

    assert status is None
    assert "GetQueue" in caplog.text
    assert "no-such-queue" in caplog.text


def test_blocking_lookup_failure_raises(mc_settings: Settings) -> None:
    unknown = mc_settings.replace(mediaconvert_queue="no-such-queue", paused_queue="reject")

    with pytest.raises(MediaConvertNotFound) as caught:
        check_queue(unknown)

    assert caught.value.operation == "GetQueue"


def test_queue_settings_default_from_env() -> None:
    settings = Settings.from_env({"AWS_DEFAULT_REGION": "us-east-1"})

    assert settings.queue_status_cache_s == DEFAULT_QUEUE_STATUS_CACHE_S
    assert settings.paused_queue == DEFAULT_PAUSED_QUEUE
    assert settings.max_submitted_jobs == DEFAULT_MAX_SUBMITTED_JOBS
    assert settings.queue_busy_retry_s == DEFAULT_QUEUE_BUSY_RETRY_S


def test_queue_settings_are_read_from_env() -> None:
    settings = Settings.from_env({
        "AWS_DEFAULT_REGION": "us-east-1",
        "MC_TASKS_QUEUE_STATUS_CACHE_S": "0",
        "MC_TASKS_PAUSED_QUEUE": " Reject ",
        "MC_TASKS_MAX_SUBMITTED_JOBS": "500",
        "MC_TASKS_QUEUE_BUSY_RETRY_S": "90",
    })

    assert settings.queue_status_cache_s == 0.0
    assert settings.paused_queue == "reject"
    assert settings.max_submitted_jobs == 500
    assert settings.queue_busy_retry_s == 90.0


@pytest.mark.parametrize(("variable", "value"), [
    ("MC_TASKS_QUEUE_STATUS_CACHE_S", "-1"),
    ("MC_TASKS_QUEUE_STATUS_CACHE_S", "soon"),
    ("MC_TASKS_PAUSED_QUEUE", "stop"),
    ("MC_TASKS_MAX_SUBMITTED_JOBS", "-5"),
    ("MC_TASKS_QUEUE_BUSY_RETRY_S", "0"),
])
def test_invalid_queue_setting_names_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"AWS_DEFAULT_REGION": "us-east-1", variable: value})

    assert variable in str(caught.value)



def test_unchecked_replay_takes_no_token(mc_settings: Settings,
                                         operations: list[str]) -> None:
    ignoring = mc_settings.replace(paused_queue="ignore")
    first = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-replay-ignore",
                             settings=ignoring)
    strict = empty_bucket(ignoring)
    operations.clear()

    replay = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-replay-ignore",
                              settings=strict)

    assert replay.created is False
    assert replay.job_id == first.job_id
    assert operations == []


@pytest.mark.parametrize(("paused_queue", "max_submitted_jobs", "enabled"), [
    ("ignore", 0, False),
    ("ignore", 5, True),
    ("warn", 0, True),
    ("reject", 0, True),
])
def test_queue_checks_enabled_follows_policies(settings: Settings, paused_queue: str,
                                               max_submitted_jobs: int, enabled: bool) -> None:
    policy = settings.replace(paused_queue=paused_queue, max_submitted_jobs=max_submitted_jobs)

    assert queue_checks_enabled(policy) is enabled
