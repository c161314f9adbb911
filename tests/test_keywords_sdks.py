"""The vendor's published Python SDKs against a running `recordbase serve`.

`respan-api` 0.1.49 (the current client: /api/request-logs/...) and `keywordsai` 1.0.4 (the
older one: /request-logs/create, GET /request-logs/list, /request-logs/{id}) talk HTTP to a
real server process on a free port; see docs/research/sdks.md for what each sends.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# Both SDKs are dev dependencies (requirements-lock.txt): a missing one is an error, not a skip.
# Importing them warns about their own use of pydantic; those warnings are theirs, not ours.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import keywordsai  # noqa: F401
    import respan  # noqa: F401
    from respan import RespanClient

BIN = Path(sys.executable).parent / "recordbase"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    db = str(tmp_path_factory.mktemp("sdk") / "sdk.db")
    env = {**os.environ, "RECORDBASE_DATABASE_URL": db}
    made = subprocess.run(
        [str(BIN), "keys", "create", "--project", "sdk", "--scope", "admin", "--rate", "1000/s"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    # Block on the server's own log until it says it listens (no sleeping, no polling).
    for line in proc.stderr:
        if "Uvicorn running" in line:
            break
    else:
        pytest.fail(f"recordbase serve exited with {proc.wait()}")
    # Keep draining its log so that a full pipe never blocks the server.
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        drain.join(timeout=30)
        proc.stderr.close()


def test_respan_sdk_create_list_retrieve(server: tuple[str, str]) -> None:
    url, key = server
    # An httpx client we close ourselves: the SDK's own default is left to the garbage
    # collector, whose ResourceWarning then lands in whichever test runs next.
    with httpx.Client() as http:
        _respan_create_list_retrieve(
            RespanClient(
                base_url=url, authorization="unused", respan_api_key=key, httpx_client=http
            )
        )


def _respan_create_list_retrieve(rc: RespanClient) -> None:
    made = rc.spans.create_span(
        model="gpt-4o",
        input='[{"role": "user", "content": "hi"}]',
        output="yo",
        log_type="chat",
        usage={"prompt_tokens": 3, "completion_tokens": 2},
        latency=0.4,
        metadata={"env": "sdk"},
        customer_identifier="respan-c1",
    )
    assert made.unique_id
    for _ in range(3):
        rc.spans.create_span(model="gpt-4o-mini", customer_identifier="respan-c2")
    one = rc.spans.retrieve_span(made.unique_id)
    assert one.id == made.unique_id
    logs = list(
        rc.spans.list_spans(
            page_size=2,
            sort_by="-id",
            filters={"customer_identifier": {"operator": "", "value": ["respan-c2"]}},
        )
    )
    assert len(logs) == 3  # the pager walks pages until an empty one
    chat = list(
        rc.spans.list_spans(
            filters={"customer_identifier": {"operator": "", "value": ["respan-c1"]}}
        )
    )
    assert chat[0]["prompt_messages"] == [{"role": "user", "content": "hi"}]
    assert chat[0]["output"] == "yo"
    assert chat[0]["total_tokens"] == 5


def test_respan_sdk_api_key_scheme_and_bulk(server: tuple[str, str]) -> None:
    url, key = server
    with httpx.Client() as http:
        rc = RespanClient(
            base_url=url, authorization=f"Api-Key {key}", respan_api_key=None, httpx_client=http
        )
        result = rc.spans.bulk_create_spans(logs=[{"model": "gpt-4o"}, {"model": "o1"}])
    assert result.success_count == 2 and result.error_count == 0


# keywordsai 1.0.4 opens a fresh httpx.AsyncClient per call and never closes it: its leaked
# sockets are the SDK's, not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_keywordsai_legacy_sdk_paths(server: tuple[str, str]) -> None:
    from keywordsai.logs.api import LogAPI

    url, key = server
    kw = LogAPI(api_key=key, base_url=url)
    created = kw.create(
        {
            "model": "gpt-4o",
            "prompt_messages": [{"role": "user", "content": "hi"}],
            "completion_message": {"role": "assistant", "content": "yo"},
            "customer_identifier": "kw-c1",
            "metadata": {"env": "test"},
            "generation_time": 0.7,
        }
    )
    assert created["latency"] == 0.7
    assert created["prompt_messages"] == [{"role": "user", "content": "hi"}]
    assert created["completion_message"] == {"role": "assistant", "content": "yo"}
    page = kw.list(page=1, page_size=10, sort_by="-id", customer_identifier="kw-c1")
    assert page.count == 1
    assert page.results[0].customer_identifier == "kw-c1"
    one = kw.get(created["unique_id"])
    assert one.customer_identifier == "kw-c1"
    gc.collect()  # let its leaked sockets go now, under this test's warning filters
