"""The job store, the queues and the API operations of the local MediaConvert.

Jobs live in memory and are lost when the server stops. A pool of worker
threads (``concurrency``, default 1) starts SUBMITTED jobs of ACTIVE queues,
highest Priority first and then oldest first. A PAUSED queue keeps accepting
jobs but starts none. Only the ``Default`` queue exists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from mc_tasks.local.mediaconvert.api_errors import BadRequest, Conflict, NotFound
from mc_tasks.local.mediaconvert.naming import (
    check_role_arn,
    job_arn,
    new_job_id,
    queue_arn,
    queue_name_from,
)
from mc_tasks.local.mediaconvert.plan import plan_job
from mc_tasks.local.mediaconvert.records import (
    CANCELED,
    FINAL_STATUSES,
    PROGRESSING,
    QUEUE_ACTIVE,
    SUBMITTED,
    JobRecord,
    QueueRecord,
)

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_NAME = "Default"
#: Seconds during which a repeated ClientRequestToken returns the job it first created.
IDEMPOTENCY_WINDOW_S = 60.0
#: Jobs per ListJobs page when MaxResults is absent, and the maximum allowed.
LIST_JOBS_PAGE_SIZE = 20
#: CreateJob Priority range.
MIN_PRIORITY, MAX_PRIORITY = -50, 50
DEFAULT_STATUS_UPDATE_INTERVAL = "SECONDS_60"

#: CreateJob members the local server implements or may ignore without changing the result.
_CREATE_JOB_MEMBERS = frozenset({
    "Role", "Settings", "Queue", "UserMetadata", "ClientRequestToken", "Priority",
    "StatusUpdateInterval", "Tags", "AccelerationSettings", "BillingTagsSource",
    "JobEngineVersion", "SimulateReservedQueue",
})


class JobStore:
    """Jobs and queues, guarded by one lock; workers wait on its condition for new work."""

    def __init__(self, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self.condition = threading.Condition()
        self.jobs: dict[str, JobRecord] = {}
        self.queues = {DEFAULT_QUEUE_NAME: QueueRecord(
            DEFAULT_QUEUE_NAME, queue_arn(region, account_id, DEFAULT_QUEUE_NAME))}
        self._tokens: dict[str, tuple[str, float]] = {}
        self.stopping = False

    # -- operations --------------------------------------------------------

    def create_job(self, params: Mapping[str, Any]) -> dict[str, Any]:
        unsupported = sorted(set(params) - _CREATE_JOB_MEMBERS)
        if unsupported:
            raise BadRequest(f"{unsupported[0]} is not supported by the local MediaConvert: "
                             "send Settings in the request instead.")
        check_role_arn(params["Role"])
        plan = plan_job(params["Settings"])
        priority = params.get("Priority", 0)
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise BadRequest(f"Priority={priority} is invalid: give a value from "
                             f"{MIN_PRIORITY} to {MAX_PRIORITY}.")
        token = params.get("ClientRequestToken")

        with self.condition:
            queue = self._queue(params.get("Queue", DEFAULT_QUEUE_NAME))
            repeated = self._job_for_token(token)
            if repeated is not None:
                logger.info("Job %s returned again for its ClientRequestToken", repeated.id)
                return {"Job": repeated.to_api()}
            job_id = new_job_id()
            job = JobRecord(
                id=job_id,
                arn=job_arn(self.region, self.account_id, job_id),
                queue=queue,
                role=params["Role"],
                settings=params["Settings"],
                plan=plan,
                user_metadata=dict(params.get("UserMetadata", {})),
                priority=priority,
                status_update_interval=params.get("StatusUpdateInterval",
                                                  DEFAULT_STATUS_UPDATE_INTERVAL),
                client_request_token=token,
                tags=dict(params.get("Tags", {})),
                acceleration_settings=params.get("AccelerationSettings"),
            )
            self.jobs[job_id] = job
            if token:
                self._tokens[token] = (job_id, time.monotonic())
            self.condition.notify_all()
        logger.info("Job %s submitted to queue %s", job_id, queue.name)
        return {"Job": job.to_api()}

    def get_job(self, params: Mapping[str, Any]) -> dict[str, Any]:
        with self.condition:
            return {"Job": self._job(params["Id"]).to_api()}

    def list_jobs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        page_size = params.get("MaxResults", LIST_JOBS_PAGE_SIZE)
        if not 1 <= page_size <= LIST_JOBS_PAGE_SIZE:
            raise BadRequest(f"MaxResults={page_size} is invalid: give 1 to "
                             f"{LIST_JOBS_PAGE_SIZE}.")
        start = _page_start(params.get("NextToken"))
        with self.condition:
            jobs = list(self.jobs.values())
            if "Queue" in params:
                queue = self._queue(params["Queue"])
                jobs = [job for job in jobs if job.queue is queue]
            if "Status" in params:
                jobs = [job for job in jobs if job.status == params["Status"]]
            jobs.sort(key=lambda job: job.submit_time,
                      reverse=params.get("Order", "DESCENDING") == "DESCENDING")
            page = [job.to_api() for job in jobs[start:start + page_size]]
        result: dict[str, Any] = {"Jobs": page}
        if start + page_size < len(jobs):
            result["NextToken"] = str(start + page_size)
        return result

    def cancel_job(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Cancel a job; a SUBMITTED job ends at once and with no event, as in AWS.

        A PROGRESSING job has its ffmpeg process killed; its runner then moves
        it to CANCELED and sends the CANCELED event.
        """
        with self.condition:
            job = self._job(params["Id"])
            if job.status in FINAL_STATUSES:
                raise Conflict(f"Job {job.id} cannot be canceled: its status is {job.status}.")
            job.cancel_requested = True
            if job.status == SUBMITTED:
                job.status = CANCELED
                job.finish_time = time.time()
                logger.info("Job %s canceled before it started", job.id)
                return {}
            process = job.process
        logger.info("Job %s: cancel requested while it runs", job.id)
        if process is not None and process.poll() is None:
            process.kill()
        return {}

    def get_queue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        with self.condition:
            return {"Queue": self._queue_api(self._queue(params["Name"]))}

    def list_queues(self, params: Mapping[str, Any]) -> dict[str, Any]:
        with self.condition:
            queues = sorted(self.queues.values(), key=lambda queue: queue.name,
                            reverse=params.get("Order") == "DESCENDING")
            return {"Queues": [self._queue_api(queue) for queue in queues]}

    def update_queue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        with self.condition:
            queue = self._queue(params["Name"])
            if "Status" in params:
                queue.status = params["Status"]
            if "Description" in params:
                queue.description = params["Description"]
            queue.last_updated = time.time()
            self.condition.notify_all()
            logger.info("Queue %s is now %s", queue.name, queue.status)
            return {"Queue": self._queue_api(queue)}

    # -- worker side -------------------------------------------------------

    def next_job(self) -> JobRecord | None:
        """Wait for a job to start and mark it PROGRESSING; return None once stopping."""
        with self.condition:
            while not self.stopping:
                ready = [job for job in self.jobs.values()
                         if job.status == SUBMITTED and job.queue.status == QUEUE_ACTIVE]
                if ready:
                    job = min(ready, key=lambda job: (-job.priority, job.submit_time))
                    job.status = PROGRESSING
                    job.start_time = time.time()
                    job.percent_complete = 0
                    return job
                self.condition.wait()
            return None

    def stop(self) -> None:
        """Wake the workers so they exit, and kill the ffmpeg processes still running."""
        with self.condition:
            self.stopping = True
            self.condition.notify_all()
            processes = [job.process for job in self.jobs.values() if job.process is not None]
        for process in processes:
            if process.poll() is None:
                process.kill()

    # -- helpers (call with the lock held) ----------------------------------

    def _job(self, job_id: str) -> JobRecord:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"Job {job_id} was not found.")
        return job

    def _queue(self, name_or_arn: str) -> QueueRecord:
        queue = self.queues.get(queue_name_from(name_or_arn))
        if queue is None or (name_or_arn.startswith("arn:") and name_or_arn != queue.arn):
            raise NotFound(f"Queue {name_or_arn} was not found: the local MediaConvert has "
                           f"only {queue_arn(self.region, self.account_id, DEFAULT_QUEUE_NAME)}.")
        return queue

    def _queue_api(self, queue: QueueRecord) -> dict[str, Any]:
        statuses = [job.status for job in self.jobs.values() if job.queue is queue]
        return queue.to_api(statuses.count(SUBMITTED), statuses.count(PROGRESSING))

    def _job_for_token(self, token: str | None) -> JobRecord | None:
        if not token or token not in self._tokens:
            return None
        job_id, created = self._tokens[token]
        if time.monotonic() - created > IDEMPOTENCY_WINDOW_S:
            del self._tokens[token]
            return None
        return self.jobs[job_id]


def _page_start(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise BadRequest(f"NextToken={token!r} is invalid: pass the value a ListJobs call "
                         "returned.")
    return int(token)
