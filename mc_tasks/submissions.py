"""Redis records that tie a submission id to the MediaConvert job it created.

Key ``<prefix>:submission:<submission id>`` contains a JSON object in one of two states:

* ``{"state": "pending", "since": <epoch s>}``: a CreateJob call was about to
  be sent at ``since``, the time of the first attempt, which later attempts keep;
* ``{"state": "created", "job_id": ..., "queue": ..., "destination": ...}``:
  the job exists. This record is final and is never overwritten.

Both expire after ``Settings.state_ttl_s``. :mod:`mc_tasks.submit` reads the
record before calling CreateJob and writes it around that call.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis

from mc_tasks.settings import Settings

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
    """Return a Redis client for ``redis_url``, one per URL and process."""
    return redis.Redis.from_url(redis_url)


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
            # The record is unreadable, so the first attempt's time is unknown:
            # report the oldest possible time, which makes the caller search.
            return SubmissionRecord(state=PENDING, since=0.0)
        return existing

    def mark_created(self, submission_id: str, job_id: str, *, queue: str,
                     destination: str) -> SubmissionRecord:
        """Store the job id of ``submission_id`` in the final record."""
        record = SubmissionRecord(state=CREATED, job_id=job_id, queue=queue,
                                  destination=destination)
        self._connection.set(self.key(submission_id), _encode(record), ex=self._ttl_s)
        return record


def _encode(record: SubmissionRecord) -> str:
    data = {name: value for name, value in vars(record).items() if value is not None}
    return json.dumps(data, sort_keys=True)


__all__ = ["CREATED", "PENDING", "SubmissionRecord", "SubmissionStore", "redis_client"]
