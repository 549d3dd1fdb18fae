"""A rate limit on CreateJob shared by every worker, process and machine using one Redis.

The limit is a token bucket stored in the hash ``<prefix>:ratelimit:create_job``.
The bucket contains at most ``Settings.create_job_burst`` tokens and refills at
``Settings.create_job_rate_per_s`` tokens per second. One Lua script refills
the bucket by the time elapsed since its last use and takes a token, or
returns how long until the next token. Redis runs a script atomically and
the script reads the clock with Redis ``TIME``, so all callers share one
clock and never take more tokens in total than the bucket grants.

:meth:`CreateJobRateLimiter.claim` takes a token and sets a key in the same
script call, unless the key exists: a new submission takes its token and
writes its pending record (:mod:`mc_tasks.submissions`) in one round trip.

Limits: a caller that waits does not reserve a token, so under contention
a caller may wait again and tokens go to whoever asks first after the
refill, with no fairness. An idle bucket expires from Redis once it would
be full anyway. A rate of 0 disables the limit: :meth:`CreateJobRateLimiter.acquire`
then makes no Redis call, and a claim only sets its key.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mc_tasks.errors import RateLimitedError
from mc_tasks.resp import run_script
from mc_tasks.settings import Settings, get_settings
from mc_tasks.submissions import redis_client

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

logger = logging.getLogger(__name__)

#: Key suffix of the CreateJob token bucket, after ``Settings.redis_key_prefix``.
CREATE_JOB_BUCKET_SUFFIX = "ratelimit:create_job"
#: Milliseconds an idle bucket outlives the time it takes to fill up.
BUCKET_TTL_MARGIN_MS = 1000
#: Shortest sleep between two attempts to take a token, in seconds.
MIN_SLEEP_S = 0.001

#: Lua that defines ``take_token(bucket key, rate, burst, TTL margin ms)``: it refills
#: the bucket, takes a token and returns 0, or returns the milliseconds until one is
#: free. Every script that takes a CreateJob token begins with it.
BUCKET_TAKE_LUA = """
if redis.replicate_commands then
  redis.replicate_commands()
end
local function take_token(bucket_key, rate, burst, margin_ms)
  local clock = redis.call('TIME')
  local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

  local state = redis.call('HMGET', bucket_key, 'tokens', 'updated_us')
  local tokens = tonumber(state[1])
  local updated_us = tonumber(state[2])
  if tokens == nil or updated_us == nil then
    tokens = burst
    updated_us = now_us
  end

  local elapsed_us = math.max(0, now_us - updated_us)
  tokens = math.min(burst, tokens + elapsed_us * rate / 1000000)

  local wait_ms = 0
  if tokens >= 1 then
    tokens = tokens - 1
  else
    wait_ms = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end

  -- '%.0f' keeps all 16 digits of the microsecond clock, which tostring would round.
  redis.call('HSET', bucket_key, 'tokens', string.format('%.6f', tokens),
             'updated_us', string.format('%.0f', now_us))
  redis.call('PEXPIRE', bucket_key,
             string.format('%.0f', math.ceil(burst * 1000 / rate) + margin_ms))
  return wait_ms
end
"""

# KEYS[1]: the bucket hash. ARGV[1]: tokens per second. ARGV[2]: bucket size.
# ARGV[3]: TTL margin in ms. Returns 0 when a token was taken, else the
# milliseconds until one is free.
_BUCKET_LUA = BUCKET_TAKE_LUA + """
return take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"""

# KEYS[1]: the bucket hash. KEYS[2]: the key to claim. ARGV[1..3]: as in _BUCKET_LUA,
# and a rate of 0 takes no token. ARGV[4]: the value for KEYS[2]. ARGV[5]: its TTL
# in seconds. When KEYS[2] exists, returns its value (a string) and takes no token.
# Otherwise returns the milliseconds until a token is free, or 0 after taking a
# token and setting KEYS[2].
_CLAIM_LUA = BUCKET_TAKE_LUA + """
local current = redis.call('GET', KEYS[2])
if current then
  return current
