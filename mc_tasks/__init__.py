"""Celery tasks for AWS Elemental MediaConvert.

Submit transcodes with :func:`submit_transcode` (``.delay(...)``), drain the job
state change events that EventBridge puts in SQS with the beat task
:func:`drain_status_queue`, and receive the results through the signals in
:mod:`mc_tasks.signals`.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from mc_tasks.beat import beat_schedule
from mc_tasks.errors import (
    ConfigurationError,
    InvalidJobError,
    McTasksError,
    MediaConvertError,
    ProvisioningError,
)
from mc_tasks.settings import Settings, get_settings
from mc_tasks.signals import (
    job_canceled,
    job_completed,
    job_failed,
    job_info,
    job_progress,
    job_progressing,
    job_submitted,
)

if TYPE_CHECKING:
    from mc_tasks.tasks import (
        cancel_job,
        drain_status_queue,
        get_queue_status,
        reconcile_jobs,
        setup_event_delivery,
        submit_transcode,
    )

#: Celery tasks, imported on first access so that ``import mc_tasks.settings``
#: and the other plain modules do not load every task module.
_TASKS = frozenset({
    "cancel_job",
    "drain_status_queue",
    "get_queue_status",
    "reconcile_jobs",
    "setup_event_delivery",
    "submit_transcode",
})


def __getattr__(name: str) -> Any:
    if name in _TASKS:
        from mc_tasks import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'mc_tasks' has no attribute {name!r}")


try:
    __version__ = version("mc_tasks")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "ConfigurationError",
    "InvalidJobError",
    "McTasksError",
    "MediaConvertError",
    "ProvisioningError",
    "Settings",
    "__version__",
    "beat_schedule",
    "cancel_job",
    "drain_status_queue",
    "get_queue_status",
    "get_settings",
    "job_canceled",
    "job_completed",
    "job_failed",
    "job_info",
    "job_progress",
    "job_progressing",
    "job_submitted",
    "reconcile_jobs",
    "setup_event_delivery",
    "submit_transcode",
]
