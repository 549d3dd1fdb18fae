"""Settings reject values that pass a loose check but break later."""

from __future__ import annotations

import pytest

from mc_tasks.errors import ConfigurationError
from mc_tasks.settings import Settings

BASE_ENV = {"AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize(("variable", "value"), [
    ("MC_TASKS_MEDIACONVERT_ROLE_ARN", "arn:aws:iam::123456789012:role/MediaConvertRole\n"),
    ("AWS_SQS_QUEUE_NAME", "mediaconvert-messages\n"),
    ("MC_TASKS_DRAIN_INTERVAL_S", "inf"),
    ("MC_TASKS_DRAIN_INTERVAL_S", "1e300"),
    ("MC_TASKS_DRAIN_MAX_DURATION_S", "inf"),
    ("MC_TASKS_REDIS_URL", "redis://:pw@127.0.0.1:notaport/0"),
])
def test_invalid_value_names_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**BASE_ENV, variable: value})

    assert variable in str(caught.value)


def test_bad_redis_port_error_hides_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**BASE_ENV, "MC_TASKS_REDIS_URL": "redis://:s3cret@127.0.0.1:x/0"})

    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_repr_hides_redis_password() -> None:
    settings = Settings.from_env({**BASE_ENV,
                                  "MC_TASKS_REDIS_URL": "redis://user:s3cret@127.0.0.1:6379/0"})

    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.redis_url_masked
