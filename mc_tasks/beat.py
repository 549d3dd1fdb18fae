"""The celery beat schedule of mc_tasks, for the host's Celery configuration."""

from __future__ import annotations

from typing import Any

from mc_tasks.settings import Settings, get_settings

#: Seconds between two reconciliation runs.
DEFAULT_RECONCILE_INTERVAL_S = 300.0


def beat_schedule(settings: Settings | None = None, *,
                  reconcile_interval_s: float = DEFAULT_RECONCILE_INTERVAL_S) -> dict[str, Any]:
    """Return the beat entries that drain the SQS queue and reconcile silent jobs.

    Merge the result into the host's ``beat_schedule``. A drain message expires
    after one interval, so ticks that wait in the broker while workers are busy
    do not pile up into a burst of runs.
    """
    settings = settings or get_settings()
    return {
        "mc_tasks.drain_status_queue": {
            "task": "mc_tasks.drain_status_queue",
            "schedule": settings.drain_interval_s,
            "options": {"expires": settings.drain_interval_s},
        },
        "mc_tasks.reconcile_jobs": {
            "task": "mc_tasks.reconcile_jobs",
            "schedule": reconcile_interval_s,
            "options": {"expires": reconcile_interval_s},
        },
    }
