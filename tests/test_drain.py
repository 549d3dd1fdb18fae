"""The drain: SQS (moto in-process) to the Redis store to signals, each change once."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mc_tasks import signals
from mc_tasks.drain import DrainReport, drain_status_queue
from mc_tasks.events import parse_event
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore
from tests import event_samples as samples

SIGNALS = {
    "progressing": signals.job_progressing,
    "progress": signals.job_progress,
    "completed": signals.job_completed,
    "failed": signals.job_failed,
    "canceled": signals.job_canceled,
    "info": signals.job_info,
}
FINAL_SIGNALS = {"completed", "failed", "canceled"}


@dataclass
class Recorder:
    """Every signal fired during a test, in firing order."""

    calls: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self, job_id: str) -> list[str]:
        return [name for name, job, _, _ in self.calls if job == job_id]

    def by_event(self) -> Counter[str]:
        return Counter(event_id for _, _, event_id, _ in self.calls)


@dataclass
class Queues:
    sqs: Any
    url: str
    dlq_url: str

    def send(self, *bodies: str | dict[str, Any]) -> None:
        texts = [body if isinstance(body, str) else json.dumps(body) for body in bodies]
        for start in range(0, len(texts), 10):
            entries = [{"Id": str(index), "MessageBody": text}
                       for index, text in enumerate(texts[start:start + 10])]
            response = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            assert not response.get("Failed")

    def depth(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (int(attributes["ApproximateNumberOfMessages"])
                + int(attributes["ApproximateNumberOfMessagesNotVisible"]))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorded = Recorder()
    receivers: list[tuple[Any, Callable[..., None]]] = []
    for name, signal in SIGNALS.items():
        def receive(sender: str, job_id: str, event: Any, _name: str = name,
                    **kwargs: Any) -> None:
            with recorded.lock:
                recorded.calls.append((_name, job_id, event.event_id, kwargs))
        signal.connect(receive, weak=False)
        receivers.append((signal, receive))
    yield recorded
    for signal, receive in receivers:
        signal.disconnect(receive)


def make_queues(settings: Settings, *, visibility_timeout_s: int = 30) -> Queues:
    sqs = boto3.client("sqs", region_name=settings.region)
    dlq_url = sqs.create_queue(QueueName=f"{settings.sqs_queue_name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)}
    url = sqs.create_queue(QueueName=settings.sqs_queue_name, Attributes={
        "RedrivePolicy": json.dumps(redrive),
        "VisibilityTimeout": str(visibility_timeout_s),
    })["QueueUrl"]
    return Queues(sqs=sqs, url=url, dlq_url=dlq_url)


@pytest.fixture
def queues(settings: Settings) -> Iterator[Queues]:
    with mock_aws():
        yield make_queues(settings)


def drain(settings: Settings, **kwargs: Any) -> DrainReport:
    """Run one drain; by default a single short poll, enough for up to 10 queued messages."""
    kwargs.setdefault("max_duration_s", 0)
    return drain_status_queue(settings, **kwargs)


def drain_concurrently(settings: Settings, queues: Queues, *, drains: int = 2,
                       produce: Callable[[], None] | None = None,
                       timeout_s: float = 30.0) -> list[DrainReport]:
    """Run ``drains`` drain loops in threads until ``produce`` returned and the queue is empty.

    A duplicate received while another drain still fires the same event is left
    in the queue (``in_flight``) and handled once its visibility timeout ends.
    """
    reports: list[DrainReport] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            reports.append(drain(settings, max_duration_s=1.0))

    threads = [threading.Thread(target=loop) for _ in range(drains)]
    for thread in threads:
        thread.start()
    if produce is not None:
        produce()
    deadline = time.monotonic() + timeout_s
    while queues.depth() and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    return reports


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Settings whose visibility timeout matches the 2-second queue of ``fast_queues``."""
    return settings.replace(visibility_timeout_s=2)


@pytest.fixture
def fast_queues(fast_settings: Settings) -> Iterator[Queues]:
    with mock_aws():
        yield make_queues(fast_settings, visibility_timeout_s=2)


def test_job_lifecycle_fires_each_signal_once(settings: Settings, queues: Queues,
                                              recorder: Recorder) -> None:
    job = samples.job_id()
    queues.send(samples.progressing(job, timestamp_ms=1_000),
                samples.status_update(job, 40, timestamp_ms=2_000),
                samples.complete_hls(job, timestamp_ms=3_000))

    report = drain(settings)
    record = JobStore(settings).get_job(job)

    assert recorder.names(job) == ["progressing", "progress", "completed"]
    assert recorder.calls[1][3]["percent"] == 40
    assert recorder.calls[1][3]["phase"] == "TRANSCODING"
    assert recorder.calls[2][3]["outputs"].hls_master_playlist == "s3://media-bucket/hls/main.m3u8"
    assert recorder.calls[2][3]["reference"] == "video-42"
    assert report.received == 3
    assert report.applied == 3
    assert report.deleted == 3
    assert queues.depth() == 0
    assert record is not None
    assert record.status == "COMPLETE"


