"""boto3 clients, created once per process and reused.

Creating a client costs tens of milliseconds, so each worker process keeps one
client per (service, region). The cache is cleared in a child after ``fork``
(Celery's prefork pool), because a client's connection pool must not be shared
between processes. boto3 clients are thread-safe once created; creation is
guarded by a lock because boto3 sessions are not.

Retries: botocore's "standard" retry mode retries throttling, 5xx and
connection errors up to ``Settings.aws_max_attempts`` attempts in total, with
exponential backoff and jitter. Celery-level retries in :mod:`mc_tasks.tasks`
start only after botocore has given up, so the two layers multiply: the worst
case is ``aws_max_attempts`` × the task's ``max_retries + 1`` calls.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

from mc_tasks.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_mediaconvert import MediaConvertClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

#: Seconds to wait for a TCP connection to an AWS endpoint.
CONNECT_TIMEOUT_S = 5
#: Seconds to wait for a response; above SQS's 20-second long poll.
READ_TIMEOUT_S = 35

#: Services whose clients skip botocore's parameter validation. mc_tasks validates
#: every CreateJob request against botocore's model before sending it
#: (mc_tasks.validation), and it builds every SQS request itself from validated
#: settings. botocore's pass would only cost CPU time: about 40 us per
#: ReceiveMessage and DeleteMessageBatch pair on the benchmark machine.
UNVALIDATED_SERVICES = frozenset({"mediaconvert", "sqs"})

_lock = threading.Lock()
_clients: dict[tuple[str, str, int], Any] = {}


def _clear_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _clients.clear()
    _account_ids.clear()


os.register_at_fork(after_in_child=_clear_after_fork)


def client_config(settings: Settings) -> Config:
    """Return the botocore configuration used for every client of mc_tasks."""
    return Config(
        region_name=settings.region,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        max_pool_connections=20,
    )


@overload
def get_client(service: Literal["mediaconvert"], settings: Settings | None = ...
               ) -> MediaConvertClient: ...
@overload
def get_client(service: Literal["sqs"], settings: Settings | None = ...) -> SQSClient: ...
@overload
def get_client(service: Literal["events"], settings: Settings | None = ...
               ) -> EventBridgeClient: ...
@overload
def get_client(service: Literal["s3"], settings: Settings | None = ...) -> S3Client: ...
@overload
def get_client(service: Literal["iam"], settings: Settings | None = ...) -> IAMClient: ...
@overload
def get_client(service: Literal["sts"], settings: Settings | None = ...) -> STSClient: ...
def get_client(service: str, settings: Settings | None = None) -> Any:
    """Return this process's client for ``service``, creating it on first use.

    Endpoints come from boto3's own variables (``AWS_ENDPOINT_URL_<SERVICE>``
    or ``AWS_ENDPOINT_URL``), read when the client is created.
    """
    settings = settings or get_settings()
    key = (service, settings.region, settings.aws_max_attempts)
    client = _clients.get(key)
    if client is not None:
        return client

    with _lock:
        client = _clients.get(key)
        if client is None:
            session = boto3.session.Session()
            config = client_config(settings)
            if service in UNVALIDATED_SERVICES:
                config = config.merge(Config(parameter_validation=False))
            client = session.client(service, config=config)  # type: ignore[call-overload]
            _clients[key] = client
    return client


def clear_clients() -> None:
    """Drop every cached client and account id; the next call creates them anew."""
    with _lock:
        _clients.clear()
        _account_ids.clear()


_account_ids: dict[str, str] = {}


def caller_account_id(settings: Settings | None = None) -> str:
    """Return the AWS account id of the credentials in use (STS GetCallerIdentity), cached.

    GetCallerIdentity needs no IAM permission. The drain compares it with each
    event's account, so events of another account never fire signals.
    """
    settings = settings or get_settings()
    account_id = _account_ids.get(settings.region)
    if account_id is None:
        account_id = get_client("sts", settings).get_caller_identity()["Account"]
        _account_ids[settings.region] = account_id
    return account_id
