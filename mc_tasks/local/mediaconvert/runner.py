"""Run jobs on worker threads: phases, progress, final state and events.

A job goes PROGRESSING (event), then through the phases PROBING (download
and probe the input, then an INPUT_INFORMATION event), TRANSCODING (ffmpeg)
and UPLOADING, and ends COMPLETE, ERROR or CANCELED, each with its event.

STATUS_UPDATE events: one when each phase begins, and during a phase at
most every ``min(job's StatusUpdateInterval, max_status_update_interval_s)``
seconds. The cap (1 s by default) is shorter than any interval AWS offers,
so that short local jobs still report progress. A cap of 600 s keeps AWS's
timing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from mc_tasks.local.mediaconvert.events import EventPublisher
from mc_tasks.local.mediaconvert.jobs import JobStore
from mc_tasks.local.mediaconvert.records import CANCELED, COMPLETE, ERROR, JobRecord
from mc_tasks.local.mediaconvert.transcode import (
    UNCLASSIFIED_ERROR_CODE,
    JobCanceled,
    JobFailure,
    download_input,
    output_group_details,
    probe_input,
    run_ffmpeg,
    upload_outputs,
)

logger = logging.getLogger(__name__)

#: Maximum seconds between two STATUS_UPDATE events of a running job on the local server.
DEFAULT_MAX_STATUS_UPDATE_INTERVAL_S = 1.0
#: Seconds a worker waits for its running job to stop when the server stops.
WORKER_JOIN_TIMEOUT_S = 10.0
PHASES = ("PROBING", "TRANSCODING", "UPLOADING")
#: Share of jobPercentComplete that each phase covers; they add up to 100.
_PHASE_WEIGHTS = {"PROBING": 5, "TRANSCODING": 85, "UPLOADING": 10}


def status_update_interval_s(value: str) -> float:
    """Return the seconds of a StatusUpdateInterval value such as ``SECONDS_60``."""
    return float(value.removeprefix("SECONDS_"))


class JobRunner:
    """Run one job at a time per calling thread; shared by all workers."""

    def __init__(self, store: JobStore, publisher: EventPublisher, s3: Any, work_dir: Path,
                 max_status_update_interval_s: float = DEFAULT_MAX_STATUS_UPDATE_INTERVAL_S
                 ) -> None:
        self.store = store
        self.publisher = publisher
        self.s3 = s3
        self.work_dir = work_dir
        self.max_status_update_interval_s = max_status_update_interval_s

    def run(self, job: JobRecord) -> None:
        """Run ``job``, already PROGRESSING, to its final state."""
        started = time.monotonic()
        job_dir = self.work_dir / job.id
        logger.info("Job %s started", job.id)
        self.publisher.publish(job.identity, "PROGRESSING")
        progress = _Progress(self, job)
        try:
            self._run_phases(job, job_dir, progress)
        except (JobCanceled, JobFailure) as exc:
            if job.cancel_requested:
                self._finish(job, CANCELED)
            else:
                assert isinstance(exc, JobFailure)
                self._finish(job, ERROR, error=exc)
        except Exception as exc:
            logger.exception("Job %s failed unexpectedly", job.id)
            self._finish(job, ERROR, error=JobFailure(UNCLASSIFIED_ERROR_CODE,
                                                      f"Internal error: {exc}"))
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
        logger.info("Job %s ended %s after %.1f s", job.id, job.status,
                    time.monotonic() - started)

    def _run_phases(self, job: JobRecord, job_dir: Path, progress: _Progress) -> None:
        progress.begin("PROBING")
        input_path = download_input(self.s3, job.plan.input_uri, job_dir)
        _check_canceled(job)
        info = probe_input(input_path, job.plan.input_uri, job.plan)
        duration_s = float(info.get("format", {}).get("duration") or 0.0)
        self.publisher.publish(job.identity, "INPUT_INFORMATION",
                               {"inputDetails": [_input_details(job, info)]})

        progress.begin("TRANSCODING")
        output_dir = run_ffmpeg(
            job.plan, input_path, job_dir,
            on_progress=lambda done_s: progress.update(
                100.0 * done_s / duration_s if duration_s else 0.0),
            on_start=lambda process: self._attach(job, process),
        )
        _check_canceled(job)

        progress.begin("UPLOADING")
        details = output_group_details(job.plan, output_dir, duration_s)
        file_count = upload_outputs(self.s3, job.plan, output_dir)
        logger.info("Job %s uploaded %d files", job.id, file_count)
        with self.store.condition:
            job.output_group_details = details
        self._finish(job, COMPLETE)

    def _attach(self, job: JobRecord, process: subprocess.Popen[str]) -> None:
        with self.store.condition:
            job.process = process
            canceled = job.cancel_requested
        if canceled:
            process.kill()

    def _finish(self, job: JobRecord, status: str, error: JobFailure | None = None) -> None:
        with self.store.condition:
            job.status = status
            job.finish_time = time.time()
            job.process = None
            job.current_phase = None
            if status == COMPLETE:
                job.percent_complete = 100
            if error is not None:
                job.error_code = error.error_code
                job.error_message = error.message
        extra: dict[str, Any] = {}
        if status == COMPLETE:
            extra["outputGroupDetails"] = job.output_group_details
        elif error is not None:
            extra = {"errorCode": error.error_code, "errorMessage": error.message}
            logger.warning("Job %s failed with error %d: %s", job.id, error.error_code,
                           error.message)
        self.publisher.publish(job.identity, status, extra)


class _Progress:
    """A running job's phase and percentages, and when to send STATUS_UPDATE."""

    def __init__(self, runner: JobRunner, job: JobRecord) -> None:
        self.runner = runner
        self.job = job
        self.phase = PHASES[0]
        self.phase_percent = 0.0
        self.interval_s = min(status_update_interval_s(job.status_update_interval),
                              runner.max_status_update_interval_s)
        self.last_sent = 0.0

    def begin(self, phase: str) -> None:
        _check_canceled(self.job)
        self.phase = phase
        self.phase_percent = 0.0
        self._store()
        self._send()

    def update(self, phase_percent: float) -> None:
        self.phase_percent = min(max(phase_percent, 0.0), 100.0)
        self._store()
        if time.monotonic() - self.last_sent >= self.interval_s:
            self._send()

    def job_percent(self) -> int:
        index = PHASES.index(self.phase)
        done = sum(_PHASE_WEIGHTS[phase] for phase in PHASES[:index])
        return int(done + _PHASE_WEIGHTS[self.phase] * self.phase_percent / 100)

    def _store(self) -> None:
        with self.runner.store.condition:
            self.job.current_phase = self.phase
            self.job.percent_complete = self.job_percent()

    def _send(self) -> None:
        self.last_sent = time.monotonic()
        index = PHASES.index(self.phase)
        phase_progress = {}
        for position, phase in enumerate(PHASES):
            if position < index:
                phase_progress[phase] = {"status": "COMPLETE", "percentComplete": 100}
            elif position == index:
                phase_progress[phase] = {"status": "PROGRESSING",
                                         "percentComplete": int(self.phase_percent)}
            else:
                phase_progress[phase] = {"status": "PENDING", "percentComplete": 0}
        self.runner.publisher.publish(self.job.identity, "STATUS_UPDATE", {"jobProgress": {
            "phaseProgress": phase_progress,
            "jobPercentComplete": self.job_percent(),
            "currentPhase": self.phase,
            "retryCount": 0,
        }})


