"""Run moto's server with SQS fixes: deletes safe against sends, cheaper receives and sends.

moto's server handles each request in its own thread. In moto 5.2.6, SQS's
``Queue.delete_message`` rebuilds the queue's message list from a
copy and assigns it back, without the lock that ``Queue.add_message`` holds
while it appends. A SendMessage that lands between the copy and the assignment
is dropped without an error: the sender got a message id, and no consumer ever
receives the message. In a check with one sending and three receiving and
deleting threads, 0 to 2 of 3,000 messages were lost per run.

:func:`serialize_sqs_deletes` makes ``delete_message`` hold the queue's message
lock, so deletions and appends of one queue no longer interleave.

moto's ReceiveMessage also checks each returned message's retention period
through ``get_queue_attributes``, which builds every attribute of the queue,
ApproximateNumberOfMessages included, several times: a scan of the whole queue
per name. So a receive costs time in proportion to ten times the queue depth.
:func:`read_retention_directly` reads the queue's retention period from its
attribute instead, with the same result.

SendMessage builds the same attributes once per message, only to read
ContentBasedDeduplication, an attribute that standard queues do not have.
:func:`skip_attributes_on_standard_send` gives that lookup an empty mapping
while a message is sent to a standard queue, in the sending thread only.

Running this module starts moto's server with these changes; its arguments are
moto's (``python -m mc_tasks.local.moto_server -H 127.0.0.1 -p PORT``).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

#: Attribute set on a replacement method, so a second call does not wrap it again.
_PATCHED_MARKER = "_mc_tasks_patched"


def _replace_method(owner: type, name: str,
                    wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``owner.name`` by ``wrap(original)`` once; calling it again changes nothing."""
    original = getattr(owner, name)
    if getattr(original, _PATCHED_MARKER, False):
        return
    replacement = functools.wraps(original)(wrap(original))
    setattr(replacement, _PATCHED_MARKER, True)
    setattr(owner, name, replacement)


def serialize_sqs_deletes() -> None:
    """Make moto's SQS ``Queue.delete_message`` take the queue's message lock."""
    from moto.sqs.models import Queue

    def wrap(original: Callable[..., None]) -> Callable[..., None]:
        def delete_message(self: Any, receipt_handle: str) -> None:
            lock = getattr(self, "_messages_lock", None)
            if lock is None:
                original(self, receipt_handle)
                return
            with lock:
                original(self, receipt_handle)
        return delete_message

    _replace_method(Queue, "delete_message", wrap)


def read_retention_directly() -> None:
    """Make moto's SQS retention check read the queue's attribute."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def wrap(original: Callable[..., bool]) -> Callable[..., bool]:
        def is_message_valid_based_on_retention_period(self: Any, queue_name: str,
                                                       message: Any) -> bool:
            retention_s = getattr(self.get_queue(queue_name), "message_retention_period", None)
            if retention_s is None:
                return bool(original(self, queue_name, message))
            return bool(int(retention_s) + message.sent_timestamp / 1000 > unix_time())
        return is_message_valid_based_on_retention_period

    _replace_method(SQSBackend, "is_message_valid_based_on_retention_period", wrap)


def skip_attributes_on_standard_send() -> None:
    """Make moto's SQS SendMessage skip building the attributes of a standard queue."""
    from moto.sqs.models import Queue, SQSBackend

    queue_attributes = Queue.__dict__.get("attributes")
    if not isinstance(queue_attributes, property) or queue_attributes.fget is None:
        return
    build_attributes = queue_attributes.fget

    def attributes(self: Any) -> Any:
        if getattr(_sending, "queue", None) is self:
            return {}
        return build_attributes(self)

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def send_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            queue = self.get_queue(queue_name)
            if queue.fifo_queue:
                return original(self, queue_name, *args, **kwargs)
            _sending.queue = queue
            try:
                return original(self, queue_name, *args, **kwargs)
            finally:
                _sending.queue = None
        return send_message

    if not getattr(build_attributes, _PATCHED_MARKER, False):
        setattr(attributes, _PATCHED_MARKER, True)
        Queue.attributes = property(functools.wraps(build_attributes)(attributes))  # type: ignore[method-assign,assignment]
    _replace_method(SQSBackend, "send_message", wrap)


#: The standard queue the current thread is sending a message to, if any.
_sending = threading.local()


def main(argv: list[str] | None = None) -> None:
    """Start moto's server with the SQS changes of this module applied."""
    serialize_sqs_deletes()
    read_retention_directly()
    skip_attributes_on_standard_send()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