def test_failed_signal_arguments(settings: Settings, queues: Queues, recorder: Recorder) -> None:
    job = samples.job_id()
    queues.send(samples.error(job, code=1040, message="Bad input"))

    drain(settings)

    assert recorder.names(job) == ["failed"]
    assert recorder.calls[0][3]["error_code"] == 1040
    assert recorder.calls[0][3]["error_message"] == "Bad input"
    assert recorder.calls[0][3]["permanent"] is True


def test_duplicate_event_fires_signal_once(settings: Settings, queues: Queues,
                                           recorder: Recorder) -> None:
    job = samples.job_id()
    event = samples.complete_hls(job)
    queues.send(event, event, event)

    first = drain(settings)
    queues.send(event)
    second = drain(settings)

    assert recorder.names(job) == ["completed"]
    assert first.applied == 1
    assert first.duplicates == 2
    assert first.deleted == 3
    assert second.duplicates == 1
    assert queues.depth() == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_shuffled_events_end_final_without_late_progress(settings: Settings, queues: Queues,
                                                        recorder: Recorder, seed: int) -> None:
    job = samples.job_id()
    events = [samples.progressing(job, timestamp_ms=1_000)]
    events += [samples.status_update(job, percent, timestamp_ms=1_000 + percent)
               for percent in (10, 30, 50, 70, 90)]
    events += [samples.input_information(job, timestamp_ms=1_001),
               samples.complete_hls(job, timestamp_ms=2_000)]
    random.Random(seed).shuffle(events)
    queues.send(*events)

    drain(settings)
    names = recorder.names(job)
    record = JobStore(settings).get_job(job)

    assert names.count("completed") == 1
    assert not {"progress", "progressing"} & set(names[names.index("completed"):])
    assert record is not None
    assert record.status == "COMPLETE"
    assert record.input_information is not None


def test_complete_first_drops_all_progress(settings: Settings, queues: Queues,
                                           recorder: Recorder) -> None:
    job = samples.job_id()
    queues.send(samples.complete_hls(job, timestamp_ms=9_000))
    drain(settings)
    queues.send(samples.progressing(job, timestamp_ms=1_000),
                samples.status_update(job, 50, timestamp_ms=2_000),
                samples.input_information(job, timestamp_ms=1_500))

    report = drain(settings)

    assert recorder.names(job) == ["completed", "info"]
    assert report.stale == 2
    assert report.applied == 1
    assert report.deleted == 3


def test_raising_receiver_isolated_and_message_deleted(settings: Settings, queues: Queues,
                                                       recorder: Recorder) -> None:
    job = samples.job_id()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("host database is down")

    signals.job_completed.connect(broken, weak=False)
    try:
        queues.send(samples.complete_hls(job))
        report = drain(settings)
        queues.send(samples.complete_hls(job))
        drain(settings)
    finally:
        signals.job_completed.disconnect(broken)
    record = JobStore(settings).get_job(job)

    assert report.receiver_errors == 1
    assert report.deleted == 1
    assert recorder.names(job) == ["completed"]
    assert queues.depth() == 0
    assert record is not None
    assert record.receiver_errors == 1
    assert record.last_receiver_error is not None
    assert "host database is down" in record.last_receiver_error


def test_foreign_and_other_events_discarded(settings: Settings, queues: Queues,
                                            recorder: Recorder) -> None:
    job = samples.job_id()
    queues.send(
        samples.envelope("PROGRESSING", job, detail_type="MediaConvert Queue Change"),
        samples.envelope("PROGRESSING", job, source="aws.s3"),
        samples.complete_hls(job, application=None),
        samples.complete_hls(job, application="another-app"),
        samples.complete_hls(job, region="eu-west-1"),
        samples.complete_hls(job, account="999999999999"),
    )

    report = drain(settings, expected_account_id=samples.ACCOUNT_ID)

    assert recorder.calls == []
    assert dict(report.discarded) == {"other_detail_type": 1, "other_source": 1,
                                      "foreign_job": 2, "other_region": 1, "other_account": 1}
    assert report.deleted == 6
    assert queues.depth() == 0
    assert JobStore(settings).get_job(job) is None


