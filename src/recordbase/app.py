"""create_app: the only place where recordbase is wired together.

Settings, store, service, limiter and faces meet here; everything else receives what it needs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from recordbase.config import Settings
from recordbase.core.clock import Clock, NewId, new_ulid, system_clock
from recordbase.core.service import RecordService
from recordbase.core.store import Store
from recordbase.errors import MethodNotAllowed, RecordbaseError, RouteNotFound
from recordbase.ratelimit import Limiter, MemoryLimiter
from recordbase.stores import open_store
from recordbase.web.dispatch import Direct, Found, WriteWhole
from recordbase.web.faces import keywords, zendesk
from recordbase.web.http import JSONResponse
from recordbase.web.middleware import Face, Pipeline
from recordbase.web.native import docs
from recordbase.web.native.routes import render_problem
from recordbase.web.native.routes import routes as native_routes

log = logging.getLogger("recordbase")

NATIVE = Face("native", ("/v1",), render_problem)


def faces() -> list[tuple[Face, list[BaseRoute]]]:
    """Every face with its routes. A new face adds one line here and a folder in web/faces."""
    return [
        (NATIVE, list(native_routes())),
        (keywords.FACE, list(keywords.routes())),
        (zendesk.FACE, zendesk.routes()),
    ]


async def healthz(request: Request) -> Response:
    # The pid tells which worker answered (several workers share one port).
    store = request.app.state.service.store.info()
    return JSONResponse({"status": "ok", "pid": os.getpid(), "store": store})


def _render(request: Request, error: RecordbaseError) -> Response:
    face: Face = request.scope.get("state", {}).get("face", NATIVE)
    response = face.render_error(error, request)
    for name, value in error.headers.items():
        response.headers.setdefault(name, value)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error: RecordbaseError = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}."
        )
    else:
        error = RouteNotFound(f"No route {request.method} {request.url.path}.")
    return _render(request, error)


async def _known_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecordbaseError)
    return _render(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(request, RecordbaseError("An unexpected error occurred; it has been logged."))


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    new_id: NewId | None = None,
    limiter: Limiter | None = None,
    tune_gc: bool = False,
) -> Any:
    """The ASGI app. `tune_gc`: set the garbage collector up for serving once started
    (`tune_collector`); `recordbase serve` asks for it, tests and embedders do not."""
    settings = settings or Settings.from_env()
    store = store or open_store(settings)
    service = RecordService(store, settings, clock=clock or system_clock, new_id=new_id or new_ulid)
    limiter = limiter or _default_limiter(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        if tune_gc and settings.gc_threshold > 0:
            tune_collector(settings.gc_threshold)
        if tune_gc and settings.malloc_keep_mb > 0:
            tune_malloc(settings.malloc_keep_mb)
        if settings.job_worker:
            service.jobs.start()
        try:
            yield
        finally:
            await limiter.close()
            await service.close()

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    routes += docs.routes(settings)
    wired = faces()
    for _face, face_routes in wired:
        routes += face_routes
    inner = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            RecordbaseError: _known_error,
            Exception: _unexpected_error,
        },
    )
    inner.state = AppState()
    inner.state.settings = settings
    inner.state.service = service
    inner.state.limiter = limiter
    # Direct calls plain handlers without Starlette's per-request layers (web/dispatch.py).
    return _Outer(Pipeline(Direct(inner), [f for f, _ in wired], NATIVE), inner)


def serve_app() -> Any:
    """The app each `recordbase serve` worker runs: create_app with the collector tuned."""
    return create_app(tune_gc=True)


def tune_collector(threshold: int) -> None:
    """Python's collector, set up for a server that has started.

    At the default threshold (700 net new container objects) the objects of the ~32 requests
    in flight alone set off a young collection every few requests, and what survives them
    soon sets off full collections: over 8 s of single creates, 1,900 young and 16 full
    collections, the full ones up to 24 ms each, which were most of the p99 latency
    (docs/performance.md). Objects alive at start (modules, routes, caches) are frozen out
    of the walks, and the first generation waits for `threshold` objects; cycles are still
    collected. The default, 50,000, is above the ~30,000 containers that 32 in-flight
    100-record batches hold alive: at 10,000 each young collection walked and promoted them
    (~3 ms each, a fifth of the event loop's CPU per batch; docs/performance.md, round 9).
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(threshold, middle, old)


# glibc's per-thread cache of freed small blocks, per size class (glibc's default: 7)
TCACHE_COUNT = 256
# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_malloc(keep_mb: int) -> bool:
    """glibc's malloc, set up for a server: freed memory is kept for the next requests.

    By default glibc hands the top of its heap back to the kernel as soon as 128 KiB of it
    are free, and the next request's bodies and answers (a 100-record batch: 20 KB in,
    52 KB out, and their parsed objects) fault fresh zeroed pages in again: ~5% of the event
    loop's CPU under batches of 100, in the kernel (`clear_page`; docs/performance.md, round
    14). Here the heap keeps up to `keep_mb` MiB free before it shrinks, grows by a quarter
    of that at a time, and allocations up to 4 MiB come from it rather than from their own
    `mmap`. Setting these also stops glibc's own moving mmap threshold. True when applied
    (Linux with glibc); elsewhere nothing is done. `malloc_tunables` is the part that only
    the environment can set, at a process's start (`recordbase serve` does).
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mib = 1024 * 1024
    keep_mb = min(keep_mb, 1024)  # a C int of bytes
    applied = (
        mallopt(_M_TRIM_THRESHOLD, keep_mb * mib),
        mallopt(_M_TOP_PAD, keep_mb * mib // 4),
        mallopt(_M_MMAP_THRESHOLD, min(keep_mb, 4) * mib),
    )
    return all(applied)


def malloc_tunables(keep_mb: int, current: str) -> str | None:
    """The GLIBC_TUNABLES value `recordbase serve` starts again with, or None to go on as is.

    glibc reads its per-thread cache size only from GLIBC_TUNABLES, when a process starts.
    Its default keeps 7 freed blocks per size class; the SQLite writer frees hundreds of one
    size per statement (SQLite's copies of each bound id and data text), and what does not
    fit goes back through glibc's bins: `unlink_chunk` and `_int_malloc` were ~9% of the
    writer's CPU under batches of 100. With 256 the writer took 9-13% less CPU per batch
    (docs/performance.md, round 14). None when tuning is off (`keep_mb` 0), not glibc, or
    `current` (the environment's GLIBC_TUNABLES) already sets the cache size.
    """
    import platform

    if keep_mb <= 0 or platform.libc_ver()[0] != "glibc" or "malloc.tcache_count" in current:
        return None
    ours = f"glibc.malloc.tcache_count={TCACHE_COUNT}"
    return f"{current}:{ours}" if current else ours


def _default_limiter(settings: Settings) -> Limiter:
    if settings.redis_url:
        # Shared by every worker; see ratelimit_redis.py and docs/rate-limits.md.
        from recordbase.ratelimit_redis import RedisLimiter

        return RedisLimiter.from_url(settings.redis_url)
    return MemoryLimiter()


class AppState(State):
    """Starlette's app State whose entries are also plain attributes.

    Every request reads `settings`, `service` and `limiter` from it; State answers those from
    `__getattr__`, after the normal look-up has failed (~0.5 µs each, several per request).
    """

    def __setattr__(self, key: str, value: Any) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        super().__delattr__(key)
        object.__delattr__(self, key)


class _Outer:
    """The ASGI callable served: the pipeline around the Starlette app (which it exposes)."""

    def __init__(self, pipeline: Pipeline, inner: Starlette) -> None:
        self.pipeline = pipeline
        self.inner = inner
        self.state = inner.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.inner(scope, receive, send)
            return
        scope["app"] = self.inner
        await self.pipeline(scope, receive, send)

    # The lane of `recordbase serve`'s protocol (web/server.py) --------------------------------

    def lean_route(self, scope: Any) -> Found | None:
        """The direct route of a request that a lean handler may answer, or None."""
        direct = self.pipeline.direct
        if direct is None:
            return None
        found = direct.endpoint_for(scope)
        return found if found is not None and found[3] is not None else None

    def serve_lean(
        self, scope: Any, receive: Any, send: Any, found: Found, write: WriteWhole
    ) -> Awaitable[None]:
        """This app's call for a request `lean_route` found, `write` to answer it at once."""
        scope["app"] = self.inner
        return self.pipeline.serve(scope, receive, send, found, write)
