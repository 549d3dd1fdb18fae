"""A Celery app for running mc_tasks on its own: ``celery -A mc_tasks.celery_app worker``.

It loads its configuration from the module named by ``MC_TASKS_CELERY_CONFIG``
(default ``celeryconfig``, the file at the repository root, which must be on
``sys.path``). Host applications use their own app instead: the tasks are
shared tasks and register with it.
"""

import os

from celery import Celery

app = Celery("mc_tasks")
app.config_from_object(os.environ.get("MC_TASKS_CELERY_CONFIG", "celeryconfig"))