def test_sns_wrapped_event_applied(settings: Settings, queues: Queues,
                                   recorder: Recorder) -> None:
    job = samples.job_id()
    queues.send(samples.sns_wrapped(samples.canceled(job)))

    report = drain(settings)

    assert recorder.names(job) == ["canceled"]
    assert report.applied == 1


def test_poison_message_kept_without_blocking_batch(settings: Settings, queues: Queues,
                                                    recorder: Recorder) -> None:
    job = samples.job_id()
    queues.send("this is not json", samples.complete_hls(job), '{"detail": 1}')

    report = drain(settings)

    assert recorder.names(job) == ["completed"]
    assert dict(report.failed) == {"not_json": 1, "wrong_shape": 1}
    assert report.deleted == 1
    assert queues.depth() == 2


def test_poison_message_ends_in_dead_letter_queue(settings: Settings, recorder: Recorder) -> None:
    settings = settings.replace(max_receive_count=2, visibility_timeout_s=1)
    with mock_aws():
        queues = make_queues(settings, visibility_timeout_s=1)
        queues.send("not json")

        report = drain(settings, max_duration_s=3.0)

        assert report.failed["not_json"] == 2
        assert queues.depth() == 0
        assert queues.depth(queues.dlq_url) == 1
        assert recorder.calls == []


def test_concurrent_drains_fire_each_signal_once(fast_settings: Settings, fast_queues: Queues,
                                                 recorder: Recorder) -> None:
    jobs = [samples.job_id() for _ in range(10)]
    fast_queues.send(*[samples.complete_hls(job) for job in jobs] * 3)

    reports = drain_concurrently(fast_settings, fast_queues)

    assert all(recorder.names(job) == ["completed"] for job in jobs)
    assert sum(report.applied for report in reports) == 10
    assert sum(report.duplicates for report in reports) == 20
    assert fast_queues.depth() == 0


def test_max_messages_bounds_one_run(settings: Settings, queues: Queues,
                                     recorder: Recorder) -> None:
    queues.send(*[samples.canceled(samples.job_id()) for _ in range(12)])

    report = drain(settings, max_messages=5)

    assert report.received == 5
    assert queues.depth() == 7


def test_max_duration_bounds_empty_poll(settings: Settings, queues: Queues) -> None:
    started = time.monotonic()

    report = drain(settings, max_duration_s=1.0)
    elapsed_s = time.monotonic() - started

    assert report.received == 0
    assert 0.9 <= elapsed_s < 2.5


def test_event_sent_during_poll_handled_in_same_run(settings: Settings, queues: Queues,
                                                    recorder: Recorder) -> None:
    job = samples.job_id()
    timer = threading.Timer(0.5, queues.send, args=(samples.canceled(job),))
    timer.start()

    report = drain(settings, max_duration_s=2.0)
    timer.join()

    assert report.applied == 1
    assert recorder.names(job) == ["canceled"]


def test_slow_batch_extends_visibility(settings: Settings, queues: Queues) -> None:
    settings = settings.replace(visibility_timeout_s=2)
    jobs = [samples.job_id() for _ in range(3)]

    def slow(**kwargs: Any) -> None:
        time.sleep(0.6)

    signals.job_canceled.connect(slow, weak=False)
    try:
        queues.send(*[samples.canceled(job) for job in jobs])
        report = drain(settings, max_duration_s=1.0)
    finally:
        signals.job_canceled.disconnect(slow)

    assert report.applied == 3
    assert report.visibility_extended >= 1
    assert queues.depth() == 0


