"""The lane of `recordbase serve`'s protocol (web/server.py): a lean route's request runs
without the proxy-headers middleware and the app's outer call, and
its answer leaves as one prepared write. Every answer must be the one uvicorn's ASGI path
gives, byte for byte but for what varies per request (ids, times, the Date header).

A real uvicorn server on a free port with the real app on a real SQLite file, real sockets.
A request with an X-Forwarded-For header takes uvicorn's usual path (the proxy-headers
middleware must read it): the same request with and without one compares the two paths."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from recordbase.app import create_app
from recordbase.config import Settings
from recordbase.web.server import LaneHttpToolsProtocol, http_protocol
from tests.conftest import CONTACT_SCHEMA
from tests.server import free_port
from tests.test_web_hot_path import CREATES

LANE: list[str] = []  # the paths the lane answered


class CountingLane(LaneHttpToolsProtocol):
    async def _run_lean(self, served: Any, cycle: Any, found: Any) -> None:
        LANE.append(cycle.scope["path"])
        await super()._run_lean(served, cycle, found)


class Served:
    def __init__(self, port: int, app: Any, server: uvicorn.Server) -> None:
        self.port = port
        self.app = app
        self.server = server
        self.key = ""

    def call(self, fn: Any) -> Any:
        """Run a service coroutine function on the server's own loop."""
        loop = self.server_loop
        return asyncio.run_coroutine_threadsafe(fn(), loop).result(10)

    server_loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = Path(tmp_path_factory.mktemp("lane")) / "lane.db"
    settings = Settings(
        database_url=str(db), default_rate=100000.0, default_burst=100000, job_worker=False
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=CountingLane, lifespan="on"
    )
    server = uvicorn.Server(config)
    out = Served(port, app, server)

    def run() -> None:
        async def main() -> None:
            out.server_loop = asyncio.get_running_loop()
            await server.serve()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    service = app.state.service
    _key, out.key = out.call(lambda: service.create_key("p1", ["admin"]))
    status, _h, body = request(
        out, "POST", "/v1/types", {"key": "contact", "schema": CONTACT_SCHEMA}
    )
    assert status == 201, body
    taken = {"record": {"data": {}, "external_id": "taken"}}
    assert request(out, "POST", "/v1/types/contact/records", taken)[0] == 201
    yield out
    server.should_exit = True
    thread.join(15)


def request(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    sent = {"Authorization": f"Bearer {served.key}", **(headers or {})}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if body is not None:
        sent.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=sent)
    r = conn.getresponse()
    answer = r.status, r.getheaders(), r.read()
    conn.close()
    return answer


VARIES = {"date", "ratelimit-remaining", "ratelimit-reset", "location"}
STAMP = re.compile(rb'"(id|url|created_at|updated_at)":"[^"]*"')


def comparable(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[Any, ...]:
    status, headers, body = answer
    kept = [(k.lower(), v) for k, v in headers if k.lower() not in VARIES]
    return status, kept, STAMP.sub(rb'"\1":"~"', body)


def both_paths(
    served: Served, method: str, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[tuple[Any, ...], tuple[Any, ...], int]:
    """The answer via the lane (if it takes the request) and via uvicorn's usual path, and
    how many of the two the lane answered."""
    before = len(LANE)
    mine = {"X-Request-Id": "req-1", **(headers or {})}
    lane = request(served, method, path, body, mine)
    usual = request(served, method, path, body, {**mine, "X-Forwarded-For": "10.0.0.1"})
    return comparable(lane), comparable(usual), len(LANE) - before


def test_serve_runs_the_lane() -> None:
    assert http_protocol() is LaneHttpToolsProtocol


def test_every_create_answers_as_on_uvicorns_path(served: Served) -> None:
    for headers, body in CREATES:
        lane, usual, taken = both_paths(served, "POST", "/v1/types/contact/records", body, headers)
        assert lane == usual, (headers, body)
        # Every create goes to the lane (a Prefer header is declined inside, by the Pipeline),
        # and never one with a forwarded-for header.
        assert taken == 1, (headers, body)
    ok = both_paths(served, "POST", "/v1/types/contact/records", {"record": {"data": {"age": 3}}})
    assert ok[0][0] == 201 and ok[0] == ok[1]
    headers = dict(ok[0][1])
    assert list(headers) == [  # uvicorn's default header first, as its send() puts it
        "server",
        "content-length",
        "content-type",
        "x-request-id",
        "ratelimit-limit",
    ]
    assert headers["x-request-id"] == "req-1" and headers["content-type"] == "application/json"


def test_errors_limits_and_other_routes_answer_as_before(served: Served) -> None:
    creates = "/v1/types/contact/records"
    service = served.app.state.service
    _k, reader = served.call(lambda: service.create_key("p1", ["records:read"]))
    _k, other = served.call(lambda: service.create_key("p2", ["admin"]))
    cases: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "/v1/types/nope/records", {"record": {"data": {}}}, {}),  # 404, in the lane
        ("POST", creates, {"record": {"data": {}}}, {"Authorization": f"Bearer {reader}"}),
        ("POST", creates, {"record": {"data": {}}}, {"Authorization": f"Bearer {other}"}),
        ("POST", creates, {"record": {"data": {"age": "x"}}}, {}),  # wrong type: 400
        ("POST", creates + "?x=1", {"record": {"data": {}}}, {}),  # parameters: declined
        ("POST", creates, {"record": {"data": {}}}, {"Authorization": "Bearer nope"}),
        ("POST", creates, {"record": {"data": {}}}, {"Authorization": ""}),
        ("POST", creates, b"x" * (3 * 1024 * 1024), {}),  # over the body limit
        ("GET", creates, None, {}),  # not a lean route
    ]
    statuses = []
    for method, path, body, headers in cases:
        lane, usual, _taken = both_paths(served, method, path, body, headers)
        assert lane == usual, (method, path, headers)
        statuses.append(lane[0])
    # Another project's type is not found; a read-only key may not create.
    assert statuses[:4] == [404, 403, 404, 400], statuses
    assert all(200 <= s < 500 for s in statuses), statuses


