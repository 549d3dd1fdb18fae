"""Shared parts of the benchmarks: environment, servers, queues, events, results.

Every benchmark runs against servers on 127.0.0.1 that it starts itself
(moto's server, the local MediaConvert) and the machine's Redis on
127.0.0.1:6379 db 14, under the key prefix ``mc_tasks_bench:<run id>``. Its
keys are deleted when the benchmark ends. boto3 gets fake credentials and no
instance metadata (:data:`~mc_tasks.local.stack.FAKE_AWS_ENVIRONMENT`), so
nothing reaches AWS.

Figures are ratios against a baseline measured in the same run, with baseline
and subject run alternately for several rounds; the median is reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis

from mc_tasks import signals
from mc_tasks.clients import clear_clients
from mc_tasks.local.stack import FAKE_AWS_ENVIRONMENT, ManagedProcess, start_moto_server
from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY, SUBMISSION_KEY
from mc_tasks.settings import Settings

logger = logging.getLogger(__name__)

#: Redis of the benchmarks: the machine's server, a database the tests do not use.
BENCH_REDIS_URL = os.environ.get("MC_TASKS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
#: Root of every benchmark key; the run id follows it.
BENCH_KEY_ROOT = "mc_tasks_bench"
REGION = "us-east-1"
#: Account id that moto's server reports for the fake credentials.
ACCOUNT_ID = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/MediaConvertBenchRole"
QUEUE_ARN = f"arn:aws:mediaconvert:{REGION}:{ACCOUNT_ID}:queues/Default"
#: Messages per SendMessageBatch call, the SQS maximum.
SEND_BATCH = 10
#: Job state changes produced per job, in the order MediaConvert sends them.
JOB_LIFECYCLE = ("PROGRESSING", "INPUT_INFORMATION", "STATUS_UPDATE", "STATUS_UPDATE",
                 "COMPLETE")
#: Keys deleted per DEL call when cleaning up.
DELETE_CHUNK = 1000
#: Repository root, the working directory of the helper processes.
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
#: Seconds to wait for a producer to fill a queue before the timed part starts.
PREFILL_TIMEOUT_S = 60.0


def use_fake_aws_environment() -> None:
    """Replace every ``AWS_*`` variable of this process with fake credentials and no IMDS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(FAKE_AWS_ENVIRONMENT)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """Start moto's server, aim this process's boto3 clients at it, and stop it afterwards."""
    process, url = start_moto_server(log_dir, env=dict(os.environ))
    os.environ["AWS_ENDPOINT_URL"] = url
    clear_clients()
    try:
        yield process, url
    finally:
        process.stop()
        os.environ.pop("AWS_ENDPOINT_URL", None)
        clear_clients()


@dataclass
class BenchContext:
    """What every benchmark gets: the run id, its work directory and the size of the run."""

    run_id: str
    work_dir: Path
    quick: bool
    #: Events the memory benchmark drains; None for its default.
    memory_events: int | None = None

    @property
    def key_prefix(self) -> str:
        return f"{BENCH_KEY_ROOT}:{self.run_id}"

    def settings(self, name: str, **changes: Any) -> Settings:
        """Return settings with a queue and key prefix of their own for one benchmark round."""
        suffix = uuid.uuid4().hex[:8]
        return Settings(
            region=REGION,
            sqs_queue_name=f"bench-{name}-{suffix}"[:80],
            mediaconvert_role_arn=ROLE_ARN,
            redis_url=BENCH_REDIS_URL,
            redis_key_prefix=f"{self.key_prefix}:{name}:{suffix}",
            **changes,
        )

    def log_dir(self, name: str) -> Path:
        path = self.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def delete_keys(prefix: str, redis_url: str = BENCH_REDIS_URL) -> int:
    """Delete every key under ``prefix`` (never FLUSHDB); return how many were deleted."""
    connection = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in connection.scan_iter(match=f"{prefix}:*", count=DELETE_CHUNK):
            batch.append(key)
            if len(batch) >= DELETE_CHUNK:
                deleted += int(connection.delete(*batch))
                batch = []
        if batch:
            deleted += int(connection.delete(*batch))
    finally:
        connection.close()
    return deleted


# -- SQS ---------------------------------------------------------------------

def sqs_client() -> Any:
    """Return a new SQS client aimed at the current ``AWS_ENDPOINT_URL``."""
    return boto3.client("sqs", region_name=REGION)