def _check_canceled(job: JobRecord) -> None:
    if job.cancel_requested:
        raise JobCanceled()


def _input_details(job: JobRecord, info: dict[str, Any]) -> dict[str, Any]:
    videos = []
    for stream in info.get("streams", []):
        if stream.get("codec_type") != "video":
            continue
        numerator, _, denominator = stream.get("avg_frame_rate", "0/1").partition("/")
        frame_rate = float(numerator) / float(denominator) if float(denominator or 0) else 0.0
        videos.append({"streamId": stream.get("index"), "width": stream.get("width"),
                       "height": stream.get("height"), "frameRate": round(frame_rate, 3),
                       "codec": str(stream.get("codec_name", "")).upper()})
    return {"id": 1, "uri": str(job.plan.input_uri), "video": videos}


class WorkerPool:
    """``concurrency`` threads that take jobs from the store and run them."""

    def __init__(self, store: JobStore, runner: JobRunner, concurrency: int) -> None:
        self.store = store
        self.runner = runner
        self.threads = [threading.Thread(target=self._work, name=f"mediaconvert-worker-{index}",
                                         daemon=True)
                        for index in range(concurrency)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.store.stop()
        for thread in self.threads:
            thread.join(timeout=WORKER_JOIN_TIMEOUT_S)

    def _work(self) -> None:
        while True:
            job = self.store.next_job()
            if job is None:
                return
            self.runner.run(job)
