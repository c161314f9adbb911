"""FastAPI: POST /echo -> orjson round-trip (raw Request, no pydantic model)."""

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> Response:
    data = orjson.loads(await request.body())
    return Response(orjson.dumps(data), media_type="application/json")
