"""Redis records that tie a submission id to the MediaConvert job it created.

Key ``<prefix>:submission:<submission id>`` contains a JSON object in one of two states:

* ``{"state": "pending", "since": <epoch s>}``: a CreateJob call was about to
  be sent at ``since``, the time of the first attempt, which later attempts keep;
* ``{"state": "created", "job_id": ..., "queue": ..., "destination": ...}``:
  the job exists. This record is final and is never overwritten.

Both expire after ``Settings.state_ttl_s``. :mod:`mc_tasks.submit` reads the
record before calling CreateJob and writes it around that call. The script call
that takes a new submission's CreateJob token also writes its pending record
(:meth:`SubmissionStore.claim`). The script call that records the job in
:class:`mc_tasks.store.JobStore` also writes the final record.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from mc_tasks.settings import Settings

if TYPE_CHECKING:

    from mc_tasks.ratelimit import CreateJobRateLimiter

logger = logging.getLogger(__name__)

PENDING = "pending"
CREATED = "created"


@dataclass(frozen=True)
class SubmissionRecord:
    """The stored state of one submission."""

    state: str
    #: Epoch seconds when the first CreateJob attempt began, set in a pending record.
    since: float | None = None
    job_id: str | None = None
    queue: str | None = None
    destination: str | None = None

    @property
    def created(self) -> bool:
        return self.state == CREATED and self.job_id is not None


@functools.lru_cache(maxsize=8)
def redis_client(redis_url: str) -> redis.Redis:
    """Return a Redis client for ``redis_url``, one per URL and process, connected at once.

    The client has a single connection, which its threads use in turn. A
    connection pool checks a connection out and back in for every command, which
    cost about a third of a command's client CPU in a measurement with redis-py
    8.2 and a local server. The commands sent through this client (submission
    records, the CreateJob rate limit) are few, so one connection serves them.
    A forked child gets new clients.
    """
    return redis.Redis.from_url(redis_url, single_connection_client=True)


os.register_at_fork(after_in_child=redis_client.cache_clear)


class SubmissionStore:
    """Reads and writes submission records in Redis under ``Settings.redis_key_prefix``."""

    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        self._connection = connection or redis_client(settings.redis_url)
        self._prefix = settings.redis_key_prefix
        self._ttl_s = settings.state_ttl_s

    def key(self, submission_id: str) -> str:
        return f"{self._prefix}:submission:{submission_id}"

    def get(self, submission_id: str) -> SubmissionRecord | None:
        """Return the record of ``submission_id``, or None when there is none."""
        raw = self._connection.get(self.key(submission_id))
        if raw is None:
            return None
        return _decode(submission_id, raw)

    def mark_pending(self, submission_id: str) -> SubmissionRecord:
        """Record that a CreateJob attempt begins, unless a record exists, and return the record.

        An existing pending record keeps its ``since``, so ``since`` is the
        start of the first attempt however many attempts follow.
        """
        record = SubmissionRecord(state=PENDING, since=time.time())
        written = self._connection.set(self.key(submission_id), _encode(record),
                                       ex=self._ttl_s, nx=True)
        if written:
            return record
        existing = self.get(submission_id)
        if existing is None:
            return _UNKNOWN_START
        return existing

    def claim(self, submission_id: str, limiter: CreateJobRateLimiter
              ) -> tuple[SubmissionRecord, bool]:
        """Take a CreateJob token and write a pending record in one call, unless a record exists.

        Returns the record and whether this call wrote it. An existing record
        is returned as it is and no token is taken. The call goes through the
        limiter's Redis connection, waits for a token like
        :meth:`CreateJobRateLimiter.acquire` and, when it raises
        RateLimitedError, writes no record.
        """
        since = 0.0

        def pending() -> str:
            nonlocal since
            since = time.time()
            # The text that _encode(SubmissionRecord(state=PENDING, since=since)) returns.
            return json.dumps({"since": since, "state": PENDING})

        raw = limiter.claim(self.key(submission_id), pending, self._ttl_s,
                            submission_id=submission_id)
        if raw is None:
            return SubmissionRecord(state=PENDING, since=since), True
        return _decode(submission_id, raw) or _UNKNOWN_START, False

    def mark_created(self, submission_id: str, job_id: str, *, queue: str,
                     destination: str) -> SubmissionRecord:
        """Store the job id of ``submission_id`` in the final record."""
        record = SubmissionRecord(state=CREATED, job_id=job_id, queue=queue,
                                  destination=destination)
        self._connection.set(self.key(submission_id), _encode(record), ex=self._ttl_s)
        return record

    def created_value(self, job_id: str, *, queue: str, destination: str) -> str:
        """Return the stored form of a final record, for a caller that writes it in a script."""
        # The text that _encode returns for the record that mark_created stores.
        return json.dumps({"destination": destination, "job_id": job_id, "queue": queue,
                           "state": CREATED})


#: The record returned for an unreadable one: the first attempt's time is
#: unknown, so it reports the oldest possible time, which makes the caller search.
_UNKNOWN_START = SubmissionRecord(state=PENDING, since=0.0)


def _decode(submission_id: str, raw: bytes | str) -> SubmissionRecord | None:
    try:
        data: dict[str, Any] = json.loads(raw)
        return SubmissionRecord(
            state=str(data["state"]),
            since=data.get("since"),
            job_id=data.get("job_id"),
            queue=data.get("queue"),
            destination=data.get("destination"),
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("Ignoring unreadable record of submission %s: %r", submission_id, raw)
        return None


def _encode(record: SubmissionRecord) -> str:
    data = {name: value for name, value in vars(record).items() if value is not None}
    return json.dumps(data, sort_keys=True)


__all__ = ["CREATED", "PENDING", "SubmissionRecord", "SubmissionStore", "redis_client"]
