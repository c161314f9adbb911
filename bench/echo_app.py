"""The bare-framework reference: the same HTTP stack as recordbase answering a JSON echo.

Starlette + uvicorn started with the options `recordbase serve` uses (one worker, no server
header, no access log, uvicorn's automatic choice of loop, and the HTTP protocol `recordbase
serve` runs: uvicorn's httptools protocol sending a response's head and body in one write,
src/recordbase/web/server.py), and a route that reads the body, parses it with orjson and
answers it back re-serialised: the ceiling of the HTTP layer for a request of the same size.
With a second argument `stock` it runs uvicorn's own httptools protocol instead (two writes
per answer): the bench shows that echo beside the single create too, for comparison with
rounds before 12. Run: python bench/echo_app.py PORT [stock]
"""

from __future__ import annotations

import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recordbase.web.server import http_protocol


async def echo(request: Request) -> Response:
    value = orjson.loads(await request.body())
    return Response(orjson.dumps(value), status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/echo", echo, methods=["POST", "PUT"])])


def main() -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
        http="httptools" if sys.argv[2:] == ["stock"] else http_protocol(),
    )


if __name__ == "__main__":
    main()
