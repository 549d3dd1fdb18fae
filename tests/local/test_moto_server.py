"""moto's server as the local stack runs it: SQS deletions serialized with sends."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
from moto import mock_aws
from moto.sqs.models import Queue, SQSBackend, sqs_backends

from mc_tasks.local.moto_server import read_retention_directly, serialize_sqs_deletes

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


def test_delete_waits_for_queue_lock() -> None:
    serialize_sqs_deletes()
    serialize_sqs_deletes()  # a second call must not wrap the method twice
    layers = 0
    method: object = Queue.delete_message
    while hasattr(method, "__wrapped__"):
        method = method.__wrapped__
        layers += 1
    assert layers == 1

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="serialized")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="one")
        handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
        queue = sqs_backends[ACCOUNT_ID][REGION].get_queue("serialized")

        deleter = threading.Thread(target=queue.delete_message, args=(handle,))
        with queue._messages_lock:
            deleter.start()
            deleter.join(timeout=0.3)
            # The delete waits while another thread has the lock, as add_message does.
            assert deleter.is_alive()
            assert len(queue._messages) == 1
        deleter.join(timeout=5)
        assert not deleter.is_alive()
        assert queue._messages == []


def test_retention_check_reads_attribute() -> None:
    read_retention_directly()
    read_retention_directly()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})
        backend = sqs_backends[ACCOUNT_ID][REGION]
        queue = backend.get_queue("retention")
        url = sqs.get_queue_url(QueueName="retention")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="fresh")
        sqs.send_message(QueueUrl=url, MessageBody="expired")
        fresh, expired = queue._messages
        patched: Any = SQSBackend.is_message_valid_based_on_retention_period
        original = patched.__wrapped__
        # Sent 61 s ago: past the queue's 60 s retention period.
        expired.sent_timestamp = int(time.time() * 1000) - 61_000  # type: ignore[assignment]

        assert backend.is_message_valid_based_on_retention_period("retention", fresh)
        assert not backend.is_message_valid_based_on_retention_period("retention", expired)
        assert original(backend, "retention", fresh)
        assert not original(backend, "retention", expired)
