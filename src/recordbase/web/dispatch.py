"""Direct dispatch: call a plain route's endpoint without Starlette's per-request layers.

Under load, a third of the event loop's time per single create went to Starlette's stack
around our handlers (ServerErrorMiddleware, ExceptionMiddleware, two exception-handling
wrappers and their `send` wrappers), none of which does anything for a request our Pipeline
already guards (docs/performance.md). `Direct` matches the routes in Starlette's own order
with Starlette's own `Route.matches` (so path parameters and the first-full-match rule are
unchanged) and, for a route whose endpoint is a plain `async def handler(request)`, calls it
and sends its response itself. Anything else (no full match: 404, 405, slash redirects;
class endpoints; routes with their own middleware; lifespan) goes to the Starlette app as
before.

Route resolution is cached per (method, path) in a bounded dict: `Route.matches` depends on
nothing else once there is no root_path and no outer path parameters, so the cached answer
(route, endpoint, path parameters; or "not direct") is the one the routes would give again.

A route may also have a lean twin (`LeanRoute`): the same work for the request as the Pipeline
holds it (scope, receive, the headers already read, the path parameters, the app's state),
answering a status and a JSON body instead of a Response, with no Request object around it.
The Pipeline sends that answer with its own headers. A lean handler may decline a request
before it reads the body (None): the endpoint then runs as above. Native record creates,
single and batch, and Keywords AI log creates take this lane: Request, Response and the
route's layers were a quarter of the event loop's time per single create
(docs/performance.md, round 11).

Errors keep their shapes: a RecordbaseError or an unexpected exception propagates to the
Pipeline, which renders it in the face's shape exactly as the app's handlers do; an
exception with a registered handler other than the catch-all (Starlette's HTTPException)
goes to that handler, as ExceptionMiddleware would.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from recordbase.web.http import FastRequest, JSONBytesResponse

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]
# (scope, receive, request headers, path parameters, app state) -> (status, JSON body), or
# None to leave the request to the endpoint (decided before reading the body).
Lean = Callable[[Scope, Receive, Headers, dict[str, Any], Any], Awaitable[tuple[int, bytes] | None]]
Found = tuple[Route, Endpoint, Scope, Lean | None]
# (status, headers as ASGI pairs, body) -> whether it was sent (else: send it the ASGI way);
# web/server.py's lane gives the Pipeline one to send a lean answer in one go.
WriteWhole = Callable[[int, list[tuple[bytes, bytes]], bytes], bool]
# Distinct (method, path) pairs remembered; record ids make paths many, so the cache is
# cleared when full (a miss costs one walk over the routes, as before the cache).
ROUTE_CACHE_MAX = 4096


class LeanRoute(Route):
    """A Route whose endpoint has a lean twin (see the module docstring)."""

    def __init__(self, path: str, endpoint: Endpoint, *, lean: Lean, methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.lean = lean


def lean_endpoint(lean: Lean) -> Endpoint:
    """The Request endpoint of a lean handler that answers every request (never None): one
    implementation for both lanes (an idempotent request, say, takes the endpoint's)."""

    async def endpoint(request: Request) -> Response:
        scope = request.scope
        answer = await lean(
            scope, request.receive, request.headers, scope["path_params"], request.app.state
        )
        assert answer is not None, "this lean handler declines requests: give it an endpoint"
        return JSONBytesResponse(answer[1], status_code=answer[0])

    endpoint.__name__ = endpoint.__qualname__ = getattr(lean, "__name__", "lean")
    return endpoint


def direct_endpoint(route: Any) -> Endpoint | None:
    """The endpoint to call directly, or None when the route must go through Starlette."""
    if type(route) not in (Route, LeanRoute) or not inspect.iscoroutinefunction(route.endpoint):
        return None
    # Route wraps a plain function in request_response(); any middleware or body limit given
    # to the route wraps that again, and then the route must keep its own app.
    if getattr(route.app, "__qualname__", "") != "request_response.<locals>.app":
        return None
    endpoint: Endpoint = route.endpoint
    return endpoint


class Direct:
    """ASGI app over a Starlette app; see the module docstring."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state
        self._routes = list(app.router.routes)
        self._direct = {id(r): e for r in self._routes if (e := direct_endpoint(r)) is not None}
        self._handlers: dict[type[BaseException], Handler] = {
            k: v
            for k, v in app.exception_handlers.items()
            if isinstance(k, type) and k is not Exception
        }
        self._cache: dict[tuple[str, str], Found | None] = {}  # see endpoint_for

    def endpoint_for(self, scope: Scope) -> Found | None:
        """The first fully matching route, when it can be called directly."""
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        if "path_params" in scope:
            return self._match(scope)
        key = (scope["method"], scope["path"])
        cache = self._cache
        if key in cache:
            found = cache[key]
        else:
            found = self._match(scope)
            if len(cache) >= ROUTE_CACHE_MAX:
                cache.clear()
            cache[key] = found
        if found is None:
            return None
        route, endpoint, child, lean = found
        # Each request gets its own path_params dict (a handler may change it).
        return route, endpoint, {**child, "path_params": dict(child["path_params"])}, lean

    def _match(self, scope: Scope) -> Found | None:
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                endpoint = self._direct.get(id(route))
                if endpoint is None:
                    return None
                assert isinstance(route, Route)
                return route, endpoint, child, getattr(route, "lean", None)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.endpoint_for(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        response = await self.respond(found, scope, receive, send)
        await response(scope, receive, send)

    async def respond(
        self,
        found: Found,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers | None = None,
    ) -> Response:
        """Run the found endpoint (or the registered handler of its exception); not sent yet.

        `headers`: the request's headers when the caller has read them already.
        """
        route, endpoint, child, _lean = found
        scope["router"] = self.app.router
        scope["route"] = route
        scope.update(child)
        request = FastRequest(scope, receive, send, headers)
        try:
            return await endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            return await handler(request, exc)

    def _handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                return self._handlers[cls]
        return None
