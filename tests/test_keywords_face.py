"""The Keywords AI face through the real app: golden cases from the vendor's documented examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api, FakeClock

# The documented "Create log" example, with the seed's field_N names replaced by the real ones.
DOC_EXAMPLE = {
    "log_type": "chat",
    "model": "gpt-4o",
    "input": '[{"role":"user","content":"sample"}]',
    "output": '{"role":"assistant","content":"response"}',
    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
    "customer_identifier": "entity_123",
    "latency": 1.2,
    "metadata": {"prop_1": "value_a"},
}


def create(api: Api, body: dict[str, Any], path: str = "/api/request-logs/", **kw: Any) -> Any:
    return api.post(path, json=body, **kw)


def lst(api: Api, body: Any = None, **params: Any) -> Any:
    return api.post("/api/request-logs/list/", json=body or {}, params=params)


def test_create_documented_example(api: Api) -> None:
    r = create(api, DOC_EXAMPLE)
    assert r.status_code == 201, r.text
    log = r.json()
    assert log["unique_id"] == log["id"]
    assert log["organization_id"]
    assert log["customer_identifier"] == "entity_123"
    assert log["status"] == "success"
    assert log["status_code"] == 200
    assert log["error_message"] == ""
    # gpt-4o: 2.5 and 10 USD per 1M tokens
    assert log["cost"] == pytest.approx((10 * 2.5 + 8 * 10.0) / 1e6)
    assert log["timestamp"].endswith("Z")
    # chat: the JSON text is stored as structure; the vendor renders text plus the structure
    assert log["prompt_messages"] == [{"role": "user", "content": "sample"}]
    assert log["completion_message"] == {"role": "assistant", "content": "response"}
    assert json.loads(log["input"]) == log["prompt_messages"]
    stored = api.get(f"/v1/types/request_log/records/{log['id']}").json()["data"]
    assert stored["input"] == log["prompt_messages"]
    assert (log["prompt_tokens"], log["completion_tokens"], log["total_tokens"]) == (10, 8, 18)
    assert log["tokens_per_second"] == pytest.approx(8 / 1.2, abs=1e-3)
    got = api.get(f"/api/request-logs/{log['unique_id']}/")
    assert got.status_code == 200
    assert got.json()["prompt_messages"] == log["prompt_messages"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/request-logs/",
        "/api/request-logs",
        "/api/request-logs/create/",
        "/api/request-logs/create",
        "/request-logs/create",
        "/request-logs/create/",
    ],
)
def test_every_create_path_answers_without_redirect(api: Api, path: str) -> None:
    r = create(api, {"model": "gpt-4o"}, path, follow_redirects=False)
    assert r.status_code == 201, r.text


def test_old_names_defaults_computed_and_ignored_keys(api: Api) -> None:
    body = {
        "model": "gpt-4o-mini",
        "prompt_messages": [{"role": "user", "content": "hi"}],
        "completion_message": {"role": "assistant", "content": "yo"},
        "generation_time": 0.5,
        "ttft": 0.1,
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "encoding_format": "float",
        "disable_fallback": False,
        "field_name": "data: ",
        "delimiter": "\n\n",
        "disable_log": False,
        "request_breakdown": False,
        "keywordsai_api_controls": {"block": True},
        "status_code": 500,
    }
    log = create(api, body).json()
    assert log["latency"] == 0.5 and log["time_to_first_token"] == 0.1
    assert log["prompt_messages"] == body["prompt_messages"]
    assert log["completion_message"] == body["completion_message"]
    assert log["total_tokens"] == 150
    assert log["log_type"] == "chat"
    assert log["status"] == "error"
    for ignored in ("encoding_format", "disable_log", "keywordsai_api_controls", "generation_time"):
        assert ignored not in log
    stored = api.get(f"/v1/types/request_log/records/{log['id']}").json()["data"]
    assert "encoding_format" not in stored and "generation_time" not in stored


def test_unit_prices_override_and_both_names_conflict(api: Api) -> None:
    log = create(
        api,
        {
            "model": "my-model",
            "usage": {"prompt_tokens": 1000000, "completion_tokens": 0},
            "prompt_unit_price": 3,
            "completion_unit_price": 4,
        },
    ).json()
    assert log["cost"] == 3
    assert (
        "cost"
        not in create(
            api, {"model": "my-model", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        ).json()
    )
    r = create(api, {"model": "gpt-4o", "latency": 1, "generation_time": 2})
    assert r.status_code == 400
    assert r.json()["code"] == "alias_conflict"
    assert r.json()["errors"][0]["path"] == "/generation_time"


def test_unknown_keys_and_bad_values_are_400_in_vendor_shape(api: Api) -> None:
    r = create(api, {"model": "gpt-4o", "colour": "red"})
    assert r.status_code == 400
    assert r.json()["code"] == "unknown_member" and "colour" in r.json()["detail"]
    assert "detail" in r.json()
    r = create(api, {"model": "gpt-4o", "log_type": "nope"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["path"] == "/log_type"
    r = create(api, {"model": "gpt-4o", "timestamp": "yesterday"})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/timestamp"


def test_auth_schemes_and_errors(api: Api) -> None:
    r = api.client.post(
        "/api/request-logs/", json={"model": "m"}, headers={"Authorization": f"Api-Key {api.key}"}
    )
    assert r.status_code == 201
    r = api.client.post("/api/request-logs/", json={"model": "m"})
    assert r.status_code == 401 and "detail" in r.json()
    r = api.client.get("/api/request-logs/nope/", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 404 and r.json()["code"] == "record_not_found"
    reader = api.new_key("records:read")
    r = create(api, {"model": "m"}, key=reader)
    assert r.status_code == 403


def test_rate_limited_in_vendor_shape(make_api: Any, settings: Any) -> None:
    api = make_api(settings.replace(default_rate=0.001, default_burst=1))
    assert create(api, {"model": "m"}).status_code == 201
    r = create(api, {"model": "m"})
    assert r.status_code == 429
    assert r.json()["detail"].startswith("Request was throttled. Expected available in")
    assert "Retry-After" in r.headers


def make_logs(api: Api) -> list[dict[str, Any]]:
    bodies = [
        {
            "model": "gpt-4o",
            "customer_identifier": "c1",
            "latency": 1.0,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            "metadata": {"tier": "a"},
        },
        {
            "model": "gpt-4o-mini",
            "customer_identifier": "c2",
            "latency": 3.0,
            "usage": {"prompt_tokens": 30, "completion_tokens": 5},
            "metadata": {"tier": "b"},
            "custom_identifier": "ref_1",
        },
        {
            "model": "claude-3-opus-20240229",
            "customer_identifier": "C1",
            "latency": 2.0,
            "status_code": 429,
            "metadata": {"tier": "c"},
        },
    ]
    return [create(api, b).json() for b in bodies]


def ids(response: Any) -> list[str]:
    return [r["unique_id"] for r in response.json()["results"]]


def test_list_defaults_sorting_and_paging(api: Api) -> None:
    logs = make_logs(api)
    r = lst(api)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None
    assert ids(r) == [log["id"] for log in reversed(logs)]  # sort_by=-id by default
    r = lst(api, page_size=2, sort_by="latency")
    assert ids(r) == [logs[0]["id"], logs[2]["id"]]
    assert "page=2" in r.json()["next"]
    r2 = lst(api, page_size=2, page=2, sort_by="latency")
    assert ids(r2) == [logs[1]["id"]] and r2.json()["next"] is None
    assert "page=1" in r2.json()["previous"]
    assert lst(api, page=9).json()["results"] == []  # past the end: 200 and no results
    r = lst(api, page_size=1001)
    assert r.status_code == 400
    r = lst(api, sort_by="-colour")
    assert r.status_code == 400 and "latency" in r.json()["detail"]


def test_list_time_window(api: Api, clock: FakeClock) -> None:
    make_logs(api)
    clock.advance(2 * 3600)
    assert lst(api).json()["count"] == 0  # start_time defaults to one hour ago
    assert lst(api, start_time="2026-01-01T00:00:00Z").json()["count"] == 3
    assert (
        lst(api, start_time="2026-01-01T00:00:00Z", end_time="2026-01-02T00:00:00+00:00").json()[
            "count"
        ]
        == 0
    )
    assert lst(api, start_time="not a time").status_code == 400


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"customer_identifier": {"operator": "", "value": ["c1"]}}, [0]),
        ({"customer_identifier": {"operator": "iexact", "value": ["c1"]}}, [0, 2]),
        ({"customer_identifier": {"operator": "not", "value": ["c1"]}}, [1, 2]),
        ({"latency": {"operator": "lt", "value": [2.0]}}, [0]),
        ({"latency": {"operator": "lte", "value": [2.0]}}, [0, 2]),
        ({"latency": {"operator": "gt", "value": [2.0]}}, [1]),
        ({"latency": {"operator": "gte", "value": [2.0]}}, [1, 2]),
        ({"model": {"operator": "contains", "value": ["mini"]}}, [1]),
        ({"model": {"operator": "icontains", "value": ["OPUS"]}}, [2]),
        ({"model": {"operator": "startswith", "value": ["gpt"]}}, [0, 1]),
        ({"model": {"operator": "endswith", "value": ["4o"]}}, [0]),
        ({"metadata__tier": {"operator": "in", "value": ["a", "c"]}}, [0, 2]),
        ({"custom_identifier": {"operator": "isnull", "value": [True]}}, [0, 2]),
        ({"status": {"operator": "", "value": ["error"]}}, [2]),
        (
            {
                "prompt_tokens": {"operator": "gte", "value": [10]},
                "latency": {"operator": "gt", "value": [1.5]},
            },
            [1],
        ),
    ],
)
def test_list_filters_every_operator(
    api: Api, filters: dict[str, Any], expected: list[int]
) -> None:
    logs = make_logs(api)
    r = lst(api, {"filters": filters}, sort_by="id")
    assert r.status_code == 200, r.text
    assert ids(r) == [logs[i]["id"] for i in expected]


def test_list_bad_filters_are_400(api: Api) -> None:
    r = lst(api, {"filters": {"colour": {"operator": "", "value": ["x"]}}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_filter"
    r = lst(api, {"filters": {"model": {"operator": "like", "value": ["x"]}}})
    assert r.status_code == 400 and "icontains" in r.json()["detail"]
    r = lst(api, {"filters": {"model": {"operator": "", "value": ["a", "b"]}}})
    assert r.status_code == 400
    r = lst(api, {"filter": {}})
    assert r.status_code == 400


def test_legacy_get_list_with_query_filters(api: Api) -> None:
    logs = make_logs(api)
    r = api.get(
        "/request-logs/list", params={"page": 1, "page_size": 10, "customer_identifier": "c2"}
    )
    assert r.status_code == 200, r.text
    assert ids(r) == [logs[1]["id"]]
    assert api.get("/request-logs/list?colour=x").status_code == 400


def test_patch_merges_metadata_and_refuses_immutable_fields(api: Api) -> None:
    log = make_logs(api)[0]
    url = f"/api/request-logs/{log['id']}/"
    r = api.patch(
        url,
        json={
            "metadata": {"extra": 1},
            "note": "checked",
            "positive_feedback": True,
            "custom_identifier": "x9",
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["metadata"] == {"tier": "a", "extra": 1}
    assert (got["note"], got["positive_feedback"], got["custom_identifier"]) == (
        "checked",
        True,
        "x9",
    )
    assert got["cost"] == log["cost"]
    r = api.patch(url, json={"model": "other"})
    assert r.status_code == 400 and r.json()["code"] == "read_only_field"
    assert api.get(url).json()["model"] == "gpt-4o"


def test_batch_update_is_all_or_nothing(api: Api) -> None:
    logs = make_logs(api)
    r = api.patch(
        "/api/request-logs/batch-update/",
        json={
            "logs": [
                {"unique_id": logs[0]["id"], "metadata": {"k": 1}},
                {"unique_id": logs[1]["id"], "note": "n"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["success_count"] == 2
    assert api.get(f"/api/request-logs/{logs[0]['id']}/").json()["metadata"]["k"] == 1
    r = api.patch(
        "/api/request-logs/batch-update/",
        json={
            "logs": [
                {"unique_id": logs[0]["id"], "note": "never"},
                {"unique_id": "missing", "note": "n"},
            ]
        },
    )
    assert r.status_code == 404
    assert "note" not in api.get(f"/api/request-logs/{logs[0]['id']}/").json()
    r = api.patch(
        "/api/request-logs/batch-update/",
        json={"logs": [{"unique_id": logs[0]["id"], "model": "x"}]},
    )
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/logs/0/model"


def test_bulk_create_is_all_or_nothing(api: Api) -> None:
    r = api.post("/api/request-logs/bulk/", json={"logs": [{"model": "a"}, {"model": "b"}]})
    assert r.status_code == 200, r.text
    assert r.json()["success_count"] == 2 and r.json()["error_count"] == 0
    r = api.post("/api/request-logs/bulk/", json={"logs": [{"model": "c"}, {"model": 3}]})
    assert r.status_code == 400
    assert r.json()["errors"][0]["path"] == "/logs/1/model"
    assert lst(api).json()["count"] == 2


def test_request_log_type_is_an_ordinary_type(api: Api) -> None:
    create(api, {"model": "gpt-4o"})
    t = api.get("/v1/types/request_log").json()
    assert t["aliases"]["data.generation_time"] == "data.latency"
    assert "data.cost" in t["computed"]
    assert {i["name"] for i in t["indexes"]} >= {"by_custom_identifier", "by_timestamp"}
    r = api.post("/v1/types/request_log/records", json={"record": {"data": {"model": "m"}}})
    assert r.status_code == 201
    assert r.json()["records"][0]["data"]["log_type"] == "chat"


def test_a_log_answers_alike_in_both_lanes(api: Api) -> None:
    """A log create takes the pipeline's lean lane; with an Idempotency-Key it runs through
    the route's endpoint (web/dispatch.py lean_endpoint): the same answer either way."""

    def comparable(r: Any) -> tuple[int, dict[str, Any], str]:
        log = r.json()
        for name in ("id", "unique_id", "timestamp", "start_time", "end_time", "updated_at"):
            log.pop(name, None)
        return r.status_code, log, r.headers["content-type"]

    lean = create(api, DOC_EXAMPLE)
    endpoint = create(api, DOC_EXAMPLE, headers={**api.headers(), "Idempotency-Key": "k1"})
    assert lean.status_code == 201 and "idempotent-replayed" not in endpoint.headers
    assert comparable(lean) == comparable(endpoint)
    queued = {**DOC_EXAMPLE, "keywordsai_api_controls": {"block": False}}
    lean = create(api, queued)
    endpoint = create(api, queued, headers={**api.headers(), "Idempotency-Key": "k2"})
    assert lean.status_code == 202
    assert lean.status_code == endpoint.status_code == 202
    assert lean.json().keys() == endpoint.json().keys()
    errors = [
        create(api, [1]),  # not an object: 400 in the face's shape
        create(api, [1], headers={**api.headers(), "Idempotency-Key": "k3"}),
    ]
    bodies = [r.json() for r in errors]
    for r, body in zip(errors, bodies, strict=True):
        assert r.status_code == 400
        body.pop("request_id", None)
    assert bodies[0] == bodies[1]


def test_a_log_create_refuses_oversize_bodies_and_missing_keys(
    make_api: Any, settings: Any
) -> None:
    api = make_api(settings.replace(max_body_bytes=2000))
    big = {**DOC_EXAMPLE, "output": "x" * 3000}
    for headers in ({}, {"Idempotency-Key": "big"}):  # the lean lane, then the endpoint
        r = create(api, big, headers={**api.headers(), **headers})
        assert r.status_code == 413, r.text
    r = api.client.post("/api/request-logs/", json=DOC_EXAMPLE)  # no key
    assert r.status_code == 401
    assert api.get("/v1/types/request_log/records").json().get("records", []) == []
