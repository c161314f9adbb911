"""Starlette: POST /echo -> orjson round-trip."""

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    data = orjson.loads(await request.body())
    return Response(orjson.dumps(data), media_type="application/json")


app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
