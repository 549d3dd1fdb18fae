"""Job state store in Redis: one record per MediaConvert job, changed atomically.

Contract:

- :meth:`JobStore.apply` decides inside one Redis Lua script whether an event
  changes its job, so concurrent drains never both apply the same change.
  :meth:`JobStore.batch` applies the events of one SQS batch with the same
  rules, in order, in one script call (:class:`StoreBatch`); an event seen
  twice in one batch is a ``duplicate`` the second time.
  A repeated event id, or the same final status of a job seen again, is a
  ``duplicate``. COMPLETE, ERROR and CANCELED are final: a later PROGRESSING,
  STATUS_UPDATE or a different final status is ``stale`` and changes nothing.
  STATUS_UPDATE events are ordered by ``detail.timestamp``: one not newer than
  the last applied update is ``stale``. INPUT_INFORMATION, NEW_WARNING and
  QUEUE_HOP are recorded whenever they arrive, also after the final status.
- An ``applied`` event holds a lease (``Settings.visibility_timeout_s``) while
  its signal fires. :meth:`JobStore.mark_dispatched` ends it. If the process dies
  first, the same event delivered again after the lease expired comes back as
  ``redispatch``, so the signal is fired then. While the lease runs, it is
  ``in_flight``.
- Retention: a job record and its reference index live ``Settings.state_ttl_s``
  seconds (14 days by default) after the job's last change; event markers live as
  long, which covers SQS's maximum message retention of 14 days at the default.
  An event redelivered after its marker and job record expired would be applied
  again.

Keys (all under ``Settings.redis_key_prefix``): ``job:<id>`` (hash),
``event:<id>`` (marker), ``ref:<reference>`` (set of job ids) and ``open``
(sorted set of non-final job ids scored by their last change in ms).
NOTE: the keys of one script call do not share a hash tag, so the store needs a
single Redis server or a primary with replicas, not Redis Cluster.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from mc_tasks.events import FINAL_STATUSES, JobStateChange
from mc_tasks.outputs import JobOutputs
from mc_tasks.resp import evalsha, pack_arguments, run_script
from mc_tasks.settings import Settings, get_settings
from mc_tasks.store_scripts import (
    APPLY_BATCH,
    APPLY_EVENT,
    END_SIGNAL,
    RECORD_SUBMITTED,
)

logger = logging.getLogger(__name__)

APPLIED = "applied"
REDISPATCH = "redispatch"
DUPLICATE = "duplicate"
STALE = "stale"
IN_FLIGHT = "in_flight"
#: From :meth:`StoreBatch.apply` only: the event's script call raised an error.
STORE_ERROR = "error"

#: ``Transition.signal_lock`` values set by :meth:`StoreBatch.apply`.
HELD = "held"
BUSY = "busy"

#: Seconds a drain waits for a job's signal lock beyond the lock's own lifetime
#: (the visibility timeout), after which the lock has expired anyway.
SIGNAL_LOCK_EXTRA_WAIT_S = 1.0
#: Seconds between two attempts to take a job's signal lock held by another drain.
SIGNAL_LOCK_POLL_S = 0.01
#: Maximum jobs returned by one :meth:`JobStore.pending_jobs` call.
DEFAULT_PENDING_LIMIT = 500

_pools: dict[str, redis.ConnectionPool] = {}
_pools_lock = threading.Lock()


def _pool(url: str) -> redis.ConnectionPool:
    # redis-py pools reset themselves in a forked child (they check the PID),
    # so one pool per URL and process is safe under Celery's prefork pool.
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = redis.ConnectionPool.from_url(url, decode_responses=True)
            _pools[url] = pool
        return pool


@dataclass(frozen=True)
class Transition:
    """The store's decision about one event.

    ``outcome`` is ``applied``, ``redispatch``, ``duplicate``, ``stale``,
    ``in_flight`` or (from a batch) ``error``. ``note`` explains why a change
    was not applied.
    """

    outcome: str
    event: JobStateChange
    previous_status: str | None
    status: str | None
    note: str = ""
    #: Lease token of an applied or redispatched event, passed to mark_dispatched.
    token: str = ""
    #: From :meth:`StoreBatch.apply`: ``held`` when the batch's token holds the
    #: job's signal lock, ``busy`` when another drain holds it, else empty.
    signal_lock: str = ""
    #: From :meth:`StoreBatch.apply`: True when the job's status was final right
    #: after this event was applied.
    job_final: bool = False

    @property
    def fires_signal(self) -> bool:
        """True when the caller must fire the event's signal now."""
        return self.outcome in (APPLIED, REDISPATCH)


