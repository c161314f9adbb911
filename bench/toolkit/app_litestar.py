"""Litestar: POST /echo -> orjson round-trip (raw Request, no model)."""

import orjson
from litestar import Litestar, Request, Response, post


@post("/echo", status_code=200)
async def echo(request: Request) -> Response[bytes]:
    data = orjson.loads(await request.body())
    return Response(orjson.dumps(data), media_type="application/json")


app = Litestar(route_handlers=[echo])