def test_a_rate_limited_key_answers_as_before(served: Served) -> None:
    service = served.app.state.service
    _key, secret = served.call(lambda: service.create_key("p1", ["admin"], rate=0.001, burst=1))
    before = len(LANE)
    body: dict[str, Any] = {"record": {"data": {}}}
    headers = {"Authorization": f"Bearer {secret}", "X-Request-Id": "r"}
    first = request(served, "POST", "/v1/types/contact/records", body, headers)
    lane = request(served, "POST", "/v1/types/contact/records", body, headers)
    usual = request(
        served, "POST", "/v1/types/contact/records", body, {**headers, "X-Forwarded-For": "1.2.3.4"}
    )
    assert first[0] == 201 and lane[0] == 429
    assert comparable(lane)[1:] == comparable(usual)[1:]
    assert len(LANE) - before == 2


def test_the_keywords_log_create_takes_the_lane(served: Served) -> None:
    before = len(LANE)
    log = {"model": "gpt-4o", "prompt_messages": [{"role": "user", "content": "hi"}]}
    lane, usual, taken = both_paths(served, "POST", "/api/request-logs/create/", log)
    assert taken == 1
    assert lane[0] == usual[0] and lane[0] < 300, lane
    assert [h for h in lane[1] if h[0] != "content-length"] == [
        h for h in usual[1] if h[0] != "content-length"
    ]
    assert len(LANE) - before == 1


def raw_exchange(port: int, data: bytes, *, until_closed: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
            if not until_closed and got.count(b"HTTP/1.1 201") >= 2:
                break
    return got


def create_bytes(served: Served, *extra: bytes, version: bytes = b"1.1") -> bytes:
    body = b'{"record":{"data":{"age":1}}}'
    head = [
        b"POST /v1/types/contact/records HTTP/" + version,
        b"Host: x",
        b"Authorization: Bearer " + served.key.encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def test_connection_close_and_http_1_0_close_after_the_answer(served: Served) -> None:
    before = len(LANE)
    for data in (
        create_bytes(served, b"Connection: close"),
        create_bytes(served, version=b"1.0"),
    ):
        got = raw_exchange(served.port, data)  # returns only once the server closed
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 201 Created\r\n"), got
        assert b"\r\nconnection: close" in head
        assert json.loads(body)["records"][0]["data"] == {"age": 1}
    assert len(LANE) - before == 2


def test_pipelined_creates_are_answered_in_order(served: Served) -> None:
    before = len(LANE)
    first = create_bytes(served, b"X-Request-Id: one")
    second = create_bytes(served, b"X-Request-Id: two")
    got = raw_exchange(served.port, first + second, until_closed=False)
    answers = got.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"201", b"201"]
    assert b"x-request-id: one" in answers[0] and b"x-request-id: two" in answers[1]
    assert len(LANE) - before == 2


def test_expect_100_continue_in_the_lane(served: Served) -> None:
    before = len(LANE)
    data = create_bytes(served, b"Expect: 100-continue", b"Connection: close")
    head, _, body = data.partition(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 100 Continue"), first
        sock.sendall(body)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 201 Created"), got
    assert len(LANE) - before == 1


def test_a_body_that_comes_in_two_reads_is_read_from_receive(served: Served) -> None:
    """The lane takes a body at once only when all of it came; here the task starts with half
    of it, so the handler waits on uvicorn's `receive` for the rest."""
    before = len(LANE)
    data = create_bytes(served, b"Connection: close")
    cut = len(data) - 10
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(data[:cut])
        time.sleep(0.2)
        sock.sendall(data[cut:])
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created"), got
    assert json.loads(body)["records"][0]["data"] == {"age": 1}
    assert len(LANE) - before == 1


def test_a_whole_body_has_the_limits_of_a_received_one() -> None:
    """receive_json given a body at once (web/http.ReceiveWhole) checks it as receive_body
    checks a received one: the same errors, word for word."""
    from starlette.datastructures import Headers

    from recordbase.errors import PayloadTooLarge
    from recordbase.web.http import ReceiveWhole, receive_body, receive_json

    class Whole(ReceiveWhole):
        def __init__(self, body: bytes) -> None:
            self.body = body

        def whole(self) -> bytes | None:
            return self.body

        async def __call__(self) -> dict[str, Any]:
            return {"type": "http.request", "body": self.body, "more_body": False}

    settings = Settings(max_body_bytes=20)
    json_type = [(b"content-type", b"application/json")]
    declared = Headers(raw=[*json_type, (b"content-length", b"25")])
    undeclared = Headers(raw=json_type)
    assert asyncio.run(receive_json(Whole(b'{"a": [1, 2]}'), undeclared, settings)) == {"a": [1, 2]}
    for headers in (declared, undeclared):
        big = b'{"a": "' + b"x" * 14 + b'"}'
        errors = []
        for receive in (Whole(big), Whole(big).__call__):
            with pytest.raises(PayloadTooLarge) as caught:
                if isinstance(receive, ReceiveWhole):
                    asyncio.run(receive_json(receive, headers, settings))
                else:
                    asyncio.run(receive_body(receive, headers, 20))
            errors.append(str(caught.value))
        assert errors[0] == errors[1], errors
