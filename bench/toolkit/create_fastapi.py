"""FastAPI: POST /v1/types/{type}/records -> RecordService.create_records (raw Request, no model)."""

import contextlib

from create_common import build_service, create
from fastapi import FastAPI, Request
from fastapi.responses import Response

service = build_service()


@contextlib.asynccontextmanager
async def lifespan(app):
    await service.start()
    try:
        yield
    finally:
        await service.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/types/{type_key}/records")
async def create_records(type_key: str, request: Request) -> Response:
    status, out = await create(
        service, request.headers.get("authorization"), type_key, await request.body()
    )
    return Response(out, status_code=status, media_type="application/json")
