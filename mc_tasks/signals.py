"""Signals fired by mc_tasks in the host application.

Connect receivers the Celery way::

    from mc_tasks.signals import job_completed

    @job_completed.connect
    def on_completed(sender, job_id, reference, outputs, **kwargs):
        ...

Every receiver must accept ``**kwargs`` so new arguments can be added. Every
signal carries ``job_id`` (the MediaConvert job id) and ``reference`` (the
host's reference given to ``submit_transcode``, or ``None`` for a job submitted
without one). ``sender`` is the name of the mc_tasks function that fired it.

Signals of the event path (everything but ``job_submitted``) fire from the
drain task in a Celery worker, once per job and state change. The exception
is a worker killed while receivers run: the signal fires again once the
event's lease expires, so receivers can use ``event.event_id`` to ignore a
repeat. See :mod:`mc_tasks.drain` for what happens when a receiver raises. They also fire
from reconciliation and ``cancel_job`` when those apply a state first; then
``event.origin`` is ``get_job`` or ``cancel`` instead of ``event``, and the
``outputs`` of ``job_completed`` have no file paths, because GetJob returns
none. A job's final signal fires once whichever path applies it.
"""

from __future__ import annotations

from celery.utils.dispatch import Signal

#: A job was created. Arguments: ``job_id``, ``reference``, ``queue`` (the queue
#: ARN or name the job went to), ``user_metadata`` (dict).
job_submitted = Signal(name="mc_tasks.job_submitted")

#: MediaConvert started transcoding (PROGRESSING). Arguments: ``job_id``,
#: ``reference``, ``event`` (:class:`mc_tasks.events.JobStateChange`).
job_progressing = Signal(name="mc_tasks.job_progressing")

#: A STATUS_UPDATE event. Arguments: ``job_id``, ``reference``, ``percent``
#: (int 0-100 or ``None``), ``phase`` (``PROBING``, ``TRANSCODING``,
#: ``UPLOADING`` or ``None``), ``event``.
job_progress = Signal(name="mc_tasks.job_progress")

#: The job finished (COMPLETE). Arguments: ``job_id``, ``reference``,
#: ``outputs`` (:class:`mc_tasks.events.JobOutputs`), ``event``.
job_completed = Signal(name="mc_tasks.job_completed")

#: The job failed (ERROR). Arguments: ``job_id``, ``reference``, ``error_code``
#: (int), ``error_message`` (str), ``permanent`` (bool: resubmitting the same job
#: fails again), ``event``.
job_failed = Signal(name="mc_tasks.job_failed")

#: The job was canceled (CANCELED). Arguments: ``job_id``, ``reference``, ``event``.
job_canceled = Signal(name="mc_tasks.job_canceled")

#: An informational event: INPUT_INFORMATION, NEW_WARNING or QUEUE_HOP.
#: Arguments: ``job_id``, ``reference``, ``status`` (str), ``event``.
job_info = Signal(name="mc_tasks.job_info")

__all__ = [
    "job_canceled",
    "job_completed",
    "job_failed",
    "job_info",
    "job_progress",
    "job_progressing",
    "job_submitted",
]
