"""The whole local pipeline on one machine: moto, Redis, local MediaConvert, Celery.

:class:`LocalStack` starts moto's server (S3, SQS, EventBridge, IAM, STS), uses
the configured Redis when it responds or starts a throwaway ``redis-server``,
starts the local MediaConvert, and then Celery worker and beat processes on
demand. Every server binds to 127.0.0.1 and every process is stopped by its PID.
The stack's :attr:`LocalStack.env` points boto3 at those servers with fake
credentials, so nothing reaches AWS.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from pathlib import Path
from types import TracebackType

import redis

from mc_tasks.errors import LocalStackError
from mc_tasks.local.mediaconvert import start_local_mediaconvert
from mc_tasks.local.stack import (
    FAKE_AWS_ENVIRONMENT,
    ManagedProcess,
    start_moto_server,
    start_redis_server,
)
from mc_tasks.settings import DEFAULT_REDIS_URL, mask_url

logger = logging.getLogger(__name__)

#: Account id that moto reports for the fake credentials.
LOCAL_ACCOUNT_ID = "123456789012"
#: IAM role the local jobs name; the local MediaConvert only checks its format.
LOCAL_ROLE_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/MediaConvertLocalRole"
#: Directory that contains ``celeryconfig.py``, put on the workers' ``PYTHONPATH``.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
#: Drain interval of the local stack, short so that a demo job finishes quickly.
LOCAL_DRAIN_INTERVAL_S = 2.0


def redis_responds(url: str) -> bool:
    """Return True when a Redis server responds to PING at ``url``."""
    connection = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(connection.ping())
    except redis.RedisError:
        return False
    finally:
        connection.close()


class LocalStack:
    """Servers and Celery processes of a local run; use as a context manager."""

    def __init__(self, work_dir: Path, *, redis_url: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.work_dir = work_dir
        self.run_id = uuid.uuid4().hex[:8]
        self._requested_redis_url = redis_url
        self._extra_env = dict(extra_env or {})
        self.processes: list[ManagedProcess] = []
        self.env: dict[str, str] = {}
        self.moto_url = ""
        self.mediaconvert_url = ""
        self.redis_url = ""
        self._redis_process: ManagedProcess | None = None

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto, Redis (unless one responds) and the local MediaConvert."""
        if not (REPOSITORY_ROOT / "celeryconfig.py").exists():
            raise LocalStackError(
                f"celeryconfig.py was not found in {REPOSITORY_ROOT}: run the local stack "
                "from a checkout of the mc_tasks repository."
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        base_env = {key: value for key, value in os.environ.items()
                    if not key.startswith("AWS_")}
        base_env.update(FAKE_AWS_ENVIRONMENT)
        base_env["AWS_CONFIG_FILE"] = os.devnull
        base_env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

        moto, self.moto_url = start_moto_server(self.work_dir, env=base_env)
        self.processes.append(moto)
        base_env["AWS_ENDPOINT_URL"] = self.moto_url

        self.redis_url = self._choose_redis()

        mediaconvert, self.mediaconvert_url = start_local_mediaconvert(self.work_dir, env=base_env)
        self.processes.append(mediaconvert)

        self.env = dict(base_env)
        self.env.update({
            "AWS_ENDPOINT_URL_MEDIACONVERT": self.mediaconvert_url,
            "MC_TASKS_REDIS_URL": self.redis_url,
            "MC_TASKS_REDIS_PREFIX": f"mc_tasks_local:{self.run_id}",
            "MC_TASKS_CELERY_QUEUE": f"mc_tasks_local_{self.run_id}",
            "MC_TASKS_MEDIACONVERT_ROLE_ARN": LOCAL_ROLE_ARN,
            "MC_TASKS_DRAIN_INTERVAL_S": str(LOCAL_DRAIN_INTERVAL_S),
            "MC_TASKS_DRAIN_MAX_DURATION_S": str(LOCAL_DRAIN_INTERVAL_S),
            "MC_TASKS_CELERY_IMPORTS": "mc_tasks.local.recorder",
            "PYTHONPATH": os.pathsep.join(
                [str(REPOSITORY_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
            ),
        })
        self.env.update(self._extra_env)
        logger.info("Local stack %s: moto %s, MediaConvert %s, Redis %s", self.run_id,
                    self.moto_url, self.mediaconvert_url, mask_url(self.redis_url))

    def _choose_redis(self) -> str:
        url = self._requested_redis_url or os.environ.get("MC_TASKS_REDIS_URL", DEFAULT_REDIS_URL)
        if redis_responds(url):
            return url
        logger.info("No Redis responded at the configured URL; starting redis-server")
        process, url = start_redis_server(self.work_dir)
        self.processes.append(process)
        self._redis_process = process
        return url

    def redis_process_started(self) -> bool:
        """Return True when this stack runs its own redis-server."""
        return self._redis_process is not None

    def start_worker(self, name: str = "worker", concurrency: int = 2) -> ManagedProcess:
        """Start a Celery worker with the prefork pool; return its process."""
        process = ManagedProcess(
            f"celery {name}",
            [sys.executable, "-m", "celery", "-A", "mc_tasks.celery_app", "worker",
             "--loglevel=INFO", f"--concurrency={concurrency}", "--pool=prefork",
             f"--hostname={name}.{self.run_id}@localhost", "--without-gossip",
             "--without-mingle"],
            env=self.env, cwd=self.work_dir, log_path=self.work_dir / f"{name}.log",
        )
        self.processes.append(process)
        return process

    def start_beat(self) -> ManagedProcess:
        """Start celery beat with the mc_tasks schedule; return its process."""
        process = ManagedProcess(
            "celery beat",
            [sys.executable, "-m", "celery", "-A", "mc_tasks.celery_app", "beat",
             "--loglevel=INFO", f"--schedule={self.work_dir / 'beat-schedule'}"],
            env=self.env, cwd=self.work_dir, log_path=self.work_dir / "beat.log",
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """Stop every process this stack started, newest first."""
        while self.processes:
            process = self.processes.pop()
            try:
                process.stop()
            except Exception:
                logger.exception("Could not stop %s (PID %d)", process.name, process.pid)
