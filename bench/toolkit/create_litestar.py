"""Litestar: POST /v1/types/{type}/records -> RecordService.create_records (raw Request, no model)."""

import contextlib

from create_common import build_service, create
from litestar import Litestar, Request, Response, post

service = build_service()


@contextlib.asynccontextmanager
async def lifespan(app):
    await service.start()
    try:
        yield
    finally:
        await service.close()


@post("/v1/types/{type_key:str}/records")
async def create_records(type_key: str, request: Request) -> Response[bytes]:
    status, out = await create(
        service, request.headers.get("authorization"), type_key, await request.body()
    )
    return Response(out, status_code=status, media_type="application/json")


app = Litestar(route_handlers=[create_records], lifespan=[lifespan])
