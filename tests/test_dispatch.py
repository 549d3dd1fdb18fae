"""Signal order across drains: a progress signal never fires after the final one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mc_tasks import signals
from mc_tasks.dispatch import Dispatch, fire_applied, handle_batch, handle_event
from mc_tasks.events import parse_event
from mc_tasks.settings import Settings
from mc_tasks.store import STALE, JobStore
from tests import event_samples as samples

SENDER = "test"


@pytest.fixture
def fired() -> Iterator[list[tuple[str, str]]]:
    """Every progress and final signal fired, as (signal name, job id), in firing order."""
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()
    receivers = []
    for name, signal in (("progress", signals.job_progress), ("failed", signals.job_failed)):
        def receive(sender: object, job_id: str, _name: str = name, **kwargs: Any) -> None:
            with lock:
                calls.append((_name, job_id))
        signal.connect(receive, weak=False)
        receivers.append((signal, receive))
    yield calls
    for signal, receive in receivers:
        signal.disconnect(receive)


def test_late_progress_signal_is_skipped(
        settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    progress = parse_event(samples.status_update(job, 40, timestamp_ms=1_000))
    final = parse_event(samples.error(job, timestamp_ms=2_000))

    # Drain A applies the progress event but has not fired its signal yet when
    # drain B applies and fires the final status.
    applied = store.apply(progress)
    handle_event(store, final, sender=SENDER)
    late = fire_applied(store, applied, sender=SENDER)

    assert applied.fires_signal
    assert late.transition.outcome == STALE
    assert not late.fired
    assert fired == [("failed", job)]
    assert store.get_job(job).percent == 40


def test_final_signal_waits_for_progress(
        settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    progress = parse_event(samples.status_update(job, 40, timestamp_ms=1_000))
    final = parse_event(samples.error(job, timestamp_ms=2_000))
    progress_started = threading.Event()

    def slow_receiver(sender: object, **kwargs: Any) -> None:
        progress_started.set()
        time.sleep(0.5)

    signals.job_progress.connect(slow_receiver, weak=False)
    try:
        drain_a = threading.Thread(target=handle_event, args=(store, progress),
                                   kwargs={"sender": SENDER})
        drain_a.start()
        assert progress_started.wait(5)
        handle_event(store, final, sender=SENDER)
        drain_a.join(5)
    finally:
        signals.job_progress.disconnect(slow_receiver)

    assert fired == [("progress", job), ("failed", job)]


def test_batch_fires_in_batch_order(settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings)
    first, second = samples.job_id(), samples.job_id()
    events = [parse_event(samples.status_update(first, 40, timestamp_ms=1_000)),
              parse_event(samples.status_update(second, 10, timestamp_ms=1_000)),
              parse_event(samples.error(first, timestamp_ms=2_000)),
              parse_event(samples.status_update(first, 90, timestamp_ms=1_500))]

    dispatches = handle_batch(store, events, sender=SENDER)

    assert [dispatch.transition.outcome for dispatch in dispatches] == [
        "applied", "applied", "applied", STALE]
    assert fired == [("progress", first), ("progress", second), ("failed", first)]
    for job in (first, second):
        assert store.redis.exists(store.signal_lock_key(job)) == 0
    for event in events[:3]:
        assert store.redis.get(store.event_key(event.event_id)) == "done"


def test_batch_waits_for_busy_lock(settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings)
    locked_job, free_job = samples.job_id(), samples.job_id()
    events = [parse_event(samples.status_update(locked_job, 40, timestamp_ms=1_000)),
              parse_event(samples.status_update(free_job, 40, timestamp_ms=1_000))]
    # Another drain is firing a signal of locked_job.
    token, final = store.begin_signal(locked_job)
    assert token is not None
    assert not final
    result: list[list[Dispatch]] = []
    drain = threading.Thread(
        target=lambda: result.append(handle_batch(store, events, sender=SENDER)))

    drain.start()
    deadline = time.monotonic() + 5
    while not fired and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    fired_while_locked = list(fired)
    store.redis.delete(store.signal_lock_key(locked_job))
    drain.join(5)

    assert fired_while_locked == [("progress", free_job)]
    assert fired == [("progress", free_job), ("progress", locked_job)]
    assert [dispatch.fired for dispatch in result[0]] == [True, True]


def test_batch_skips_redispatched_progress(
        settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings.replace(visibility_timeout_s=1))
    job = samples.job_id()
    progress = parse_event(samples.status_update(job, 40, timestamp_ms=1_000))
    final = parse_event(samples.error(job, timestamp_ms=2_000))
    # A drain applied the progress event and died before firing its signal.
    assert store.apply(progress).fires_signal
    handle_batch(store, [final], sender=SENDER)
    time.sleep(1.1)

    (late,) = handle_batch(store, [progress], sender=SENDER)

    assert late.transition.outcome == STALE
    assert fired == [("failed", job)]
    assert store.redis.get(store.event_key(progress.event_id)) == "done"


def test_batch_duplicate_in_same_batch(settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    progress = parse_event(samples.status_update(job, 40, timestamp_ms=1_000))

    first, second = handle_batch(store, [progress, progress], sender=SENDER)

    assert first.fired
    assert second.transition.outcome == "duplicate"
    assert fired == [("progress", job)]


def test_batch_receiver_interrupt_frees_locks(
        settings: Settings, fired: list[tuple[str, str]]) -> None:
    store = JobStore(settings)
    first, second = samples.job_id(), samples.job_id()
    events = [parse_event(samples.status_update(first, 40, timestamp_ms=1_000)),
              parse_event(samples.status_update(second, 40, timestamp_ms=1_000))]

    def interrupt(sender: object, job_id: str, **kwargs: Any) -> None:
        if job_id == first:
            raise KeyboardInterrupt

    signals.job_progress.connect(interrupt, weak=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            handle_batch(store, events, sender=SENDER)
    finally:
        signals.job_progress.disconnect(interrupt)

    for job in (first, second):
        assert store.redis.exists(store.signal_lock_key(job)) == 0
    # Both leases run on, so both events are dispatched again after they expire.
    for event in events:
        assert store.redis.get(store.event_key(event.event_id)).startswith("pending:")
    assert ("progress", second) not in fired


def test_slow_batch_skips_progress_after_final(settings: Settings) -> None:
    # Drain A's batch takes the job's signal lock, then runs slow receivers of
    # other jobs for longer than the lock lives (1 s here). Drain B waits for the
    # lock until it expires and fires the job's final signal. A must then skip
    # the job's progress signal instead of firing it after the final one.
    store = JobStore(settings.replace(visibility_timeout_s=1))
    job = samples.job_id()
    order: list[str] = []

    def slow(sender: object, job_id: str, **kwargs: Any) -> None:
        time.sleep(0.15)

    def record(sender: object, job_id: str, **kwargs: Any) -> None:
        if job_id == job:
            order.append("failed" if "error_code" in kwargs else "progress")

    receivers = [(signals.job_canceled, slow), (signals.job_progress, record),
                 (signals.job_failed, record)]
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
    try:
        batch_a = [parse_event(samples.canceled(samples.job_id())) for _ in range(9)]
        batch_a.append(parse_event(samples.status_update(job, 50, timestamp_ms=1_000)))
        results: list[list[Dispatch]] = []
        drain_a = threading.Thread(
            target=lambda: results.append(handle_batch(store, batch_a, sender="A")))
        drain_a.start()
        time.sleep(0.05)
        handle_batch(store, [parse_event(samples.error(job, timestamp_ms=2_000))], sender="B")
        drain_a.join(10)
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)

    assert order == ["failed"]
    assert results[0][-1].transition.outcome == STALE
