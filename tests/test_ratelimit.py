"""Per-key token buckets through the real app: in memory with a fake clock, and in real Redis.

The Redis tests pass an explicit clock to the Lua script, so nothing sleeps; the multi-worker
test (test_workers.py) shows the shared bucket across processes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.ratelimit import MemoryLimiter, decide
from recordbase.ratelimit_redis import RedisLimiter, RedisUnavailable
from tests.conftest import REDIS_DEFAULT, Api, FakeClock, require_service


class Seconds:
    """A float clock for the limiters, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spend(api: Api, key: str, n: int) -> list[Any]:
    return [api.get("/v1/types", key=key) for _ in range(n)]


def test_bucket_headers_429_and_refill(
    make_api: Callable[..., Api], settings: Settings, clock: FakeClock
) -> None:
    seconds = Seconds()
    api = make_api(settings, limiter=MemoryLimiter(clock=seconds))
    key = api.new_key("types:read", rate=0.5, burst=3)
    answers = _spend(api, key, 4)
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert answers[2].headers["RateLimit-Reset"] == "6"  # 3 tokens at 0.5/s
    refused = answers[3]
    assert refused.headers["Retry-After"] == "2"  # one token at 0.5/s
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "rate_limited"
    seconds.now += 2
    assert api.get("/v1/types", key=key).status_code == 200
    assert api.get("/v1/types", key=key).status_code == 429


def test_keys_have_their_own_buckets_and_the_default(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = make_api(
        settings.replace(default_rate=1.0, default_burst=2), limiter=MemoryLimiter(Seconds())
    )
    small = api.new_key("types:read", rate=1.0, burst=1)
    plain = api.new_key("types:read")
    assert [r.status_code for r in _spend(api, small, 2)] == [200, 429]
    assert [r.status_code for r in _spend(api, plain, 3)] == [200, 200, 429]


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_DEFAULT


def test_redis_bucket_is_atomic_and_refills(redis_url: str) -> None:
    async def main() -> None:
        seconds = Seconds()
        limiter = RedisLimiter.from_url(redis_url, clock=seconds)
        key = uuid.uuid4().hex
        try:
            # 50 concurrent takes on a bucket of 10: the script runs whole, so exactly 10 win.
            decisions = await asyncio.gather(*(limiter.take(key, 0.25, 10) for _ in range(50)))
            assert sum(d.allowed for d in decisions) == 10
            refused = [d for d in decisions if not d.allowed]
            assert {d.retry_after for d in refused} == {4}
            seconds.now += 8  # two tokens back
            again = [await limiter.take(key, 0.25, 10) for _ in range(3)]
            assert [d.allowed for d in again] == [True, True, False]
            assert again[0].remaining == 1
        finally:
            await limiter.close()

    asyncio.run(main())


def test_redis_limits_through_the_app(make_api: Callable[..., Api], settings: Settings) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    api = make_api(settings.replace(redis_url=REDIS_DEFAULT))
    assert isinstance(api.app.state.limiter, RedisLimiter)
    key = api.new_key("types:read", rate=0.001, burst=2)
    answers = _spend(api, key, 3)
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[1].headers["RateLimit-Remaining"] == "0"
    assert int(answers[2].headers["Retry-After"]) > 0


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_down_fails_open_or_closed_and_logs(
    make_api: Callable[..., Api],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    fail_open: bool,
) -> None:
    down = f"redis://127.0.0.1:{_free_port()}/0"
    api = make_api(settings.replace(redis_url=down, ratelimit_fail_open=fail_open))
    with caplog.at_level(logging.WARNING, logger="recordbase"):
        answer = api.get("/v1/types")
    if fail_open:
        assert answer.status_code == 200
        assert "RateLimit-Limit" not in answer.headers
    else:
        assert answer.status_code == 503
        assert answer.json()["code"] == "unavailable"
    assert any("rate limiter unavailable" in r.getMessage() for r in caplog.records)


def test_redis_down_is_not_retried_at_once() -> None:
    async def main() -> None:
        ticks = Seconds()
        limiter = RedisLimiter.from_url(
            f"redis://127.0.0.1:{_free_port()}/0", monotonic=ticks, retry_seconds=5
        )
        try:
            for _ in range(2):
                with pytest.raises(RedisUnavailable):
                    await limiter.take("k", 1.0, 1)
            assert limiter._down_until == ticks.now + 5
        finally:
            await limiter.close()

    asyncio.run(main())


def test_memory_limiter_inline_answers_are_decide_s_answers() -> None:
    # take_now inlines decide's allowed case; both must give the same answers and buckets.
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    for rate, burst in [(10.0, 5), (0.5, 3), (100.0, 1), (0.0, 2), (3.0, 50)]:
        key = f"k{rate}-{burst}"
        tokens, at = float(burst), now[0]
        for step in range(60):
            now[0] += (step % 7) * 0.037
            expected_tokens = min(float(burst), tokens + (now[0] - at) * rate)
            tokens, expected = decide(expected_tokens, rate, burst)
            at = now[0]
            got = limiter.take_now(key, rate, burst)
            assert got == expected, (rate, burst, step)
            assert limiter._buckets[key] == (tokens, at)
        assert asyncio.run(limiter.take(key, rate, burst)).limit == burst