def create_queue(sqs: Any, settings: Settings, *, visibility_timeout_s: int = 120) -> str:
    """Create the event queue of ``settings`` with a dead-letter queue; return its URL."""
    dlq_url = sqs.create_queue(QueueName=f"{settings.sqs_queue_name}-dlq"[:80])["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)}
    url: str = sqs.create_queue(QueueName=settings.sqs_queue_name, Attributes={
        "RedrivePolicy": json.dumps(redrive),
        "VisibilityTimeout": str(visibility_timeout_s),
    })["QueueUrl"]
    return url


def send_bodies(sqs: Any, queue_url: str, bodies: Sequence[str]) -> None:
    """Send ``bodies`` with SendMessageBatch; raise RuntimeError when SQS rejects one."""
    for start in range(0, len(bodies), SEND_BATCH):
        entries = [{"Id": str(index), "MessageBody": body}
                   for index, body in enumerate(bodies[start:start + SEND_BATCH])]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SendMessageBatch to {queue_url} failed: {response['Failed']}")


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Return visible plus in-flight messages of the queue (SQS's approximate counts)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"])
            + int(attributes["ApproximateNumberOfMessagesNotVisible"]))


def child_environment() -> dict[str, str]:
    """Return this process's environment for a helper process that imports ``bench``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def start_producer(queue_url: str, count: int, depth: int, log_path: Path,
                   application: str = "mc_tasks") -> ManagedProcess:
    """Start :mod:`bench.producer` for ``queue_url`` and wait until the queue is filled.

    The queue is filled when it contains ``depth`` messages or the producer has
    sent all ``count``. Raise RuntimeError when that takes more than
    :data:`PREFILL_TIMEOUT_S`.
    """
    process = ManagedProcess(
        "producer",
        [sys.executable, "-m", "bench.producer", "--queue-url", queue_url, "--count",
         str(count), "--depth", str(depth), "--application", application],
        env=child_environment(), cwd=REPOSITORY_ROOT, log_path=log_path)
    sqs = sqs_client()
    deadline = time.monotonic() + PREFILL_TIMEOUT_S
    while queue_depth(sqs, queue_url) < min(depth, count) - SEND_BATCH:
        if not process.running() or time.monotonic() > deadline:
            process.stop()
            raise RuntimeError(f"The producer did not fill {queue_url} to {depth} messages "
                               f"within {PREFILL_TIMEOUT_S:g} s. Last log lines:\n"
                               f"{process.log_tail()}")
        time.sleep(0.05)
    return process


def finish_producer(process: ManagedProcess, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait for a producer to exit and return its JSON report; stop it if it does not exit."""
    try:
        process.popen.wait(timeout=timeout_s)
    finally:
        process.stop()
    lines = process.log_tail(5).splitlines()
    if process.popen.returncode != 0 or not lines:
        raise RuntimeError(f"The producer failed with code {process.popen.returncode}: "
                           f"{process.log_tail()}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


# -- events --------------------------------------------------------------------

class EventFactory:
    """Bodies of valid MediaConvert job state change events of this application's jobs.

    Each job gets :data:`JOB_LIFECYCLE` in order with rising ``detail.timestamp``,
    so a drain that receives them in order applies every one and fires its
    signal. Event ids are unique across factories.
    """

    def __init__(self, settings: Settings) -> None:
        self.application = settings.application
        self.region = settings.region
        self._jobs = 0

    def bodies(self, count: int) -> list[str]:
        """Return ``count`` event bodies, whole job lifecycles first."""
        bodies: list[str] = []
        while len(bodies) < count:
            bodies.extend(self.job_bodies())
        return bodies[:count]

    def job_bodies(self) -> list[str]:
        """Return the bodies of one new job's lifecycle."""
        self._jobs += 1
        job_id = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
        base_ms = int(time.time() * 1000)
        percents = iter((40, 90))
        bodies = []
        for step, status in enumerate(JOB_LIFECYCLE):
            detail: dict[str, Any] = {}
            if status == "STATUS_UPDATE":
                percent = next(percents)
                detail["jobProgress"] = {"jobPercentComplete": percent,
                                         "currentPhase": "TRANSCODING", "retryCount": 0}
            elif status == "INPUT_INFORMATION":
                detail["inputDetails"] = [{"id": 1, "uri": "s3://bench-media/in/clip.mp4",
                                           "video": [{"width": 1280, "height": 720,
                                                      "codec": "H_264", "streamId": 1}]}]
            elif status == "COMPLETE":
                detail["outputGroupDetails"] = _complete_groups(job_id)
            bodies.append(json.dumps(self.envelope(job_id, status, base_ms + step, detail)))
        return bodies

    def envelope(self, job_id: str, status: str, timestamp_ms: int,
                 detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return one event envelope as EventBridge delivers it to SQS."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "MediaConvert Job State Change",
            "source": "aws.mediaconvert",
            "account": ACCOUNT_ID,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp_ms / 1000)),
            "region": self.region,
            "resources": [f"arn:aws:mediaconvert:{self.region}:{ACCOUNT_ID}:jobs/{job_id}"],
            "detail": {
                "timestamp": timestamp_ms,
                "accountId": ACCOUNT_ID,
                "queue": QUEUE_ARN,
                "jobId": job_id,
                "status": status,
                "userMetadata": {REFERENCE_KEY: f"video-{self._jobs}",
                                 APPLICATION_KEY: self.application,
                                 SUBMISSION_KEY: f"submission-{job_id}"},
                **(detail or {}),
            },
        }


