"""The Redis job state store: atomic, final, ordered, deduplicated."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from mc_tasks.events import JobStateChange, parse_message
from mc_tasks.local.stack import start_redis_server
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore
from tests import event_samples as samples


def change(event: dict[str, Any]) -> JobStateChange:
    return parse_message(json.dumps(event))


def test_first_event_applied(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()

    transition = store.apply(change(samples.progressing(job)))
    record = store.get_job(job)

    assert transition.outcome == "applied"
    assert transition.fires_signal
    assert transition.previous_status is None
    assert transition.status == "PROGRESSING"
    assert record is not None
    assert record.status == "PROGRESSING"
    assert record.reference == "video-42"


def test_same_event_id_is_duplicate(settings: Settings) -> None:
    store = JobStore(settings)
    event = change(samples.progressing(samples.job_id()))
    first = store.apply(event)
    store.mark_dispatched(first)

    again = store.apply(event)

    assert again.outcome == "duplicate"
    assert not again.fires_signal


def test_same_final_status_with_new_id_is_duplicate(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.complete_hls(job)))

    again = store.apply(change(samples.complete_hls(job)))

    assert again.outcome == "duplicate"


def test_final_status_never_left(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.complete_hls(job, timestamp_ms=5_000)))

    late_progress = store.apply(change(samples.status_update(job, 50, timestamp_ms=9_000)))
    late_progressing = store.apply(change(samples.progressing(job, timestamp_ms=9_000)))
    late_error = store.apply(change(samples.error(job, timestamp_ms=9_000)))
    record = store.get_job(job)

    assert late_progress.outcome == "stale"
    assert late_progressing.outcome == "stale"
    assert late_error.outcome == "stale"
    assert record is not None
    assert record.status == "COMPLETE"
    assert record.error_code is None
    assert record.outputs is not None
    assert record.outputs.hls_master_playlist == "s3://media-bucket/hls/main.m3u8"
    assert record.final_at is not None


def test_older_status_update_dropped(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.status_update(job, 60, timestamp_ms=2_000)))

    older = store.apply(change(samples.status_update(job, 30, timestamp_ms=1_000)))
    record = store.get_job(job)

    assert older.outcome == "stale"
    assert record is not None
    assert record.percent == 60


def test_progressing_after_status_update_keeps_percent(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.status_update(job, 60, timestamp_ms=2_000)))

    late = store.apply(change(samples.progressing(job, timestamp_ms=1_000)))
    record = store.get_job(job)

    assert late.outcome == "applied"
    assert record is not None
    assert record.percent == 60
    assert record.last_event_timestamp_ms == 2_000


def test_late_input_information_recorded(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.complete_hls(job, timestamp_ms=5_000)))

    late = store.apply(change(samples.input_information(job, timestamp_ms=1_000)))
    record = store.get_job(job)

    assert late.outcome == "applied"
    assert record is not None
    assert record.status == "COMPLETE"
    assert record.input_information is not None
    assert record.input_information[0]["uri"] == "s3://media-bucket/in/file.mp4"


def test_warnings_accumulate(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()

    store.apply(change(samples.new_warning(job, code="230001", timestamp_ms=1_000)))
    store.apply(change(samples.new_warning(job, code="230002", timestamp_ms=2_000)))
    record = store.get_job(job)

    assert record is not None
    assert [warning["code"] for warning in record.warnings] == ["230001", "230002"]
    assert record.status == "SUBMITTED"


def test_queue_hop_updates_queue(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.record_submitted(job, queue="arn:aws:mediaconvert:us-east-1:1:queues/Alternate")

    store.apply(change(samples.queue_hop(job)))
    record = store.get_job(job)

    assert record is not None
    assert record.queue == samples.QUEUE_ARN


def test_error_recorded(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()

    store.apply(change(samples.error(job, code=1040, message="Bad input")))
    record = store.get_job(job)

    assert record is not None
    assert record.status == "ERROR"
    assert record.error_code == 1040
    assert record.error_message == "Bad input"
    assert record.is_final


def test_concurrent_apply_applies_once(settings: Settings) -> None:
    event = change(samples.complete_hls(samples.job_id()))
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def apply() -> None:
        store = JobStore(settings)
        barrier.wait()
        outcomes.append(store.apply(event).outcome)

    threads = [threading.Thread(target=apply) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("applied") == 1
    assert outcomes.count("in_flight") == 15


def test_unfinished_dispatch_is_in_flight_then_redispatched(settings: Settings) -> None:
    store = JobStore(settings.replace(visibility_timeout_s=1))
    event = change(samples.complete_hls(samples.job_id()))
    store.apply(event)

    during_lease = store.apply(event)
    time.sleep(1.1)
    after_lease = store.apply(event)
    store.mark_dispatched(after_lease)
    after_dispatch = store.apply(event)

    assert during_lease.outcome == "in_flight"
    assert after_lease.outcome == "redispatch"
    assert after_lease.fires_signal
    assert after_dispatch.outcome == "duplicate"


def test_receiver_error_counted_on_record(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    transition = store.apply(change(samples.complete_hls(job)))

    store.mark_dispatched(transition, receiver_error="on_done: KeyError: 'x'")
    record = store.get_job(job)

    assert record is not None
    assert record.receiver_errors == 1
    assert record.last_receiver_error == "on_done: KeyError: 'x'"


def test_submitted_job_found_by_reference(settings: Settings) -> None:
    store = JobStore(settings)
    first, second = samples.job_id(), samples.job_id()

    store.record_submitted(first, "order-1", submission_id="sub-1",
                           user_metadata={"mc_tasks_reference": "order-1"})
    store.record_submitted(second, "order-1")
    records = store.find_jobs("order-1")

    assert [record.job_id for record in records] == [first, second]
    assert records[0].status == "SUBMITTED"
    assert records[0].submission_id == "sub-1"
    assert records[0].user_metadata == {"mc_tasks_reference": "order-1"}
    assert store.find_jobs("order-2") == []


def test_pending_jobs_lists_silent_open_jobs(settings: Settings) -> None:
    store = JobStore(settings)
    open_job, done_job = samples.job_id(), samples.job_id()
    store.record_submitted(open_job)
    store.record_submitted(done_job)
    store.apply(change(samples.canceled(done_job)))
    time.sleep(0.01)

    pending = [record.job_id for record in store.pending_jobs(0)]
    recent = store.pending_jobs(60)

    assert pending == [open_job]
    assert recent == []


def test_touch_delays_next_check(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.record_submitted(job)
    time.sleep(0.05)

    store.touch(job)

    assert store.pending_jobs(0.04) == []


def test_record_submitted_after_final_event_stays_final(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.complete_hls(job)))

    record = store.record_submitted(job, "video-42")

    assert record.status == "COMPLETE"
    assert store.pending_jobs(0) == []


def test_record_submitted_matches_get_job(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()

    record = store.record_submitted(job, "video-7", queue="Default", submission_id="sub-7",
                                    user_metadata={"mc_tasks_reference": "video-7"})

    assert record is not None
    assert record == store.get_job(job)
    assert record.status == "SUBMITTED"
    assert record.queue == "Default"
    assert record.submission_id == "sub-7"
    assert record.user_metadata == {"mc_tasks_reference": "video-7"}
    assert [found.job_id for found in store.find_jobs("video-7")] == [job]


def test_record_submitted_keeps_event_fields(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.progressing(job)))
    before = store.get_job(job)
    assert before is not None
    assert before.queue == samples.QUEUE_ARN
    assert before.reference == "video-42"

    record = store.record_submitted(job, "other-reference", queue="Other",
                                    submission_id="sub-late")

    assert record is not None
    assert record.status == "PROGRESSING"
    assert record.reference == before.reference
    assert record.queue == before.queue
    assert record.created_at == before.created_at
    assert record.submission_id == "sub-late"


def test_record_submitted_sets_extra_key(settings: Settings, redis_prefix: str) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    extra_key = f"{redis_prefix}:submission:sub-extra"

    result = store.record_submitted(job, read_back=False,
                                    also_set=(extra_key, '{"state": "created"}'))

    assert result is None
    assert store.redis.get(extra_key) == '{"state": "created"}'
    assert 0 < store.redis.ttl(extra_key) <= settings.state_ttl_s
    assert store.get_job(job) is not None


def test_record_submitted_through_bytes_client(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    client = redis.Redis.from_url(settings.redis_url)

    record = store.record_submitted(job, "video-8", client=client)

    client.close()
    assert record is not None
    assert record == store.get_job(job)
    assert record.reference == "video-8"


def test_records_expire_after_state_ttl(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    event = change(samples.progressing(job))

    store.apply(event)
    job_ttl = store.redis.ttl(store.job_key(job))
    event_ttl = store.redis.ttl(store.event_key(event.event_id))

    assert 0 < job_ttl <= settings.state_ttl_s
    assert 0 < event_ttl <= settings.state_ttl_s


def test_unknown_job_is_none(settings: Settings) -> None:
    assert JobStore(settings).get_job("1-nothing") is None


def test_record_to_dict_is_json_serialisable(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    store.apply(change(samples.complete_hls(job)))
    record = store.get_job(job)
    assert record is not None

    data = json.loads(json.dumps(record.to_dict()))

    assert data["status"] == "COMPLETE"
    assert data["outputs"]["groups"][0]["type"] == "HLS_GROUP"


def test_batch_keeps_non_ascii_values(settings: Settings) -> None:
    store = JobStore(settings)
    job = samples.job_id()
    reference = "vidéo-東京-42"
    event = change(samples.error(job, message="Fichier d'entrée illisible", reference=reference))

    with store.batch() as batch:
        (transition,) = batch.apply([(event, True)])
        batch.end(transition, release_lock=True)
    record = store.get_job(job)

    assert transition.outcome == "applied"
    assert transition.signal_lock == "held"
    assert record is not None
    assert record.reference == reference
    assert record.error_message == "Fichier d'entrée illisible"
    assert [found.job_id for found in store.find_jobs(reference)] == [job]
    assert store.redis.get(store.event_key(event.event_id)) == "done"
    assert store.redis.exists(store.signal_lock_key(job)) == 0


def test_batch_error_event_spares_others(settings: Settings) -> None:
    store = JobStore(settings)
    good, bad = samples.job_id(), samples.job_id()
    events = [change(samples.canceled(good)), change(samples.error(bad))]
    # A string no JSON decoder accepts back: the script fails for this event only.
    events[1] = replace(events[1], error_message="bad \ud800 text")

    with store.batch() as batch:
        first, second = batch.apply([(event, True) for event in events])
        batch.end(first, release_lock=True)

    assert first.outcome == "applied"
    assert second.outcome == "error"
    assert not second.fires_signal
    assert "unicode" in second.note.lower()
    record = store.get_job(good)
    assert record is not None
    assert record.status == "CANCELED"
    assert store.get_job(bad) is None
    assert store.redis.get(store.event_key(events[1].event_id)) is None


def test_batch_survives_idle_disconnect(settings: Settings, tmp_path: Path) -> None:
    # The server drops connections idle for 1 s, and the first receiver takes
    # longer: the lease ends written after it go to a closed connection.
    server, url = start_redis_server(tmp_path)
    try:
        store = JobStore(settings.replace(redis_url=url))
        store.redis.config_set("timeout", 1)
        jobs = [samples.job_id() for _ in range(3)]
        events = [change(samples.canceled(job)) for job in jobs]

        with store.batch() as batch:
            transitions = batch.apply([(event, True) for event in events])
            for transition in transitions:
                time.sleep(2.5 if transition is transitions[0] else 0)
                batch.end(transition, release_lock=True)
        markers = [store.redis.get(store.event_key(event.event_id)) for event in events]
        locks = [store.redis.exists(store.signal_lock_key(job)) for job in jobs]
    finally:
        server.stop()

    assert [transition.outcome for transition in transitions] == ["applied"] * 3
    assert markers == ["done"] * 3
    assert locks == [0, 0, 0]


def test_batch_apply_after_idle_disconnect(settings: Settings, tmp_path: Path) -> None:
    server, url = start_redis_server(tmp_path)
    try:
        store = JobStore(settings.replace(redis_url=url))
        store.redis.config_set("timeout", 1)
        event = change(samples.canceled(samples.job_id()))
        with store.batch():
            pass
        # The pooled connection is closed by the server while it is idle.
        time.sleep(2.5)

        with store.batch() as batch:
            (transition,) = batch.apply([(event, True)])
            batch.end(transition, release_lock=True)
        marker = store.redis.get(store.event_key(event.event_id))
    finally:
        server.stop()

    assert transition.outcome == "applied"
    assert marker == "done"
