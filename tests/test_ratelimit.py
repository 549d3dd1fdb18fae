"""The shared CreateJob token bucket against a real Redis, and its settings.

Counts over measured windows use generous bounds: the checks are that the
bucket never grants more than ``burst + rate * elapsed`` and does grant a
clear share of it, not exact timings.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.queues import Queue
from typing import Any

import pytest
import redis

from mc_tasks.errors import ConfigurationError, RateLimitedError
from mc_tasks.ratelimit import CreateJobRateLimiter, acquire_create_job_token
from mc_tasks.settings import (
    DEFAULT_CREATE_JOB_BURST,
    DEFAULT_CREATE_JOB_MAX_WAIT_S,
    DEFAULT_CREATE_JOB_RATE_PER_S,
    Settings,
)
from tests.conftest import TEST_REDIS_URL

#: Length of the windows in which grants are counted, in seconds.
WINDOW_S = 1.0
#: Grants allowed above ``burst + rate * elapsed``: refills between the clock reads.
SLACK_TOKENS = 2


def limited(settings: Settings, rate_per_s: float, burst: int) -> Settings:
    return settings.replace(create_job_rate_per_s=rate_per_s, create_job_burst=burst)


def take_for(limiter: CreateJobRateLimiter, until: float) -> int:
    """Take tokens as fast as they come until ``until`` (time.time()); return how many."""
    granted = 0
    while time.time() < until:
        wait_s = limiter.try_acquire()
        if wait_s == 0.0:
            granted += 1
        else:
            time.sleep(min(wait_s, max(0.0, until - time.time())))
    return granted


def take_in_child(settings: Settings, window_s: float, ready: Queue[int], start: Any,
                  results: Queue[int]) -> None:
    limiter = CreateJobRateLimiter(settings)
    ready.put(1)
    start.wait(30)
    results.put(take_for(limiter, time.time() + window_s))


def test_full_bucket_grants_exactly_burst(settings: Settings) -> None:
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s=0.5, burst=5))

    waits = [limiter.try_acquire() for _ in range(6)]

    assert waits[:5] == [0.0] * 5
    assert 1.0 <= waits[5] <= 2.0


def test_bucket_refills_at_rate(settings: Settings) -> None:
    rate_per_s, burst = 20.0, 5
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s, burst))

    started = time.time()
    granted = take_for(limiter, started + WINDOW_S)
    elapsed_s = time.time() - started

    assert granted <= burst + rate_per_s * elapsed_s + SLACK_TOKENS
    assert granted >= burst + rate_per_s * WINDOW_S * 0.6


def test_threads_share_one_bucket(settings: Settings) -> None:
    rate_per_s, burst = 20.0, 5
    shared = limited(settings, rate_per_s, burst)
    counts: list[int] = []
    started = time.time()
    until = started + WINDOW_S

    def worker() -> None:
        counts.append(take_for(CreateJobRateLimiter(shared), until))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_s = time.time() - started

    assert len(counts) == 4
    assert sum(counts) <= burst + rate_per_s * elapsed_s + SLACK_TOKENS
    assert sum(counts) >= burst + rate_per_s * WINDOW_S * 0.6


def test_processes_share_one_bucket(settings: Settings) -> None:
    rate_per_s, burst = 20.0, 5
    shared = limited(settings, rate_per_s, burst)
    # spawn, not fork: a forked child would inherit the broker connections that
    # other tests left open in this process and hang closing them.
    context = multiprocessing.get_context("spawn")
    ready: Queue[int] = context.Queue()
    results: Queue[int] = context.Queue()
    start = context.Event()

    children = [context.Process(target=take_in_child,
                                args=(shared, WINDOW_S, ready, start, results))
                for _ in range(2)]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=30)
    # The window starts once both children have imported everything.
    started = time.time()
    start.set()
    counts = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)
    elapsed_s = time.time() - started

    assert [child.exitcode for child in children] == [0, 0]
    assert sum(counts) <= burst + rate_per_s * elapsed_s + SLACK_TOKENS
    assert sum(counts) >= burst + rate_per_s * WINDOW_S * 0.5
    assert min(counts) > 0


def test_acquire_waits_for_next_token(settings: Settings) -> None:
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s=5.0, burst=1))
    assert limiter.try_acquire() == 0.0

    started = time.monotonic()
    waited_s = limiter.acquire(timeout_s=2.0)
    elapsed_s = time.monotonic() - started

    assert 0.1 <= waited_s <= 1.0
    assert elapsed_s >= waited_s


def test_acquire_raises_past_timeout(settings: Settings) -> None:
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s=0.1, burst=1))
    assert limiter.try_acquire() == 0.0

    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire(timeout_s=0.5, submission_id="sub-limited")
    elapsed_s = time.monotonic() - started

    assert caught.value.retryable is True
    assert caught.value.retry_after_s >= 9.0
    assert caught.value.retry_after_s <= 21.0
    assert "MC_TASKS_CREATE_JOB_RATE" in str(caught.value)
    assert elapsed_s < 0.5


def test_disabled_limit_never_waits(settings: Settings) -> None:
    disabled = settings.replace(create_job_rate_per_s=0.0, create_job_burst=1)
    limiter = CreateJobRateLimiter(disabled)

    started = time.monotonic()
    waits = [acquire_create_job_token(disabled, timeout_s=0.0) for _ in range(200)]
    elapsed_s = time.monotonic() - started

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    assert waits == [0.0] * 200
    assert elapsed_s < 0.5
    assert connection.exists(limiter.key) == 0
    connection.close()


def test_bucket_key_uses_prefix_and_expires(settings: Settings, redis_prefix: str) -> None:
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s=10.0, burst=10))

    limiter.try_acquire()

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    assert limiter.key == f"{redis_prefix}:ratelimit:create_job"
    assert connection.exists(limiter.key) == 1
    assert 0 < connection.pttl(limiter.key) <= 2000
    connection.close()


def test_rate_settings_default_from_env() -> None:
    settings = Settings.from_env({"AWS_DEFAULT_REGION": "us-east-1"})

    assert settings.create_job_rate_per_s == DEFAULT_CREATE_JOB_RATE_PER_S
    assert settings.create_job_burst == DEFAULT_CREATE_JOB_BURST
    assert settings.create_job_max_wait_s == DEFAULT_CREATE_JOB_MAX_WAIT_S


def test_rate_settings_are_read_from_env() -> None:
    settings = Settings.from_env({
        "AWS_DEFAULT_REGION": "us-east-1",
        "MC_TASKS_CREATE_JOB_RATE": "2.5",
        "MC_TASKS_CREATE_JOB_BURST": "7",
        "MC_TASKS_CREATE_JOB_MAX_WAIT_S": "3",
    })

    assert settings.create_job_rate_per_s == 2.5
    assert settings.create_job_burst == 7
    assert settings.create_job_max_wait_s == 3.0


@pytest.mark.parametrize(("variable", "value"), [
    ("MC_TASKS_CREATE_JOB_RATE", "fast"),
    ("MC_TASKS_CREATE_JOB_RATE", "-1"),
    ("MC_TASKS_CREATE_JOB_RATE", "inf"),
    ("MC_TASKS_CREATE_JOB_BURST", "0"),
    ("MC_TASKS_CREATE_JOB_MAX_WAIT_S", "-0.5"),
])
def test_invalid_rate_setting_names_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"AWS_DEFAULT_REGION": "us-east-1", variable: value})

    assert variable in str(caught.value)


def test_claim_waits_for_token(settings: Settings, redis_prefix: str) -> None:
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s=5.0, burst=1))
    assert limiter.try_acquire() == 0.0
    key = f"{redis_prefix}:claimed"
    values: list[str] = []

    def value() -> str:
        values.append(f"try-{len(values)}")
        return values[-1]

    started = time.monotonic()
    existing = limiter.claim(key, value, 60, timeout_s=2.0)
    elapsed_s = time.monotonic() - started

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    assert existing is None
    assert 0.1 <= elapsed_s <= 1.0
    assert len(values) >= 2
    assert connection.get(key) == values[-1].encode()
    assert 0 < connection.ttl(key) <= 60
    connection.close()


def test_claim_returns_existing_value(settings: Settings, redis_prefix: str) -> None:
    limiter = CreateJobRateLimiter(limited(settings, rate_per_s=0.01, burst=1))
    key = f"{redis_prefix}:claimed"
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    connection.set(key, "first", ex=60)

    existing = limiter.claim(key, lambda: "second", 60, timeout_s=0.0)

    assert existing == b"first"
    assert connection.get(key) == b"first"
    assert limiter.try_acquire() == 0.0
    connection.close()