@dataclass(frozen=True)
class JobRecord:
    """Stored state of one job. Times are in seconds since the epoch."""

    job_id: str
    status: str
    reference: str | None
    queue: str | None
    user_metadata: dict[str, str]
    submission_id: str | None
    percent: int | None
    phase: str | None
    outputs: JobOutputs | None
    error_code: int | None
    error_message: str | None
    warnings: list[dict[str, Any]]
    warning_counts: list[dict[str, Any]]
    input_information: list[Any] | None
    created_at: float | None
    updated_at: float | None
    final_at: float | None
    #: ``detail.timestamp`` (ms) of the newest event applied to this job.
    last_event_timestamp_ms: int | None
    receiver_errors: int
    last_receiver_error: str | None

    @property
    def is_final(self) -> bool:
        """True when the job is COMPLETE, ERROR or CANCELED."""
        return self.status in FINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this record."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["outputs"] = self.outputs.to_dict() if self.outputs is not None else None
        return data

    @classmethod
    def from_hash(cls, values: dict[str, str]) -> JobRecord:
        """Build a record from the job hash's fields."""
        outputs = values.get("outputs")
        return cls(
            job_id=values["job_id"],
            status=values.get("status", "SUBMITTED"),
            reference=values.get("reference"),
            queue=values.get("queue"),
            user_metadata=json.loads(values.get("user_metadata", "{}")),
            submission_id=values.get("submission_id"),
            percent=_int(values.get("percent")),
            phase=values.get("phase"),
            outputs=JobOutputs.from_dict(json.loads(outputs)) if outputs else None,
            error_code=_int(values.get("error_code")),
            error_message=values.get("error_message"),
            warnings=json.loads(values.get("warnings", "[]")),
            warning_counts=json.loads(values.get("warning_counts", "[]")),
            input_information=json.loads(values["input_information"])
            if "input_information" in values else None,
            created_at=_seconds(values.get("created_at_ms")),
            updated_at=_seconds(values.get("updated_at_ms")),
            final_at=_seconds(values.get("final_at_ms")),
            last_event_timestamp_ms=_int(values.get("last_event_ts")),
            receiver_errors=_int(values.get("receiver_errors")) or 0,
            last_receiver_error=values.get("last_receiver_error"),
        )


