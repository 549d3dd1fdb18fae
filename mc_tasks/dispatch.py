"""Apply job state changes to the store and fire each signal once.

:func:`handle_batch` serves the drain (the events of one SQS batch);
:func:`handle_event` serves reconciliation and cancel (changes rebuilt from
GetJob). Both apply the store's rules and the job's signal lock, so every path
obeys the same rules.

Receivers are isolated: Celery's ``Signal.send`` calls every receiver, catches
an exception raised by one, logs it with its traceback and goes on with the
others. A receiver error is logged again here with the job and event ids,
counted on the job record (``receiver_errors``, ``last_receiver_error``) and
reported to the caller. The event still counts as handled, so its SQS message is
deleted. Retrying the signal instead would call the receivers that succeeded a
second time, so the signal fires once and a failing receiver is the host's to
repair, for example from :meth:`mc_tasks.store.JobStore.get_job`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from celery.utils.dispatch import Signal

from mc_tasks.events import (
    CANCELED,
    COMPLETE,
    ERROR,
    FINAL_STATUSES,
    INFO_STATUSES,
    PROGRESSING,
    STATUS_UPDATE,
    JobStateChange,
)
from mc_tasks.signals import (
    job_canceled,
    job_completed,
    job_failed,
    job_info,
    job_progress,
    job_progressing,
)
from mc_tasks.store import (
    BUSY,
    HELD,
    REDISPATCH,
    STALE,
    STORE_ERROR,
    JobStore,
    Transition,
)

logger = logging.getLogger(__name__)

#: Statuses whose signals fire in the job's order: progress never after the final signal.
ORDERED_STATUSES = frozenset({PROGRESSING, STATUS_UPDATE, COMPLETE, ERROR, CANCELED})
#: Ordered statuses whose signal is skipped once the job is final.
PROGRESS_STATUSES = ORDERED_STATUSES - FINAL_STATUSES
#: Seconds after a batch's apply past which a progress signal of the batch reads
#: the job's status again before it fires. Slow receivers earlier in the batch
#: may have kept the job's lock until it expired, and another drain may have
#: fired the final signal since.
PROGRESS_RECHECK_AFTER_S = 1.0


@dataclass(frozen=True)
class Dispatch:
    """Outcome of :func:`handle_event`: the store's decision and any receiver errors."""

    transition: Transition
    receiver_errors: tuple[str, ...] = ()

    @property
    def fired(self) -> bool:
        """True when the signal was sent."""
        return self.transition.fires_signal


def handle_event(store: JobStore, event: JobStateChange, *, sender: str,
                 context: str = "") -> Dispatch:
    """Apply ``event`` and, for a real change, fire its signal and end the lease.

    ``sender`` is passed to receivers; ``context`` (for example the SQS message
    id) is added to log lines. Redis errors propagate before any signal fires.
    """
    transition = store.apply(event)
    if not transition.fires_signal:
        _log_not_applied(transition, context)
        return Dispatch(transition)

    _log_redispatch(transition, context)
    if event.status in ORDERED_STATUSES:
        return fire_applied(store, transition, sender=sender, context=context)
    errors = fire_signal(event, sender=sender, context=context)
    store.mark_dispatched(transition, receiver_error="; ".join(errors) if errors else None)
    _log_fired(transition, context)
    return Dispatch(transition, receiver_errors=tuple(errors))


def handle_batch(store: JobStore, events: Sequence[JobStateChange], *, sender: str,
                 contexts: Sequence[str] | None = None,
                 before_signal: Callable[[], None] | None = None) -> list[Dispatch]:
    """Handle the events of one SQS batch like :func:`handle_event` in order, in fewer round trips.

    One script call applies every event and takes the signal lock of each job
    whose progress or final signal fires. Each lease end is written right after
    its signal fired, and the replies are read once at the end, so a process
    killed in a receiver leaves at most that one signal pending, as with
    :func:`handle_event`. An event whose job's lock another drain holds fires
    after the rest of the batch, through :func:`fire_applied`, which waits for
    the lock. ``contexts`` contains a log prefix per event, and ``before_signal``
    is called before each signal fires. Returns one
    :class:`Dispatch` per event, in the order of ``events``.
    """
    contexts = contexts if contexts is not None else [""] * len(events)
    results: dict[int, Dispatch] = {}
    waiting: list[int] = []
    with store.batch() as batch:
        transitions = batch.apply([(event, event.status in ORDERED_STATUSES)
                                   for event in events])
        applied_at = time.monotonic()
        # The batch releases a job's signal lock with the job's last event that holds it.
        last_held = {transition.event.job_id: index
                     for index, transition in enumerate(transitions)
                     if transition.signal_lock == HELD}
        for index, transition in enumerate(transitions):
            context = contexts[index]
            if not transition.fires_signal:
                _log_not_applied(transition, context)
                results[index] = Dispatch(transition)
                continue
            if transition.signal_lock == BUSY:
                waiting.append(index)
                continue
            _log_redispatch(transition, context)
            release = last_held.get(transition.event.job_id) == index
            if (transition.event.status in PROGRESS_STATUSES
                    and _job_final(store, transition, applied_at)):
                batch.end(transition, release_lock=release)
                results[index] = _skipped(transition, context)
                continue
            if before_signal is not None:
                before_signal()
            try:
                errors = fire_signal(transition.event, sender=sender, context=context)
            except BaseException:
                # Free this batch's locks for other drains; the leases run on, so the
                # events whose signals did not fire are dispatched again later.
                for last in last_held.values():
                    if last >= index:
                        batch.end(transitions[last], release_lock=True, done=False)
                raise
            batch.end(transition, release_lock=release,
                      receiver_error="; ".join(errors) if errors else None)
            _log_fired(transition, context)
            results[index] = Dispatch(transition, receiver_errors=tuple(errors))

    for index in waiting:
        _log_redispatch(transitions[index], contexts[index])
        if before_signal is not None:
            before_signal()
        results[index] = fire_applied(store, transitions[index], sender=sender,
                                      context=contexts[index])
    return [results[index] for index in range(len(events))]


