"""Celery configuration for running mc_tasks as a standalone worker and beat.

Used by ``celery -A mc_tasks.celery_app worker`` and by ``make demo``. A host
application keeps its own Celery configuration instead and merges
``mc_tasks.beat_schedule()`` into its ``beat_schedule``.
"""

import os

from mc_tasks.beat import beat_schedule as _mc_tasks_beat_schedule
from mc_tasks.settings import get_settings

_settings = get_settings()

broker_url = os.environ.get("CELERY_BROKER_URL", _settings.redis_url)
result_backend = os.environ.get("CELERY_RESULT_BACKEND", _settings.redis_url)
task_default_queue = os.environ.get("MC_TASKS_CELERY_QUEUE", "mc_tasks")

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_expires = 24 * 3600

# A task is acknowledged after it ran, so a worker killed mid-task leaves it to
# be redelivered; the submission id makes the redelivered submission harmless.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
broker_connection_retry_on_startup = True
# A task taken by a worker that dies is redelivered after this many seconds. It
# must exceed the longest retry countdown (300 s), or a delayed retry would run
# twice; the submission id keeps a second run from creating a second job.
broker_transport_options = {"visibility_timeout": 900}

imports = ["mc_tasks.tasks"] + [
    name for name in os.environ.get("MC_TASKS_CELERY_IMPORTS", "").split(",") if name
]
beat_schedule = _mc_tasks_beat_schedule(_settings)
