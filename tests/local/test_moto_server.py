"""moto's server as the local stack runs it: SQS deletions serialized with sends."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
from moto import mock_aws
from moto.sqs.models import Queue, SQSBackend, sqs_backends

from mc_tasks.local import moto_server
from mc_tasks.local.moto_server import (
    read_retention_directly,
    serialize_sqs_deletes,
    skip_attributes_on_standard_send,
)

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


def test_standard_send_keeps_queue_counts() -> None:
    skip_attributes_on_standard_send()
    skip_attributes_on_standard_send()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="standard")["QueueUrl"]
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(index), "MessageBody": f"body-{index}"} for index in range(3)])

        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]

    assert attributes == {"ApproximateNumberOfMessages": "3"}


def test_fifo_send_still_deduplicates() -> None:
    skip_attributes_on_standard_send()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="ordered.fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        for _ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="group")

        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]

    assert attributes == {"ApproximateNumberOfMessages": "1"}


def test_other_threads_see_full_attributes() -> None:
    skip_attributes_on_standard_send()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="shared")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="one")
        queue = sqs_backends[ACCOUNT_ID][REGION].get_queue("shared")
        seen: list[Any] = []
        # This thread is in the middle of a send to the queue.
        moto_server._sending.queue = queue
        try:
            reader = threading.Thread(target=lambda: seen.append(queue.attributes))
            reader.start()
            reader.join(timeout=5)
            own = queue.attributes
        finally:
            moto_server._sending.queue = None

    assert own == {}
    assert seen[0]["ApproximateNumberOfMessages"] == 1
