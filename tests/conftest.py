"""Shared fixtures: fake AWS credentials, a real Redis, moto's in-process mock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from mc_tasks.clients import clear_clients
from mc_tasks.local.stack import FAKE_AWS_ENVIRONMENT
from mc_tasks.settings import Settings, get_settings
from mc_tasks.signals import job_submitted
from tests.support import local_aws_servers

#: Redis used by the tests; a real server, isolated per test by a key prefix.
TEST_REDIS_URL = os.environ.get("MC_TASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# Set before any boto3 client exists, so no test can reach real AWS or the
# instance-metadata address.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ.update(FAKE_AWS_ENVIRONMENT)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    clear_clients()
    get_settings.cache_clear()
    yield
    clear_clients()
    get_settings.cache_clear()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"mc_tasks_test:{uuid.uuid4().hex[:12]}"
    yield prefix
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(connection.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        connection.delete(*keys)
    connection.close()


@pytest.fixture
def settings(redis_prefix: str) -> Settings:
    """Settings for a test: fake region, real Redis with a unique prefix, a valid role ARN."""
    return Settings(
        region="us-east-1",
        mediaconvert_role_arn="arn:aws:iam::123456789012:role/MediaConvertRole",
        redis_url=TEST_REDIS_URL,
        redis_key_prefix=redis_prefix,
        drain_interval_s=2.0,
        drain_max_duration_s=2.0,
    )


@pytest.fixture(scope="module")
def local_mediaconvert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's server and the local MediaConvert; aim the mediaconvert client at it."""
    log_dir = tmp_path_factory.mktemp("local-mediaconvert-logs")
    with local_aws_servers(log_dir) as (_, url), pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_MEDIACONVERT", url)
        clear_clients()
        yield url
    clear_clients()


@pytest.fixture
def submitted() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every job_submitted signal sent during the test."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        calls.append(kwargs)

    job_submitted.connect(receiver, weak=False)
    yield calls
    job_submitted.disconnect(receiver)