def test_chaos_concurrent_drains_lose_and_repeat_nothing(
        fast_settings: Settings, fast_queues: Queues, recorder: Recorder) -> None:
    rng = random.Random(20240611)
    finals = {samples.job_id(): rng.choice(["COMPLETE", "ERROR", "CANCELED"]) for _ in range(50)}
    builders = {"COMPLETE": samples.complete_hls, "ERROR": samples.error,
                "CANCELED": samples.canceled}
    unique: list[dict[str, Any]] = []
    for job, final in finals.items():
        unique.append(samples.progressing(job, timestamp_ms=1_000))
        unique.append(samples.input_information(job, timestamp_ms=1_001))
        unique.append(samples.new_warning(job, timestamp_ms=1_002))
        unique += [samples.status_update(job, 10 * step, timestamp_ms=1_100 + step)
                   for step in range(1, 7)]
        unique.append(builders[final](job, timestamp_ms=5_000))
    messages = unique + rng.sample(unique, k=len(unique) // 5)
    rng.shuffle(messages)

    def produce() -> None:
        # moto's receive slows down with queue depth, so the events arrive in
        # batches while the drains run, as they do from EventBridge.
        for start in range(0, len(messages), 10):
            fast_queues.send(*messages[start:start + 10])

    reports = drain_concurrently(fast_settings, fast_queues, produce=produce)
    store = JobStore(fast_settings)
    final_signal = {"COMPLETE": "completed", "ERROR": "failed", "CANCELED": "canceled"}
    applied = sum(report.applied for report in reports)

    assert len(unique) == 500
    assert len(messages) == 600
    assert fast_queues.depth() == 0
    assert sum(report.deleted for report in reports) >= 600
    assert max(recorder.by_event().values()) == 1
    assert len(recorder.calls) == applied
    for job, final in finals.items():
        names = recorder.names(job)
        record = store.get_job(job)
        assert [name for name in names if name in FINAL_SIGNALS] == [final_signal[final]]
        assert not {"progress", "progressing"} & set(names[names.index(final_signal[final]):])
        assert names.count("info") == 2
        assert record is not None
        assert record.status == final


def remaining_bodies(queues: Queues) -> list[str]:
    """Return the bodies of the messages left in the queue, received with visibility 0."""
    time.sleep(1.2)  # The drain's receive hid them for the 1-second visibility timeout.
    bodies = []
    for _ in range(3):
        response = queues.sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10,
                                              VisibilityTimeout=0)
        for message in response.get("Messages", []):
            bodies.append(message["Body"])
        if len(set(bodies)) >= queues.depth():
            break
    return sorted(set(bodies))


def test_poison_kept_event_deleted(settings: Settings, recorder: Recorder) -> None:
    settings = settings.replace(visibility_timeout_s=1)
    with mock_aws():
        queues = make_queues(settings, visibility_timeout_s=1)
        job = samples.job_id()
        queues.send("this is not json", samples.complete_hls(job))

        report = drain(settings)

        assert recorder.names(job) == ["completed"]
        assert report.deleted == 1
        assert remaining_bodies(queues) == ["this is not json"]


def test_discarded_then_event_deleted(settings: Settings, recorder: Recorder) -> None:
    settings = settings.replace(visibility_timeout_s=1)
    with mock_aws():
        queues = make_queues(settings, visibility_timeout_s=1)
        job = samples.job_id()
        foreign = samples.canceled(samples.job_id(), application="someone-else")
        queues.send(foreign, samples.complete_hls(job))

        report = drain(settings)

        assert recorder.names(job) == ["completed"]
        assert report.delete_failed == 0
        assert report.deleted == 2
        assert queues.depth() == 0


def test_in_flight_event_kept(settings: Settings, recorder: Recorder) -> None:
    # Another drain holds the first event's lease, so its message stays as well.
    settings = settings.replace(visibility_timeout_s=1)
    with mock_aws():
        queues = make_queues(settings, visibility_timeout_s=1)
        store = JobStore(settings)
        job1, job2 = samples.job_id(), samples.job_id()
        first = samples.canceled(job1)
        other_drain = store.apply(parse_event(first))  # Another drain is firing it now.
        assert other_drain.fires_signal
        # A lease that ends far in the future.
        store.redis.set(store.event_key(first["id"]), f"pending:other:{10**15}", ex=60)
        queues.send("this is not json", first, samples.canceled(job2))

        report = drain(settings)

        assert report.in_flight == 1
        assert recorder.names(job2) == ["canceled"]
        left = remaining_bodies(queues)
        assert "this is not json" in left
        assert any(json.loads(body).get("id") == first["id"]
                   for body in left if body.startswith("{"))


def _unpaired_surrogate_error(job: str) -> str:
    body: dict[str, Any] = samples.error(job, message="placeholder")
    return json.dumps(body).replace("placeholder", "bad \\ud800 text")


def test_unpaired_surrogate_kept_for_dlq(settings: Settings, recorder: Recorder) -> None:
    # JSON that escapes an unpaired surrogate is no text: it must not stop its batch.
    settings = settings.replace(visibility_timeout_s=1)
    with mock_aws():
        queues = make_queues(settings, visibility_timeout_s=1)
        good = [samples.job_id() for _ in range(3)]
        bad = samples.job_id()
        queues.send(samples.canceled(good[0]), _unpaired_surrogate_error(bad),
                    samples.canceled(good[1]), samples.canceled(good[2]))

        report = drain(settings)

        assert [recorder.names(job) for job in good] == [["canceled"]] * 3
        assert recorder.names(bad) == []
        assert report.deleted == 3
        assert report.failed == {"not_json": 1}
        assert len(remaining_bodies(queues)) == 1