def fire_applied(store: JobStore, transition: Transition, *, sender: str,
                 context: str = "") -> Dispatch:
    """Fire a progress or final signal under the job's signal lock; see JobStore.begin_signal.

    A progress signal whose job reached a final status in the meantime is not
    fired: its change stays recorded, and the outcome becomes ``stale``.
    """
    event = transition.event
    token, final = store.begin_signal(event.job_id)
    if token is None:
        logger.warning("%sJob %s event %s: the job's signal lock stayed taken past its "
                       "lifetime of %d s; firing without it", context, event.job_id,
                       event.event_id, store.settings.visibility_timeout_s)
    if final and event.status not in FINAL_STATUSES:
        store.end_signal(transition, token)
        return _skipped(transition, context)

    try:
        errors = fire_signal(event, sender=sender, context=context)
    except BaseException:
        # Free the lock for other drains; the event's lease stays, so it is retried.
        store.end_signal(transition, token, done=False)
        raise
    store.end_signal(transition, token, receiver_error="; ".join(errors) if errors else None)
    _log_fired(transition, context)
    return Dispatch(transition, receiver_errors=tuple(errors))


def fire_signal(event: JobStateChange, *, sender: str, context: str = "") -> list[str]:
    """Send the signal that matches ``event.status``; return the receivers' error texts."""
    signal, arguments = _signal_for(event)
    responses = signal.send(sender=sender, job_id=event.job_id, reference=event.reference,
                            event=event, **arguments)
    errors = []
    for receiver, response in responses:
        if isinstance(response, Exception):
            name = getattr(receiver, "__qualname__", repr(receiver))
            text = f"{name}: {type(response).__name__}: {response}"
            errors.append(text)
            logger.error("%sJob %s event %s: receiver %s of %s raised %r; the signal is not "
                         "retried", context, event.job_id, event.event_id, name,
                         getattr(signal, "name", "signal"), response)
    return errors


def _job_final(store: JobStore, transition: Transition, applied_at: float) -> bool:
    """Return True when the batch's apply found the job final, or it is final after a slow batch."""
    if transition.job_final:
        return True
    if time.monotonic() - applied_at <= PROGRESS_RECHECK_AFTER_S:
        return False
    return store.job_status(transition.event.job_id) in FINAL_STATUSES


def _skipped(transition: Transition, context: str) -> Dispatch:
    event = transition.event
    logger.info("%sJob %s event %s (%s) applied, but its signal is skipped because the job "
                "already reached its final status", context, event.job_id, event.event_id,
                event.status)
    return Dispatch(replace(transition, outcome=STALE,
                            note="the job reached its final status first"))


def _log_not_applied(transition: Transition, context: str) -> None:
    event = transition.event
    if transition.outcome == STORE_ERROR:
        logger.error("%sJob %s event %s (%s): the job state store failed to apply it (%s); "
                     "its message stays in the queue", context, event.job_id, event.event_id,
                     event.status, transition.note)
        return
    logger.info("%sJob %s event %s (%s) not applied: %s, %s", context, event.job_id,
                event.event_id, event.status, transition.outcome, transition.note)


def _log_redispatch(transition: Transition, context: str) -> None:
    if transition.outcome == REDISPATCH:
        event = transition.event
        logger.warning("%sJob %s event %s (%s): firing the signal again because the drain that "
                       "applied it stopped before it finished", context, event.job_id,
                       event.event_id, event.status)


def _log_fired(transition: Transition, context: str) -> None:
    event = transition.event
    logger.info("%sJob %s event %s: %s -> %s, signal fired", context, event.job_id,
                event.event_id, transition.previous_status or "unknown", transition.status)


def _signal_for(event: JobStateChange) -> tuple[Signal, dict[str, Any]]:
    if event.status == PROGRESSING:
        return job_progressing, {}
    if event.status == STATUS_UPDATE:
        return job_progress, {"percent": event.percent, "phase": event.phase}
    if event.status == COMPLETE:
        return job_completed, {"outputs": event.outputs}
    if event.status == ERROR:
        return job_failed, {"error_code": event.error_code,
                                    "error_message": event.error_message,
                                    "permanent": event.permanent}
    if event.status == CANCELED:
        return job_canceled, {}
    if event.status in INFO_STATUSES:
        return job_info, {"status": event.status}
    raise ValueError(f"No signal for job status {event.status!r} of job {event.job_id}.")
