"""Signal order across drains: a progress signal never fires after the final one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mc_tasks import signals
from mc_tasks.dispatch import fire_applied, handle_event
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
