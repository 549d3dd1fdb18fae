"""Drain worker processes of the chaos check, and the parent's side that starts and kills them.

A worker is ``python -m bench.chaos --worker``. It reads its settings from the
environment that :mod:`bench.chaos` builds (fake credentials,
``AWS_ENDPOINT_URL`` of moto's server, ``MC_TASKS_*``), plus
``CHAOS_WORKER_TIMEOUT_S`` (seconds it may run) and ``CHAOS_RECEIVER_DELAY_MS``
(milliseconds each receiver sleeps after recording). It may be SIGKILLed at any
moment; that is the point of the check.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.chaos_check import ChaosKeys, ChaosRun, chaos_keys
from mc_tasks import signals
from mc_tasks.drain import drain_status_queue
from mc_tasks.local.stack import ManagedProcess
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore

logger = logging.getLogger(__name__)

#: Signal name recorded for each signal of the event path.
SIGNALS = {
    "progressing": signals.job_progressing,
    "progress": signals.job_progress,
    "completed": signals.job_completed,
    "failed": signals.job_failed,
    "canceled": signals.job_canceled,
    "info": signals.job_info,
}
#: Drain report counts summed into the run's report hash after each drain run.
REPORT_COUNTS = ("received", "applied", "duplicates", "stale", "in_flight", "deleted",
                 "delete_failed", "visibility_extended", "receiver_errors")
#: A kill counts as mid-batch when the victim fired a signal at most this many seconds before.
MID_BATCH_WINDOW_S = 0.02
#: Maximum seconds to wait for a victim to fire a signal before killing it anyway.
KILL_AIM_TIMEOUT_S = 2.0
#: Seconds a stopping worker gets to finish its drain run before it is terminated.
WORKER_STOP_GRACE_S = 10.0
#: Seconds to wait after a kill before reading the markers its worker left.
REDIS_SETTLE_S = 0.1
#: Seconds the per-worker "last fired" key lives.
LAST_FIRED_TTL_S = 3600
ROOT_DIR = Path(__file__).resolve().parents[1]


def run_worker(drain_duration_s: float) -> int:
    """Drain the queue in runs of ``drain_duration_s`` until stopped, timed out or orphaned.

    The loop ends when the run's stop key is set, ``CHAOS_WORKER_TIMEOUT_S`` has
    passed or the parent process has exited. Each fired signal is appended to the
    run's signal list in Redis with this process's PID.
    """
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s pid={os.getpid()} %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    store = JobStore(settings)
    keys = chaos_keys(settings.redis_key_prefix)
    deadline = time.monotonic() + float(os.environ["CHAOS_WORKER_TIMEOUT_S"])
    delay_s = float(os.environ.get("CHAOS_RECEIVER_DELAY_MS", "0")) / 1000
    parent = os.getppid()
    for name, signal_object in SIGNALS.items():
        signal_object.connect(_recorder(store.redis, keys, name, delay_s), weak=False)

    while (time.monotonic() < deadline and os.getppid() == parent
           and not store.redis.exists(keys.stop)):
        report = drain_status_queue(settings, max_duration_s=drain_duration_s, store=store)
        counts = report.to_dict()
        with store.redis.pipeline(transaction=False) as pipe:
            for name in REPORT_COUNTS:
                pipe.hincrby(keys.reports, name, counts[name])
            pipe.hincrby(keys.reports, "failed", sum(report.failed.values()))
            pipe.hincrby(keys.reports, "discarded", sum(report.discarded.values()))
            pipe.execute()
    return 0


def _recorder(connection: redis.Redis, keys: ChaosKeys, name: str, delay_s: float
              ) -> Callable[..., None]:
    pid = os.getpid()

    def record(sender: str, job_id: str, event: Any, **kwargs: Any) -> None:
        now = time.time()
        entry = json.dumps({"job": job_id, "signal": name, "event": event.event_id,
                            "status": event.status, "pid": pid, "t": now})
        # One transaction, so the list and the "last fired" time never disagree.
        with connection.pipeline(transaction=True) as pipe:
            pipe.rpush(keys.signals, entry)
            pipe.set(keys.last_fired(pid), str(now), ex=LAST_FIRED_TTL_S)
            pipe.execute()
        if delay_s:
            time.sleep(delay_s)

    return record


@dataclass
class WorkerPool:
    """The drain worker processes of one run, one slot per worker."""

    env: Mapping[str, str]
    log_dir: Path
    slots: list[ManagedProcess] = field(default_factory=list)
    started: int = 0

    def start(self, slot: int) -> ManagedProcess:
        self.started += 1
        process = ManagedProcess(
            f"chaos drain worker {slot}", [sys.executable, "-m", "bench.chaos", "--worker"],
            env=self.env, cwd=ROOT_DIR, log_path=self.log_dir / f"worker-{self.started}.log")
        if slot < len(self.slots):
            self.slots[slot] = process
        else:
            self.slots.append(process)
        return process

    def stop_all(self, connection: redis.Redis, stop_key: str) -> None:
        """Ask every worker to stop after its drain run, then terminate the ones left."""
        connection.set(stop_key, "1")
        deadline = time.monotonic() + WORKER_STOP_GRACE_S
        for process in self.slots:
            while process.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            process.stop()


class Killer:
    """A thread that SIGKILLs one worker each time sending passes a kill point.

    It runs beside the producer, so the queue keeps filling while it waits for a
    victim to be busy.
    """

    def __init__(self, workers: WorkerPool, store: JobStore, keys: ChaosKeys,
                 rng: random.Random, run: ChaosRun, deadline: float) -> None:
        self.workers = workers
        self.store = store
        self.connection = store.redis
        self.keys = keys
        self.rng = rng
        self.run = run
        self.deadline = deadline
        self.sending_done = threading.Event()
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None

    def start(self, kill_points: list[int]) -> None:
        self.thread = threading.Thread(target=self._loop, args=(kill_points,),
                                       name="chaos-killer", daemon=True)
        self.thread.start()

    def finish(self) -> None:
        """Let the remaining kills happen now, wait for them and raise the thread's error."""
        self.sending_done.set()
        if self.thread is not None:
            self.thread.join()
        if self.errors:
            raise self.errors[0]

    def _loop(self, kill_points: list[int]) -> None:
        try:
            for point in kill_points:
                while (self.run.messages_sent < point and not self.sending_done.is_set()
                       and time.monotonic() < self.deadline):
                    time.sleep(0.01)
                if time.monotonic() >= self.deadline:
                    return
                self._kill_one()
        except BaseException as exc:  # re-raised in the main thread by finish()
            self.errors.append(exc)

    def _kill_one(self) -> None:
        """SIGKILL one worker by its PID right after it fired a signal, then replace it."""
        slot = self.rng.randrange(len(self.workers.slots))
        victim = self.workers.slots[slot]
        aim_until = time.monotonic() + KILL_AIM_TIMEOUT_S
        age_s = float("inf")
        while time.monotonic() < aim_until:
            last = self.connection.get(self.keys.last_fired(victim.pid))
            age_s = time.time() - float(last) if last is not None else float("inf")
            if age_s <= MID_BATCH_WINDOW_S:
                break
            time.sleep(0.002)

        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        victim.popen.wait(timeout=WORKER_STOP_GRACE_S)
        logger.info("Killed chaos drain worker %d (PID %d) %.3f s after its last signal", slot,
                    victim.pid, age_s)
        self.run.kill_signal_ages_s.append(age_s)
        self.run.kills[victim.pid] = killed_at
        self.run.kills_mid_batch += int(age_s <= MID_BATCH_WINDOW_S)
        self.workers.start(slot)
        time.sleep(REDIS_SETTLE_S)
        self.run.unreleased[victim.pid] = self._unreleased_events(victim.pid)

    def _unreleased_events(self, pid: int) -> list[str]:
        """Return the events whose signal ``pid`` fired but whose lease it never released.

        Those are the signals the drain may fire again after the kill. Commands the
        worker sent before it died are handled by Redis before it sees the closed
        connection, so after the kill the markers no longer change on its behalf.
        """
        entries: list[str] = self.connection.lrange(self.keys.signals, 0, -1)  # type: ignore[assignment]
        fired = [firing["event"] for firing in map(json.loads, entries) if firing["pid"] == pid]
        with self.connection.pipeline(transaction=False) as pipe:
            for event_id in fired:
                pipe.get(self.store.event_key(event_id))
            markers = pipe.execute()
        return [event_id for event_id, marker in zip(fired, markers, strict=True)
                if marker != "done"]
