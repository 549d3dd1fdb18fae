"""Signal receivers that record every mc_tasks signal in a Redis list.

A stand-in for a host application's receivers in the demo and the end-to-end
tests: the worker imports this module (``MC_TASKS_CELERY_IMPORTS``), and the
process that submitted the job reads the list to follow the job. Each record is
a JSON object with ``signal`` and the signal's arguments; objects with a
``to_dict`` method are stored through it, and the ``event`` argument is left out.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from mc_tasks import signals
from mc_tasks.settings import Settings, get_settings

logger = logging.getLogger(__name__)

_SIGNALS = {
    "job_submitted": signals.job_submitted,
    "job_progressing": signals.job_progressing,
    "job_progress": signals.job_progress,
    "job_completed": signals.job_completed,
    "job_failed": signals.job_failed,
    "job_canceled": signals.job_canceled,
    "job_info": signals.job_info,
}


def records_key(settings: Settings) -> str:
    """Return the key of the Redis list that contains the recorded signals."""
    return f"{settings.redis_key_prefix}:recorded_signals"


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return value


def _make_receiver(name: str) -> Any:
    def receive(sender: object = None, **kwargs: Any) -> None:
        settings = get_settings()
        record = {"signal": name}
        record.update({key: _jsonable(value) for key, value in kwargs.items()
                       if key not in ("signal", "event")})
        connection = redis.Redis.from_url(settings.redis_url)
        try:
            connection.rpush(records_key(settings), json.dumps(record, default=str))
        finally:
            connection.close()
        logger.info("Recorded %s for job %s", name, kwargs.get("job_id"))

    return receive


_receivers = {name: _make_receiver(name) for name in _SIGNALS}
for _name, _signal in _SIGNALS.items():
    _signal.connect(_receivers[_name], weak=False)


def read_records(settings: Settings, start: int = 0) -> list[dict[str, Any]]:
    """Return the recorded signals from index ``start`` on."""
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        raw = connection.lrange(records_key(settings), start, -1)
    finally:
        connection.close()
    return [json.loads(item) for item in raw]