class JobStore:
    """Job state store on a real Redis server; see the module docstring for the contract."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.redis: redis.Redis = redis.Redis(connection_pool=_pool(self.settings.redis_url))
        self._prefix = self.settings.redis_key_prefix
        self._apply_script = self.redis.register_script(APPLY_EVENT)
        self._submitted_script = self.redis.register_script(RECORD_SUBMITTED)
        self._end_signal_script = self.redis.register_script(END_SIGNAL)
        self.apply_batch_sha = self.redis.register_script(APPLY_BATCH).sha

    def job_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def event_key(self, event_id: str) -> str:
        return f"{self._prefix}:event:{event_id}"

    def reference_key(self, reference: str) -> str:
        return f"{self._prefix}:ref:{reference}"

    @property
    def open_key(self) -> str:
        return f"{self._prefix}:open"

    def apply(self, event: JobStateChange) -> Transition:
        """Apply ``event`` to its job atomically and return the decision."""
        now_ms = _now_ms()
        token = uuid.uuid4().hex
        lease_expiry_ms = now_ms + self.settings.visibility_timeout_s * 1000
        keys = [
            self.job_key(event.job_id),
            self.event_key(event.event_id),
            self.open_key,
            self.reference_key(event.reference or ""),
        ]
        args = [
            event.event_id, event.status, str(event.timestamp_ms), str(now_ms),
            str(lease_expiry_ms), str(self.settings.state_ttl_s), token, event.job_id,
            event.reference or "", event.queue or "", json.dumps(_payload(event)),
        ]
        outcome, previous, status, note = self._apply_script(keys=keys, args=args)
        transition = Transition(
            outcome=outcome, event=event, previous_status=previous or None,
            status=status or None, note=note,
            token=token if outcome in (APPLIED, REDISPATCH) else "",
        )
        logger.debug("Event %s of job %s (%s): %s %s", event.event_id, event.job_id,
                     event.status, outcome, note)
        return transition

    def mark_dispatched(self, transition: Transition, *, receiver_error: str | None = None
                        ) -> None:
        """End the lease of an applied event after its signal fired.

        ``receiver_error`` (a receiver's exception text) is counted on the job record.
        """
        event = transition.event
        event_key = self.event_key(event.event_id)
        if receiver_error is None:
            # One SET is atomic by itself, so MULTI/EXEC would only add two commands per event.
            self.redis.set(event_key, "done", ex=self.settings.state_ttl_s)
            return
        job_key = self.job_key(event.job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(event_key, "done", ex=self.settings.state_ttl_s)
            pipe.hincrby(job_key, "receiver_errors", 1)
            pipe.hset(job_key, "last_receiver_error", receiver_error[:1000])
            pipe.execute()

    def begin_signal(self, job_id: str) -> tuple[str | None, bool]:
        """Take the job's signal lock; return its token and whether the job is final.

        Two drains may apply a STATUS_UPDATE and then the final status of the
        same job at nearly the same moment. Firing both signals under this lock,
        and skipping a progress signal once the job is final, keeps a progress
        signal from firing after the final one. Taking the lock and reading the
        status share one round trip. The lock expires after the visibility
        timeout, so a killed drain cannot hold it for ever, and this call waits
        as long as the lock can live: until its holder releases it or it
        expires. If it is still taken :data:`SIGNAL_LOCK_EXTRA_WAIT_S` after
        that, the token is ``None`` and the caller goes on without it.
        """
        token = uuid.uuid4().hex
        lock_key = self.signal_lock_key(job_id)
        deadline = (time.monotonic() + self.settings.visibility_timeout_s
                    + SIGNAL_LOCK_EXTRA_WAIT_S)
        while True:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(lock_key, token, nx=True, px=self.settings.visibility_timeout_s * 1000)
                pipe.hget(self.job_key(job_id), "status")
                acquired, status = pipe.execute()
            final = status in FINAL_STATUSES
            if acquired:
                return token, final
            if time.monotonic() >= deadline:
                return None, final
            time.sleep(SIGNAL_LOCK_POLL_S)

    def end_signal(self, transition: Transition, token: str | None, *,
                   receiver_error: str | None = None, done: bool = True) -> None:
        """Release the job's signal lock (if ``token`` holds it) and end the event's lease.

        One script call: the lock is deleted only while it still holds ``token``,
        and ``receiver_error`` is counted on the job record. With ``done`` false
        only the lock is released, and the event's lease runs on, so the event is
        dispatched again once the lease expires.
        """
        event = transition.event
        self._end_signal_script(
            keys=[self.signal_lock_key(event.job_id), self.event_key(event.event_id),
                  self.job_key(event.job_id)],
            args=[token or "", str(self.settings.state_ttl_s),
                  (receiver_error or "")[:1000], "1" if done else "0"])

    @contextmanager
    def batch(self) -> Iterator[StoreBatch]:
        """Yield a :class:`StoreBatch` on one Redis connection of the pool.

        On exit the replies of the lease ends it sent are read. A Redis error
        drops the connection and propagates.
        """
        pool = self.redis.connection_pool
        connection: Any = pool.get_connection()
        batch = StoreBatch(self, connection)
        try:
            yield batch
            batch.read_end_replies()
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def job_status(self, job_id: str) -> str | None:
        """Return the job's stored status, or None for a job without a record."""
        status: str | None = self.redis.hget(self.job_key(job_id), "status")  # type: ignore[assignment]
        return status

    def signal_lock_key(self, job_id: str) -> str:
        """Return the key of the lock that orders the signals of ``job_id``."""
        return f"{self.settings.redis_key_prefix}:signal_lock:{job_id}"

    def record_submitted(self, job_id: str, reference: str | None = None, *,
                         queue: str | None = None, user_metadata: dict[str, str] | None = None,
                         submission_id: str | None = None, read_back: bool = True,
                         also_set: tuple[str, str] | None = None,
                         client: redis.Redis | None = None) -> JobRecord | None:
        """Record a job created by CreateJob, so reconciliation can find it if events are lost.

        Fields that events already set are kept, and a job whose final event
        arrived first stays final. Returns the stored record, read in the same
        script call, or None with ``read_back`` false. ``also_set`` is a key and
        a value that the same call stores with the job's TTL, so a submission's
        final record and its job record are written in one round trip.
        ``client`` runs the script on another client of the same server
        instead of the store's own.
        """
        keys = [self.job_key(job_id), self.open_key, self.reference_key(reference or "")]
        args = [
            job_id, str(_now_ms()), str(self.settings.state_ttl_s), reference or "",
            queue or "", json.dumps(user_metadata) if user_metadata else "", submission_id or "",
            "1" if read_back else "0",
        ]
        if also_set is not None:
            keys.append(also_set[0])
            args.append(also_set[1])
        reply = run_script(client or self.redis, self._submitted_script, keys, args)
        if not read_back:
            logger.debug("Recorded job %s as submitted (status %s)", job_id,
                         reply.decode() if isinstance(reply, bytes) else reply)
            return None
        fields = [item.decode() if isinstance(item, bytes) else str(item) for item in reply]
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        logger.debug("Recorded job %s as submitted (status %s)", job_id, values.get("status"))
        return JobRecord.from_hash(values)

    def get_job(self, job_id: str) -> JobRecord | None:
        """Return the job's record, or None when the store has none (or it expired)."""
        values: dict[str, str] = self.redis.hgetall(self.job_key(job_id))  # type: ignore[assignment]
        if not values or "job_id" not in values:
            return None
        return JobRecord.from_hash(values)

    def find_jobs(self, reference: str) -> list[JobRecord]:
        """Return the records of every job with this host reference, oldest first."""
        members: set[str] = self.redis.smembers(self.reference_key(reference))  # type: ignore[assignment]
        job_ids = sorted(members)
        records = [record for record in map(self.get_job, job_ids) if record is not None]
        return sorted(records, key=lambda record: record.created_at or 0.0)

    def pending_jobs(self, older_than_s: float, *, limit: int = DEFAULT_PENDING_LIMIT
                     ) -> list[JobRecord]:
        """Return non-final jobs whose last change is more than ``older_than_s`` seconds old."""
        cutoff_ms = _now_ms() - int(older_than_s * 1000)
        job_ids: list[str] = self.redis.zrangebyscore(  # type: ignore[assignment]
            self.open_key, "-inf", cutoff_ms, start=0, num=limit)
        records = []
        for job_id in job_ids:
            record = self.get_job(job_id)
            if record is None or record.is_final:
                self.redis.zrem(self.open_key, job_id)
                continue
            records.append(record)
        return records

    def touch(self, job_id: str) -> None:
        """Mark a non-final job as checked now, so reconciliation waits before checking again."""
        now_ms = _now_ms()
        self.redis.zadd(self.open_key, {job_id: now_ms}, xx=True)
        self.redis.hset(self.job_key(job_id), "checked_at_ms", str(now_ms))


class StoreBatch:
    """The events of one SQS batch: applied in one script call, leases ended one by one.

    :meth:`apply` takes each job's signal lock in the same call, so the ordered
    signals of the batch fire without one more round trip per event. :meth:`end`
    writes each lease end to the connection as soon as its signal has fired and
    reads the reply later, so a process killed after a signal leaves at most that
    signal's lease pending, as with :meth:`JobStore.end_signal`. Use it through
    :meth:`JobStore.batch`.

    A connection that drops (a server ``timeout`` shorter than a receiver, a
    restart, a proxy) is opened again once per failure, and the lease ends whose
    replies were not read yet are sent again. That is safe because ending a lease
    twice changes nothing, except that a receiver error is counted twice. An
    apply whose reply was lost is sent again with a new token, so its events
    come back as ``in_flight`` until the first attempt's leases expire.
    """

    def __init__(self, store: JobStore, connection: Any) -> None:
        self._store = store
        self._connection = connection
        self._token = uuid.uuid4().hex
        self._unread_ends: deque[bytes] = deque()

    def apply(self, events: Sequence[tuple[JobStateChange, bool]]) -> list[Transition]:
        """Apply ``(event, ordered)`` pairs in order; return one transition per event.

        ``ordered`` is True for events whose signal fires under the job's signal
        lock (progress and final signals, see :meth:`JobStore.begin_signal`). For
        those that fire, the transition's ``signal_lock`` is ``held`` when this
        batch took the lock (then :meth:`end` releases it) or ``busy`` when another
        drain has it (then the caller waits for it with
        :meth:`JobStore.begin_signal`).
        """
        if not events:
            return []
        try:
            replies = self._apply_script(events)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self._reconnect(exc)
            self._token = uuid.uuid4().hex
            replies = self._apply_script(events)
        transitions = []
        for (event, _), line in zip(events, replies.split("\n"), strict=True):
            outcome, previous, status, lock, final, note = line.split("\t")
            fires = outcome in (APPLIED, REDISPATCH)
            transitions.append(Transition(
                outcome=outcome, event=event, previous_status=previous or None,
                status=status or None, note=note, token=self._token if fires else "",
                signal_lock=lock, job_final=final == "1"))
        return transitions

    def end(self, transition: Transition, *, release_lock: bool,
            receiver_error: str | None = None, done: bool = True) -> None:
        """Send the end of the event's lease (and the lock release) without waiting.

        ``release_lock`` is True for the job's last event of the batch that holds
        the lock. The arguments are those of :meth:`JobStore.end_signal`.
        """
        store = self._store
        event = transition.event
        command = _END_SIGNAL_HEAD + pack_arguments(
            store.signal_lock_key(event.job_id), store.event_key(event.event_id),
            store.job_key(event.job_id), self._token if release_lock else "",
            str(store.settings.state_ttl_s), (receiver_error or "")[:1000],
            "1" if done else "0")
        self._unread_ends.append(command)
        try:
            self._connection.send_packed_command([command])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self._reconnect(exc)

    def read_end_replies(self) -> None:
        """Read the replies of every lease end sent; raise the first error."""
        try:
            self._read_end_replies()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self._reconnect(exc)
            self._read_end_replies()

    def _read_end_replies(self) -> None:
        while self._unread_ends:
            self._connection.read_response()
            self._unread_ends.popleft()

    def _reconnect(self, error: Exception) -> None:
        """Open the connection again and send the lease ends whose replies are unread."""
        logger.warning("The job state store's connection failed in a batch (%s); connecting "
                       "again and sending %d lease ends again", error, len(self._unread_ends))
        self._connection.disconnect()
        self._connection.connect()
        for command in self._unread_ends:
            self._connection.send_packed_command([command])

    def _apply_script(self, events: Sequence[tuple[JobStateChange, bool]]) -> str:
        store = self._store
        settings = store.settings
        now_ms = _now_ms()
        keys: list[str] = [store.open_key]
        args: list[str] = [
            str(now_ms), str(now_ms + settings.visibility_timeout_s * 1000),
            str(settings.state_ttl_s), self._token, str(settings.visibility_timeout_s * 1000),
        ]
        for event, ordered in events:
            keys += [store.job_key(event.job_id), store.event_key(event.event_id),
                     store.reference_key(event.reference or ""),
                     store.signal_lock_key(event.job_id)]
            args += [event.event_id, event.status, str(event.timestamp_ms), event.job_id,
                     event.reference or "", event.queue or "", json.dumps(_payload(event)),
                     "1" if ordered else "0"]
        replies: str = evalsha(self._connection, store.apply_batch_sha, APPLY_BATCH, keys, args)
        return replies


#: EVAL of END_SIGNAL with its 3 keys: the array header (10 parts) and the first three.
#: EVAL rather than EVALSHA, so a lease end never meets a flushed script cache.
_END_SIGNAL_HEAD = b"*10\r\n" + pack_arguments("EVAL", END_SIGNAL, "3")


def _payload(event: JobStateChange) -> dict[str, str]:
    payload: dict[str, str] = {}
    if event.percent is not None:
        payload["percent"] = str(event.percent)
    if event.phase:
        payload["phase"] = event.phase
    if event.user_metadata:
        payload["user_metadata"] = json.dumps(dict(event.user_metadata))
    if event.status == "COMPLETE":
        payload["outputs"] = json.dumps(event.outputs.to_dict())
    if event.error_code is not None:
        payload["error_code"] = str(event.error_code)
    if event.error_message is not None:
        payload["error_message"] = event.error_message
    if event.is_final and event.warnings:
        payload["warning_counts"] = json.dumps([dict(item) for item in event.warnings])
    if event.status == "NEW_WARNING":
        warning = dict(event.warnings[0]) if event.warnings else {}
        warning["timestamp_ms"] = event.timestamp_ms
        payload["warning"] = json.dumps(warning)
    if event.status == "INPUT_INFORMATION":
        payload["input_information"] = json.dumps(event.input_details or [])
    return payload


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _seconds(value: str | None) -> float | None:
    return int(value) / 1000 if value not in (None, "") else None
