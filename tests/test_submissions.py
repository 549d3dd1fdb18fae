"""Submission records against a real Redis: the claim, the Redis client and its script runner.

A claim writes a new submission's pending record and takes its CreateJob token
in one script call, or returns the record that exists and takes no token.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest
import redis

from mc_tasks.errors import RateLimitedError
from mc_tasks.ratelimit import CreateJobRateLimiter
from mc_tasks.resp import run_script
from mc_tasks.settings import Settings
from mc_tasks.submissions import SubmissionStore, _encode, redis_client
from tests.conftest import TEST_REDIS_URL

#: Threads that claim the same submission at once.
CLAIMING_THREADS = 8


def one_token(settings: Settings) -> Settings:
    """Return settings whose CreateJob bucket contains one token and refills only after 100 s."""
    return settings.replace(create_job_rate_per_s=0.01, create_job_burst=1,
                            create_job_max_wait_s=0.0)


def test_claim_records_and_takes_token(settings: Settings) -> None:
    limited = one_token(settings)
    store = SubmissionStore(limited)
    limiter = CreateJobRateLimiter(limited)
    before = time.time()

    record, claimed = store.claim("sub-new", limiter)

    stored = store.get("sub-new")
    assert claimed is True
    assert record.state == "pending"
    assert record.since is not None
    assert before <= record.since <= time.time()
    assert stored == record
    with pytest.raises(RateLimitedError):
        limiter.acquire(timeout_s=0.0)


def test_existing_record_takes_no_token(settings: Settings) -> None:
    limited = one_token(settings)
    store = SubmissionStore(limited)
    created = store.mark_created("sub-done", "1700000000000-abcdef", queue="Default",
                                 destination="s3://media-out/videos/sub-done/")
    limiter = CreateJobRateLimiter(limited)

    record, claimed = store.claim("sub-done", limiter)

    assert claimed is False
    assert record == created
    assert limiter.try_acquire() == 0.0


def test_claim_keeps_first_attempt_time(settings: Settings) -> None:
    store = SubmissionStore(settings)
    first = store.mark_pending("sub-retry")

    record, claimed = store.claim("sub-retry", CreateJobRateLimiter(settings))

    assert claimed is False
    assert record == first


def test_rate_limited_claim_writes_no_record(settings: Settings) -> None:
    limited = one_token(settings)
    limiter = CreateJobRateLimiter(limited)
    assert limiter.try_acquire() == 0.0
    store = SubmissionStore(limited)

    with pytest.raises(RateLimitedError):
        store.claim("sub-limited", limiter)

    assert store.get("sub-limited") is None


def test_disabled_limit_skips_bucket(settings: Settings) -> None:
    disabled = settings.replace(create_job_rate_per_s=0.0)
    limiter = CreateJobRateLimiter(disabled)

    record, claimed = SubmissionStore(disabled).claim("sub-unlimited", limiter)

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    assert claimed is True
    assert record.state == "pending"
    assert connection.exists(limiter.key) == 0
    connection.close()


def test_unreadable_record_claims_as_oldest(settings: Settings) -> None:
    store = SubmissionStore(settings)
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    connection.set(store.key("sub-garbled"), "not json", ex=60)
    connection.close()

    record, claimed = store.claim("sub-garbled", CreateJobRateLimiter(settings))

    assert claimed is False
    assert record.state == "pending"
    assert record.since == 0.0


def test_one_of_many_concurrent_claims_wins(settings: Settings) -> None:
    plenty = settings.replace(create_job_rate_per_s=1000.0, create_job_burst=1000)
    store = SubmissionStore(plenty)
    limiter = CreateJobRateLimiter(plenty)
    start = threading.Barrier(CLAIMING_THREADS)
    outcomes: list[bool] = []

    def claim() -> None:
        start.wait(10)
        outcomes.append(store.claim("sub-contended", limiter)[1])

    threads = [threading.Thread(target=claim) for _ in range(CLAIMING_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [False] * (CLAIMING_THREADS - 1) + [True]


def test_created_value_matches_mark_created(settings: Settings) -> None:
    store = SubmissionStore(settings)
    stored = store.mark_created("sub-format", "1700000000000-abcdef", queue="Default",
                                destination="s3://media-out/videos/sub-format/")

    value = store.created_value("1700000000000-abcdef", queue="Default",
                                destination="s3://media-out/videos/sub-format/")

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    assert value == _encode(stored)
    assert connection.get(store.key("sub-format")) == value.encode()
    connection.close()


def test_claimed_record_matches_mark_pending(settings: Settings) -> None:
    store = SubmissionStore(settings)

    record, _ = store.claim("sub-shape", CreateJobRateLimiter(settings))

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    raw = connection.get(store.key("sub-shape"))
    connection.close()
    assert raw is not None
    assert raw.decode() == _encode(record)
    assert json.loads(raw) == {"since": record.since, "state": "pending"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_its_own_client() -> None:
    parent = redis_client(TEST_REDIS_URL)
    assert parent.ping()
    read, write = os.pipe()

    pid = os.fork()
    if pid == 0:
        # The child reports over the pipe and leaves without running the parent's cleanup.
        code = 1
        try:
            child = redis_client(TEST_REDIS_URL)
            code = 0 if child is not parent and child.ping() else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    reported = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)

    assert reported == bytes([0])
    assert parent.ping()


@pytest.mark.parametrize("single_connection", [True, False])
def test_unknown_script_is_loaded(single_connection: bool) -> None:
    client = (redis_client(TEST_REDIS_URL) if single_connection
              else redis.Redis.from_url(TEST_REDIS_URL))
    script = client.register_script(f"-- {uuid.uuid4().hex}\nreturn ARGV[1] .. KEYS[1]")
    assert client.script_exists(script.sha) == [False]

    reply = run_script(client, script, ["key"], ["value-"])

    assert reply == b"value-key"
    assert client.script_exists(script.sha) == [True]


def test_script_retried_after_lost_connection() -> None:
    client = redis_client(TEST_REDIS_URL)
    script = client.register_script("return ARGV[1]")
    assert run_script(client, script, [], ["before"]) == b"before"
    other = redis.Redis.from_url(TEST_REDIS_URL)
    assert other.client_kill_filter(_id=client.client_id()) == 1
    other.close()

    reply = run_script(client, script, [], ["after"])

    assert reply == b"after"


def test_script_error_keeps_connection_usable() -> None:
    client = redis_client(TEST_REDIS_URL)
    failing = client.register_script("return redis.error_reply('bad input')")
    echo = client.register_script("return ARGV[1]")
    connection_id = client.client_id()

    with pytest.raises(redis.exceptions.ResponseError, match="bad input"):
        run_script(client, failing, [], [])

    assert run_script(client, echo, [], ["next"]) == b"next"
    assert client.client_id() == connection_id
