"""Hand-written ASGI callable: POST /v1/types/{type}/records -> RecordService.create_records."""

from create_common import build_service, create

service = build_service()
PREFIX, SUFFIX = "/v1/types/", "/records"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await service.start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await service.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    type_key = path[len(PREFIX) : -len(SUFFIX)]
    if (
        scope["method"] != "POST"
        or not path.startswith(PREFIX)
        or not path.endswith(SUFFIX)
        or not type_key
        or "/" in type_key
    ):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    status, out = await create(service, authorization, type_key, body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})
