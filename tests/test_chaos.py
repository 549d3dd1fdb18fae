"""Chaos check, small: 1,000 events, 2 drain worker processes, 2 SIGKILLs mid-batch.

One run (15 to 30 s) is shared by the tests of this module. The full-size run is
``python -m bench.chaos``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

import pytest

from bench.chaos import ChaosConfig, run_chaos
from bench.chaos_check import (
    FINAL_SIGNALS,
    ChaosResult,
    ChaosRun,
    chaos_keys,
    check_run,
    generate_events,
)
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore
from tests.conftest import TEST_REDIS_URL

EVENTS = 1000
KILLS = 2


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosResult]:
    config = ChaosConfig(events=EVENTS, workers=2, kills=KILLS, visibility_timeout_s=3,
                         redis_url=TEST_REDIS_URL, timeout_s=120, seed=7)
    yield run_chaos(config, prefix=f"mc_tasks_test:{uuid.uuid4().hex[:12]}")


def test_chaos_run_finishes(chaos: ChaosResult) -> None:
    assert not chaos.run.timed_out
    assert chaos.run.messages_sent == EVENTS * 6 // 5
    assert len(chaos.run.kills) == KILLS
    assert chaos.run.workers_started == 2 + KILLS


def test_chaos_loses_no_final_signal(chaos: ChaosResult) -> None:
    assert chaos.lost_final == 0


def test_chaos_loses_no_info_signal(chaos: ChaosResult) -> None:
    assert chaos.lost_info == 0


def test_chaos_leaves_no_lease_unfinished(chaos: ChaosResult) -> None:
    assert chaos.events_not_done == 0


def test_chaos_repeats_no_final_signal_without_kill(chaos: ChaosResult) -> None:
    assert chaos.duplicate_final_unexplained == 0


def test_chaos_repeats_no_other_signal_without_kill(chaos: ChaosResult) -> None:
    assert chaos.duplicate_other_unexplained == 0


def test_chaos_repeats_no_final_with_new_event_id(chaos: ChaosResult) -> None:
    assert chaos.duplicate_final_new_event == 0


def test_chaos_kill_leaves_at_most_one_signal_unreleased(chaos: ChaosResult) -> None:
    assert chaos.kills_unreleasing_several == 0


def test_chaos_final_states_correct(chaos: ChaosResult) -> None:
    assert chaos.final_states_correct == EVENTS // 20
    assert chaos.wrong_final_signal == 0


def test_chaos_empties_queue_and_dlq(chaos: ChaosResult) -> None:
    assert chaos.run.queue_left == 0
    assert chaos.run.dlq_left == 0


def test_chaos_workers_raise_nothing(chaos: ChaosResult) -> None:
    assert chaos.worker_tracebacks == 0


def _recorded_run(settings: Settings, pids: list[int], unreleased: dict[int, list[str]],
                  *, new_event_ids: bool = False) -> ChaosResult:
    """Record one job's final signal fired once per PID in ``pids``, then check the run.

    ``unreleased`` maps a killed PID to the events it left unreleased; the final
    event's id is written as ``"final"``. With ``new_event_ids`` each firing after
    the first carries a different event id.
    """
    plan = generate_events(20, random.Random(1))
    job, final = next(iter(plan.final_status.items()))
    final_event = next(json.loads(body) for body in plan.messages
                       if json.loads(body)["detail"]["status"] == final)
    store = JobStore(settings)
    keys = chaos_keys(settings.redis_key_prefix)
    for index, pid in enumerate(pids):
        event_id = f"{final_event['id']}-{index}" if new_event_ids and index else final_event["id"]
        entry = {"job": job, "signal": FINAL_SIGNALS[final], "event": event_id,
                 "status": final, "pid": pid, "t": 0.0}
        store.redis.rpush(keys.signals, json.dumps(entry))
    unreleased = {pid: [final_event["id"] if event_id == "final" else event_id
                        for event_id in event_ids]
                  for pid, event_ids in unreleased.items()}
    run = ChaosRun(plan=plan, workers=2, kills=dict.fromkeys(unreleased, 0.0),
                   unreleased=unreleased)
    return check_run(run, store)


def test_check_flags_repeat_without_kill(settings: Settings) -> None:
    result = _recorded_run(settings, [101, 102], unreleased={})

    assert result.duplicate_final_unexplained == 1
    assert not result.passed


def test_check_explains_repeat_after_kill(settings: Settings) -> None:
    result = _recorded_run(settings, [101, 102], unreleased={101: ["final"]})

    assert result.duplicate_final_after_kill == 1
    assert result.duplicate_final_unexplained == 0


def test_check_flags_missing_final_signal(settings: Settings) -> None:
    result = _recorded_run(settings, [], unreleased={})

    assert result.lost_final == 1
    assert result.events_not_done == 20
    assert not result.passed


def test_check_flags_kill_unreleasing_two_signals(settings: Settings) -> None:
    result = _recorded_run(settings, [101], unreleased={101: ["final", "other-event"]})

    assert result.kills_unreleasing_several == 1
    assert not result.passed


def test_check_flags_new_event_id(settings: Settings) -> None:
    result = _recorded_run(settings, [101, 102], unreleased={101: ["final"]},
                           new_event_ids=True)

    assert result.duplicate_final_new_event == 1
    assert not result.passed


def test_check_same_event_id_not_new(settings: Settings) -> None:
    result = _recorded_run(settings, [101, 102], unreleased={101: ["final"]})

    assert result.duplicate_final_new_event == 0
    assert result.duplicate_final_after_kill == 1
