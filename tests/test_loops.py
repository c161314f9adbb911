"""`stores.loops.running_loop()`: asyncio's running loop, remembered per thread, never a
stale one (stores/loops.py). Real event loops, one after the other and side by side."""

from __future__ import annotations

import asyncio
import threading

import pytest
import uvloop

from recordbase.stores.loops import running_loop


async def _both() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
    return running_loop(), asyncio.get_running_loop()


def test_it_answers_the_running_loop_and_follows_a_new_one() -> None:
    seen = []
    for new_loop in (asyncio.new_event_loop, uvloop.new_event_loop, asyncio.new_event_loop):
        loop = new_loop()
        try:
            mine, theirs = loop.run_until_complete(_both())
            again, _ = loop.run_until_complete(_both())
        finally:
            loop.close()
        assert mine is theirs is again is loop
        seen.append(mine)
    assert len({id(loop) for loop in seen}) == 3


def test_outside_a_loop_it_raises_as_asyncio_does() -> None:
    asyncio.run(_both())  # this thread saw a loop, which has stopped since
    with pytest.raises(RuntimeError):
        running_loop()


def test_each_thread_gets_its_own_loop() -> None:
    found: dict[str, tuple[object, object]] = {}
    started = threading.Barrier(2)

    def run(name: str) -> None:
        async def main() -> None:
            started.wait(5)  # both loops run at the same time
            found[name] = (running_loop(), asyncio.get_running_loop())
            await asyncio.sleep(0.05)
            assert running_loop() is asyncio.get_running_loop()

        asyncio.run(main())

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert found["a"][0] is found["a"][1] and found["b"][0] is found["b"][1]
    assert found["a"][0] is not found["b"][0]
