"""Events, Redis keys and checks of the chaos run in :mod:`bench.chaos`.

A signal counts as lost when a job has no final signal, an INPUT_INFORMATION
event (always applied, also after the final status) fired nothing, or an event's
marker in the store is not ``done`` at the end (a lease no worker released).
A signal counts as repeated when a job fired more than one final signal or an
event id fired more than once. Right after each SIGKILL the parent lists the
events whose signal the victim fired but whose lease it had not released
(marker not ``done``). A repeat is put down to a kill only when every firing but
the last is on such a list. The drain promises that this happens to at most the
one signal whose receivers were running, so a kill that leaves more than one
fired signal unreleased fails the run.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from mc_tasks.store import JobStore
from tests import event_samples as samples

#: Unique events per job: PROGRESSING, INPUT_INFORMATION, 17 STATUS_UPDATEs, one final status.
EVENTS_PER_JOB = 20
#: Share of the unique events that is sent a second time.
DUPLICATE_FRACTION = 0.2
FINAL_SIGNALS = {"COMPLETE": "completed", "ERROR": "failed", "CANCELED": "canceled"}
PROGRESS_SIGNALS = frozenset({"progress", "progressing"})
#: Text of the drain's log line for an event fired again after an expired lease.
REDISPATCH_LOG_TEXT = "firing the signal again"
#: Job ids start here, shaped like MediaConvert's (epoch ms, dash, six characters).
BASE_JOB_TIMESTAMP_MS = 1_700_000_000_000


@dataclass(frozen=True)
class ChaosKeys:
    """Redis keys of one run besides the store's own, all under the store's prefix."""

    prefix: str

    @property
    def signals(self) -> str:
        """List of fired signals, one JSON object each, in firing order."""
        return f"{self.prefix}:chaos:signals"

    @property
    def stop(self) -> str:
        """Set by the parent to make workers exit after their current drain run."""
        return f"{self.prefix}:chaos:stop"

    @property
    def reports(self) -> str:
        """Hash of the drain report counts summed over every finished drain run."""
        return f"{self.prefix}:chaos:reports"

    def last_fired(self, pid: int) -> str:
        """Wall-clock time (s) of the last signal fired by worker ``pid``."""
        return f"{self.prefix}:chaos:last:{pid}"


def chaos_keys(prefix: str) -> ChaosKeys:
    return ChaosKeys(prefix)


@dataclass(frozen=True)
class EventPlan:
    """The events of one run and what the store should end with."""

    messages: list[str]
    unique_event_ids: list[str]
    info_event_ids: frozenset[str]
    final_status: dict[str, str]


def generate_events(events: int, rng: random.Random) -> EventPlan:
    """Build ``events`` unique events (20 per job), add 20 % duplicates and shuffle them."""
    jobs = max(1, events // EVENTS_PER_JOB)
    bodies: list[str] = []
    unique_ids: list[str] = []
    info_ids: set[str] = set()
    final_status: dict[str, str] = {}
    for index in range(jobs):
        job = f"{BASE_JOB_TIMESTAMP_MS + index}-{rng.getrandbits(24):06x}"
        final = rng.choice(sorted(FINAL_SIGNALS))
        final_status[job] = final
        job_events = _job_events(job, final, f"video-{index}", rng)
        for event in job_events:
            bodies.append(json.dumps(event))
            unique_ids.append(event["id"])
        info_ids.add(job_events[1]["id"])

    messages = bodies + rng.sample(bodies, k=round(len(bodies) * DUPLICATE_FRACTION))
    rng.shuffle(messages)
    return EventPlan(messages=messages, unique_event_ids=unique_ids,
                     info_event_ids=frozenset(info_ids), final_status=final_status)


def _job_events(job: str, final: str, reference: str, rng: random.Random
                ) -> list[dict[str, Any]]:
    def event_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    base_ms = 1_000_000
    updates = EVENTS_PER_JOB - 3
    events = [
        samples.progressing(job, timestamp_ms=base_ms, event_id=event_id(), reference=reference),
        samples.input_information(job, timestamp_ms=base_ms + 1, event_id=event_id(),
                                  reference=reference),
    ]
    events += [samples.status_update(job, (100 * step) // (updates + 1),
                                     timestamp_ms=base_ms + 100 + step, event_id=event_id(),
                                     reference=reference)
               for step in range(1, updates + 1)]
    builders = {"COMPLETE": samples.complete_hls, "ERROR": samples.error,
                "CANCELED": samples.canceled}
    events.append(builders[final](job, timestamp_ms=base_ms + 10_000, event_id=event_id(),
                                  reference=reference))
    return events


@dataclass
class ChaosRun:
    """Record of one run, filled in by :mod:`bench.chaos`."""

    plan: EventPlan
    workers: int
    messages_sent: int = 0
    #: PID of each SIGKILLed worker and the wall-clock time (s) of its kill.
    kills: dict[int, float] = field(default_factory=dict)
    kills_mid_batch: int = 0
    #: Seconds between each victim's last fired signal and its kill (inf: it fired none).
    kill_signal_ages_s: list[float] = field(default_factory=list)
    #: Per killed PID, the events it fired whose lease it had not released when killed.
    unreleased: dict[int, list[str]] = field(default_factory=dict)
    workers_started: int = 0
    timed_out: bool = False
    queue_left: int = 0
    dlq_left: int = 0
    log_text: str = ""
    wall_time_s: float = 0.0


@dataclass
class ChaosResult:
    """Counts of one run. :attr:`passed` is True when the event path held up."""

    run: ChaosRun
    signals_fired: Counter[str]
    final_states_correct: int
    final_states_wrong: int
    wrong_final_signal: int
    lost_final: int
    lost_info: int
    events_not_done: int
    duplicate_final_unexplained: int
    duplicate_final_after_kill: int
    duplicate_other_unexplained: int
    duplicate_other_after_kill: int
    #: Jobs whose final signal fired again with a different event id: a receiver
    #: that ignores event ids it has seen would act twice on them.
    duplicate_final_new_event: int
    progress_after_final: int
    redispatched: int
    worker_tracebacks: int
    drain_totals: dict[str, int]
    #: One line per repeated signal, with the worker and kill of each firing.
    repeats: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Expected signals that never fired, plus events whose lease was never released."""
        return self.lost_final + self.lost_info + self.events_not_done

    @property
    def kills_unreleasing_several(self) -> int:
        """Kills after which more than one signal the victim fired still held its lease."""
        return sum(1 for event_ids in self.run.unreleased.values() if len(event_ids) > 1)

    @property
    def duplicated_final(self) -> int:
        return self.duplicate_final_unexplained + self.duplicate_final_after_kill

    @property
    def failures(self) -> list[str]:
        """Why the run failed; empty when it passed."""
        run = self.run
        checks = {
            "the run timed out": run.timed_out,
            "not every message was sent": run.messages_sent != len(run.plan.messages),
            "signals were lost": self.lost > 0,
            "final states are wrong": self.final_states_wrong + self.wrong_final_signal > 0,
            "signals repeated without a kill inside a receiver":
                self.duplicate_final_unexplained + self.duplicate_other_unexplained > 0,
            "a kill left more than one fired signal unreleased": self.kills_unreleasing_several > 0,
            "a final signal repeated with a new event id": self.duplicate_final_new_event > 0,
            "messages left in the queue or dead-letter queue": run.queue_left + run.dlq_left > 0,
        }
        return [reason for reason, failed in checks.items() if failed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def format(self) -> str:
        """Return the printed report of the run."""
        run = self.run
        plan = run.plan
        fired = self.signals_fired
        totals = ", ".join(f"{name} {count}" for name, count in sorted(self.drain_totals.items()))
        lines = [
            f"events sent:            {len(plan.unique_event_ids)} unique, "
            f"{run.messages_sent} messages with duplicates, {len(plan.final_status)} jobs",
            f"workers:                {run.workers} at a time, {run.workers_started} processes "
            "started",
            f"kills done:             {len(run.kills)} SIGKILLs, {run.kills_mid_batch} of them "
            "mid-batch (victim's last signal "
            + ", ".join(_milliseconds(age_s) for age_s in run.kill_signal_ages_s) + " before)",
            f"final states correct:   {self.final_states_correct} of {len(plan.final_status)} "
            f"(wrong final signal kind: {self.wrong_final_signal})",
            f"signals fired:          {sum(fired.values())} ("
            + ", ".join(f"{name} {count}" for name, count in sorted(fired.items())) + ")",
            f"lost:                   {self.lost} (final {self.lost_final}, input information "
            f"{self.lost_info}, events not marked done {self.events_not_done})",
            f"duplicated final:       {self.duplicated_final} (unexplained "
            f"{self.duplicate_final_unexplained}, after kill-in-receiver "
            f"{self.duplicate_final_after_kill})",
            f"duplicated other:       unexplained {self.duplicate_other_unexplained}, "
            f"after kill-in-receiver {self.duplicate_other_after_kill} (progress and info)",
            f"duplicated effects:     {self.duplicate_final_new_event} for a receiver that "
            "skips an event.event_id it has seen (repeats with a new event id)",
            "unreleased at kills:    "
            + ", ".join(str(len(event_ids)) for event_ids in run.unreleased.values())
            + " fired signals per kill whose lease the victim had not released (at most 1 "
            "each is the documented limit)",
            f"redispatched events:    {self.redispatched} (a killed worker's lease expired and "
            "the signal fired then)",
            f"progress after final:   {self.progress_after_final} (recorded after the job's "
            "final signal; concurrent workers race, so not a failure)",
            f"left in queue / DLQ:    {run.queue_left} / {run.dlq_left}",
            f"drain totals:           {totals} (drain runs cut short by a kill are missing)",
            f"worker tracebacks:      {self.worker_tracebacks}",
            f"wall time:              {run.wall_time_s:.1f} s",
        ]
        lines += [f"  repeat: {line}" for line in self.repeats]
        if self.passed:
            lines.append("result:                 PASS (nothing lost, no repeat without a kill "
                         "inside a receiver, at most one unreleased signal per kill)")
        else:
            lines.append("result:                 FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def _milliseconds(seconds: float) -> str:
    return "none" if seconds == float("inf") else f"{seconds * 1000:.0f} ms"


def check_run(run: ChaosRun, store: JobStore) -> ChaosResult:
    """Compare the fired signals and the store's records with the plan of ``run``."""
    keys = chaos_keys(store.settings.redis_key_prefix)
    raw: list[str] = store.redis.lrange(keys.signals, 0, -1)  # type: ignore[assignment]
    firings = [json.loads(entry) for entry in raw]
    plan = run.plan

    unreleased = {(pid, event_id) for pid, event_ids in run.unreleased.items()
                  for event_id in event_ids}

    def after_kill(index: int) -> bool:
        return (firings[index]["pid"], firings[index]["event"]) in unreleased

    by_event: dict[str, list[int]] = defaultdict(list)
    by_job: dict[str, list[int]] = defaultdict(list)
    finals_by_job: dict[str, list[int]] = defaultdict(list)
    for index, firing in enumerate(firings):
        by_event[firing["event"]].append(index)
        by_job[firing["job"]].append(index)
        if firing["signal"] in FINAL_SIGNALS.values():
            finals_by_job[firing["job"]].append(index)

    counts = Counter[str]()
    repeats: list[str] = []
    for indexes in finals_by_job.values():
        if len(indexes) > 1:
            explained = all(after_kill(index) for index in indexes[:-1])
            counts["final_after_kill" if explained else "final_unexplained"] += len(indexes) - 1
            repeats.append(_describe_repeat(firings, indexes, run.kills, explained))
    for indexes in by_event.values():
        if len(indexes) > 1 and firings[indexes[0]]["signal"] not in FINAL_SIGNALS.values():
            explained = all(after_kill(index) for index in indexes[:-1])
            counts["other_after_kill" if explained else "other_unexplained"] += len(indexes) - 1
            repeats.append(_describe_repeat(firings, indexes, run.kills, explained))

    for job, expected in plan.final_status.items():
        indexes = finals_by_job.get(job, [])
        if not indexes:
            counts["lost_final"] += 1
            continue
        if any(firings[index]["signal"] != FINAL_SIGNALS[expected] for index in indexes):
            counts["wrong_final_signal"] += 1
        first_final = indexes[0]
        counts["progress_after_final"] += sum(
            1 for index in by_job[job]
            if index > first_final and firings[index]["signal"] in PROGRESS_SIGNALS)
    counts["lost_info"] = sum(1 for event_id in plan.info_event_ids if event_id not in by_event)

    statuses = _job_statuses(store, list(plan.final_status))
    correct = sum(1 for job, expected in plan.final_status.items() if statuses[job] == expected)
    markers = _event_markers(store, plan.unique_event_ids)
    totals: dict[str, str] = store.redis.hgetall(keys.reports)  # type: ignore[assignment]

    return ChaosResult(
        run=run,
        signals_fired=Counter(firing["signal"] for firing in firings),
        final_states_correct=correct,
        final_states_wrong=len(plan.final_status) - correct,
        wrong_final_signal=counts["wrong_final_signal"],
        lost_final=counts["lost_final"],
        lost_info=counts["lost_info"],
        events_not_done=sum(1 for marker in markers if marker != "done"),
        duplicate_final_unexplained=counts["final_unexplained"],
        duplicate_final_after_kill=counts["final_after_kill"],
        duplicate_other_unexplained=counts["other_unexplained"],
        duplicate_other_after_kill=counts["other_after_kill"],
        duplicate_final_new_event=sum(
            1 for indexes in finals_by_job.values()
            if len({firings[index]["event"] for index in indexes}) > 1),
        progress_after_final=counts["progress_after_final"],
        redispatched=run.log_text.count(REDISPATCH_LOG_TEXT),
        worker_tracebacks=run.log_text.count("Traceback"),
        drain_totals={name: int(value) for name, value in totals.items()},
        repeats=repeats,
    )


def _describe_repeat(firings: list[dict[str, Any]], indexes: list[int], kills: dict[int, float],
                     explained: bool) -> str:
    """Return one line naming a repeated signal and, for each firing, its worker and kill."""
    first = firings[indexes[0]]
    parts = []
    for index in indexes:
        firing = firings[index]
        killed_at = kills.get(firing["pid"])
        kill_text = (f", worker killed {killed_at - firing['t']:.3f} s later"
                     if killed_at is not None else "")
        parts.append(f"#{index} pid {firing['pid']} event {firing['event']} "
                     f"at {firing['t']:.3f}{kill_text}")
    cause = "after kill-in-receiver" if explained else "UNEXPLAINED"
    return f"{cause}: job {first['job']} {first['signal']}: " + "; ".join(parts)


def _job_statuses(store: JobStore, jobs: list[str]) -> dict[str, str | None]:
    with store.redis.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.hget(store.job_key(job), "status")
        values = pipe.execute()
    return dict(zip(jobs, values, strict=True))


def _event_markers(store: JobStore, event_ids: list[str]) -> list[str | None]:
    markers: list[str | None] = []
    for start in range(0, len(event_ids), 1000):
        with store.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids[start:start + 1000]:
                pipe.get(store.event_key(event_id))
            markers.extend(pipe.execute())
    return markers
