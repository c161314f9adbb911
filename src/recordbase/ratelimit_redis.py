"""Token buckets in Redis, shared by every worker: one atomic Lua script per request.

The script reads the bucket (a small hash: tokens, last time), refills it for the time passed,
takes a token if there is one, writes it back and sets an expiry of one full refill (an idle
bucket is a full bucket, so letting Redis forget it changes nothing). Redis runs a script as one
step, so concurrent workers can never both spend the last token. Time comes from Redis's own
`TIME`, so workers with skewed clocks still agree; tests pass an explicit clock instead.

When Redis cannot be reached, `take` raises; the middleware then admits or refuses by
`ratelimit_fail_open` and logs it. After a failure the limiter does not try Redis again for
`retry_seconds`, so an outage costs one timeout, not one per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from recordbase.ratelimit import Decision, decide

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, now (seconds; "" = ask Redis).
# Returns the tokens in the bucket after refill and before this request took one, as text
# (Lua numbers would be truncated to integers in the reply).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[3])
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local before = tokens
if tokens >= 1 then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts',
  string.format('%.6f', now))
local ttl = 86400
if rate > 0 then ttl = math.ceil(burst / rate) + 1 end
redis.call('EXPIRE', KEYS[1], ttl)
return string.format('%.6f', before)
"""


class RedisUnavailable(Exception):
    """Redis did not answer (or answered with an error); see `ratelimit_fail_open`."""


class RedisLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "recordbase:rl:",
        clock: Callable[[], float] | None = None,
        retry_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock  # None: Redis's own clock (shared by every worker)
        self.retry_seconds = retry_seconds
        self.monotonic = monotonic
        self._script: Any = client.register_script(_TAKE)
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> RedisLimiter:
        client = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
        )
        return cls(client, **kw)

    def take_now(self, key: str, rate: float, burst: int) -> None:
        """Never at once: the bucket is in Redis (await `take`)."""
        return None

    async def take(self, key: str, rate: float, burst: int) -> Decision:
        if self.monotonic() < self._down_until:
            raise RedisUnavailable("Redis was unreachable moments ago; not retrying yet")
        now = "" if self.clock is None else repr(float(self.clock()))
        try:
            raw = await self._script(keys=[self.prefix + key], args=[rate, burst, now])
        except (RedisError, OSError) as exc:
            self._down_until = self.monotonic() + self.retry_seconds
            raise RedisUnavailable(str(exc)) from exc
        _tokens, decision = decide(float(raw), rate, burst)
        return decision

    async def close(self) -> None:
        await self.client.aclose()