end
local rate = tonumber(ARGV[1])
if rate > 0 then
  local wait_ms = take_token(KEYS[1], rate, tonumber(ARGV[2]), tonumber(ARGV[3]))
  if wait_ms > 0 then
    return wait_ms
  end
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
return 0
"""


@functools.lru_cache(maxsize=8)
def _scripts(connection: redis.Redis) -> tuple[Script, Script]:
    """Return the bucket and claim scripts registered on ``connection``, once per client."""
    return connection.register_script(_BUCKET_LUA), connection.register_script(_CLAIM_LUA)


class CreateJobRateLimiter:
    """The shared CreateJob token bucket of ``settings``, safe to use from several threads.

    Each try is one Redis call (EVALSHA of the bucket or the claim script).
    """

    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        self._settings = settings
        self._connection = connection or redis_client(settings.redis_url)
        self._take_token, self._claim = _scripts(self._connection)
        self.key = f"{settings.redis_key_prefix}:{CREATE_JOB_BUCKET_SUFFIX}"

    @property
    def enabled(self) -> bool:
        return self._settings.create_job_rate_per_s > 0

    def try_acquire(self) -> float:
        """Take a token if one is free and return 0.0, else the seconds until the next token."""
        if not self.enabled:
            return 0.0
        wait_ms = run_script(
            self._connection, self._take_token, [self.key],
            [repr(self._settings.create_job_rate_per_s), str(self._settings.create_job_burst),
             str(BUCKET_TTL_MARGIN_MS)],
        )
        return int(wait_ms) / 1000.0

    def acquire(self, timeout_s: float | None = None, *, submission_id: str | None = None
                ) -> float:
        """Take a token, sleeping while none is free, and return the seconds spent waiting.

        Waits at most ``timeout_s`` (default ``Settings.create_job_max_wait_s``).
        Raises :class:`~mc_tasks.errors.RateLimitedError` at once when the next
        token is not due within what is left of that time, so a caller never
        sleeps past it. Redis errors propagate unchanged.
        """
        return self._wait_for(self.try_acquire, timeout_s, submission_id)

    def claim(self, key: str, value: Callable[[], str], ttl_s: int, *,
              timeout_s: float | None = None, submission_id: str | None = None
              ) -> bytes | str | None:
        """Take a token and set ``key`` to ``value()`` in one script call, unless ``key`` exists.

        Returns the existing value of ``key``, without taking a token, or None
        after taking a token and setting ``key`` (which expires after ``ttl_s``
        seconds). ``value`` is called before each try. With the limit disabled
        no token is taken. Waits and raises like :meth:`acquire`, and leaves
        ``key`` unset when it raises RateLimitedError.
        """
        current: bytes | str | None = None
        rate = repr(self._settings.create_job_rate_per_s) if self.enabled else "0"

        def try_claim() -> float:
            nonlocal current
            reply = run_script(
                self._connection, self._claim, [self.key, key],
                [rate, str(self._settings.create_job_burst), str(BUCKET_TTL_MARGIN_MS), value(),
                 str(ttl_s)],
            )
            if isinstance(reply, int):
                return reply / 1000.0
            current = reply
            return 0.0

        self._wait_for(try_claim, timeout_s, submission_id)
        return current

    def _wait_for(self, try_once: Callable[[], float], timeout_s: float | None,
                  submission_id: str | None) -> float:
        timeout_s = self._settings.create_job_max_wait_s if timeout_s is None else timeout_s
        started = time.monotonic()
        deadline = started + timeout_s

        while True:
            wait_s = try_once()
            now = time.monotonic()
            if wait_s == 0.0:
                waited_s = now - started
                if waited_s > 0.5:
                    logger.info("Submission %s waited %.1f s for a CreateJob token (rate %g/s)",
                                submission_id, waited_s, self._settings.create_job_rate_per_s)
                return waited_s

            if now + wait_s > deadline:
                raise self._limited(wait_s, timeout_s, submission_id)
            # Up to 10 % jitter spreads callers that received the same wait.
            time.sleep(max(MIN_SLEEP_S, wait_s * (1 + 0.1 * random.random())))  # noqa: S311

    def _limited(self, wait_s: float, timeout_s: float, submission_id: str | None
                 ) -> RateLimitedError:
        rate = self._settings.create_job_rate_per_s
        refill_s = self._settings.create_job_burst / rate
        # Callers rejected together would retry together: spread them over one refill.
        retry_after_s = math.ceil(wait_s + random.uniform(0, refill_s))  # noqa: S311
        logger.warning("Submission %s got no CreateJob token within %g s (rate %g/s, burst %d); "
                       "retry in %d s", submission_id, timeout_s, rate,
                       self._settings.create_job_burst, retry_after_s)
        return RateLimitedError(
            f"No CreateJob token became free within {timeout_s:g} s: more than "
            f"MC_TASKS_CREATE_JOB_RATE={rate:g} submissions per second are being sent. "
            f"Retry in {retry_after_s} s, or raise MC_TASKS_CREATE_JOB_RATE (up to the account's "
            "CreateJob quota) or MC_TASKS_CREATE_JOB_MAX_WAIT_S.",
            retry_after_s=float(retry_after_s),
        )


def acquire_create_job_token(settings: Settings | None = None, *,
                             submission_id: str | None = None,
                             timeout_s: float | None = None) -> float:
    """Take a CreateJob token of the shared rate limit; see :meth:`CreateJobRateLimiter.acquire`."""
    settings = settings or get_settings()
    if settings.create_job_rate_per_s <= 0:
        return 0.0
    return CreateJobRateLimiter(settings).acquire(timeout_s, submission_id=submission_id)


__all__ = [
    "CREATE_JOB_BUCKET_SUFFIX",
    "CreateJobRateLimiter",
    "acquire_create_job_token",
]