def _complete_groups(job_id: str) -> list[dict[str, Any]]:
    prefix = f"s3://bench-media/out/{job_id}"
    return [
        {"type": "FILE_GROUP", "outputDetails": [
            {"outputFilePaths": [f"{prefix}/mp4/clip.mp4"], "durationInMs": 10000,
             "videoDetails": {"widthInPx": 1280, "heightInPx": 720}}]},
        {"type": "HLS_GROUP", "playlistFilePaths": [f"{prefix}/hls/clip.m3u8"],
         "outputDetails": [
             {"outputFilePaths": [f"{prefix}/hls/clip_720p.m3u8"], "durationInMs": 10000,
              "videoDetails": {"widthInPx": 1280, "heightInPx": 720}},
             {"outputFilePaths": [f"{prefix}/hls/clip_360p.m3u8"], "durationInMs": 10000,
              "videoDetails": {"widthInPx": 640, "heightInPx": 360}}]},
    ]


class SignalCounter:
    """A trivial receiver connected to every event signal that counts the firings."""

    def __init__(self, on_fire: Callable[[Any], None] | None = None) -> None:
        self.count = 0
        self.on_fire = on_fire
        self._lock = threading.Lock()
        self._signals = [signals.job_progressing, signals.job_progress, signals.job_completed,
                         signals.job_failed, signals.job_canceled, signals.job_info]

    def receive(self, sender: str, **kwargs: Any) -> None:
        with self._lock:
            self.count += 1
        if self.on_fire is not None:
            self.on_fire(kwargs["event"])

    def __enter__(self) -> SignalCounter:
        for signal in self._signals:
            signal.connect(self.receive, weak=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signal in self._signals:
            signal.disconnect(self.receive)


# -- measurement -----------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, CPU seconds of the measured process, items handled."""

    wall_s: float
    cpu_s: float
    items: int
    #: CPU seconds that a watched server process used during the run, when one was given.
    server_cpu_s: float = 0.0

    @property
    def rate_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_per_item_ms(self) -> float:
        return 1000 * self.cpu_s / self.items if self.items else 0.0

    @property
    def wall_per_item_ms(self) -> float:
        return 1000 * self.wall_s / self.items if self.items else 0.0

    @property
    def server_cpu_per_item_ms(self) -> float:
        return 1000 * self.server_cpu_s / self.items if self.items else 0.0

    @property
    def server_busy(self) -> float:
        """Share of one core that the watched server used during the run."""
        return self.server_cpu_s / self.wall_s if self.wall_s else 0.0


def timed(function: Callable[[], int], server_pid: int | None = None) -> Sample:
    """Run ``function`` (returning the items it handled) and time its wall and process CPU.

    With ``server_pid``, the CPU that process used meanwhile is recorded too.
    """
    server_start = process_cpu_s(server_pid) if server_pid else 0.0
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    items = function()
    wall_s = time.perf_counter() - wall_start
    cpu_s = time.process_time() - cpu_start
    server_cpu_s = process_cpu_s(server_pid) - server_start if server_pid else 0.0
    return Sample(wall_s=wall_s, cpu_s=cpu_s, items=items, server_cpu_s=server_cpu_s)


def process_cpu_s(pid: int) -> float:
    """Return user plus system CPU seconds of process ``pid`` from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int]:
    """Return (busy, total) CPU ticks of the whole machine from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_cores(start: tuple[int, int], end: tuple[int, int]) -> float:
    """Return how many cores were busy on average between two machine_cpu_ticks readings."""
    busy, total = end[0] - start[0], end[1] - start[1]
    return len(os.sched_getaffinity(0)) * busy / total if total else 0.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (``fraction`` from 0 to 1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Figure:
    """One reported figure: the subject's value, the baseline's, their ratio and the target."""

    benchmark: str
    metric: str
    unit: str
    subject: float
    target: str
    #: None for a figure that is reported without a target.
    met: bool | None
    baseline: float | None = None
    ratio: float | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark, "metric": self.metric, "unit": self.unit,
            "subject": self.subject, "baseline": self.baseline, "ratio": self.ratio,
            "target": self.target, "met": self.met, "note": self.note, "details": self.details,
        }


def ratio_figure(benchmark: str, metric: str, unit: str, subject: Sequence[float],
                 baseline: Sequence[float], *, target: str,
                 check: Callable[[float], bool], note: str = "",
                 details: dict[str, Any] | None = None) -> Figure:
    """Build a figure from paired rounds: medians of both sides and the median per-round ratio."""
    ratios = [s / b for s, b in zip(subject, baseline, strict=True) if b]
    ratio = median(ratios)
    rounds = {"subject_rounds": [round(value, 4) for value in subject],
              "baseline_rounds": [round(value, 4) for value in baseline],
              "ratio_rounds": [round(value, 3) for value in ratios]}
    return Figure(benchmark=benchmark, metric=metric, unit=unit, subject=median(subject),
                  baseline=median(baseline), ratio=ratio, target=target, met=check(ratio),
                  note=note, details={**rounds, **(details or {})})
