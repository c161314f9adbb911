"""Type shaping on ordinary /v1 types: defaults, aliases, computed, read-only, discriminator."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string", "default": "chat"},
        "model": {"type": "string"},
        "input": {},
        "latency": {"type": "number"},
        "status_code": {"type": "integer", "default": 200},
        "usage": {
            "type": "object",
            "properties": {
                "prompt_tokens": {"type": "integer"},
                "completion_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
                "cached": {"type": "boolean", "default": False},
            },
        },
        "cost": {"type": "number"},
        "serial": {"type": "string"},
        "tags": {"type": "array", "default": []},
    },
}
DEFINITION: dict[str, Any] = {
    "schema": SCHEMA,
    "aliases": {"data.generation_time": "data.latency"},
    "computed": {
        "data.usage.total_tokens": "usage.prompt_tokens + usage.completion_tokens",
        "data.cost": "usage.total_tokens * prices[model]",
        "data.serial": "upper(model) + '-' + str(status_code)",
    },
    "constants": {"prices": {"m1": 0.5, "m2": 2}},
    "read_only": ["data.serial"],
    "discriminator": {"field": "data.kind", "cases": {"chat": {"parse_json": ["data.input"]}}},
}


def create(api: Api, data: dict[str, Any], type_key: str = "log") -> Any:
    return api.post(f"/v1/types/{type_key}/records", json={"record": {"data": data}})


def test_defaults_computed_and_constants_on_create(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    r = create(api, {"model": "m1", "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    assert r.status_code == 201, r.text
    data = r.json()["records"][0]["data"]
    assert data == {
        "kind": "chat",
        "model": "m1",
        "status_code": 200,
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cached": False},
        "cost": 3.5,
        "serial": "M1-200",
        "tags": [],
    }


def test_computed_skipped_when_sent_and_unset_when_it_fails(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    r = create(
        api,
        {
            "model": "unknown",
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 100},
        },
    )
    data = r.json()["records"][0]["data"]
    assert data["usage"]["total_tokens"] == 100  # the client's value wins
    assert "cost" not in data  # no price for this model: the field stays unset


def test_computed_follows_patches_but_keeps_client_values(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    rec = create(api, {"model": "m1", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    rid = rec.json()["records"][0]["id"]
    r = api.patch(f"/v1/types/log/records/{rid}", json={"data": {"usage": {"prompt_tokens": 9}}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["usage"]["total_tokens"] == 10
    assert r.json()["data"]["cost"] == 5
    r = api.patch(f"/v1/types/log/records/{rid}", json={"data": {"cost": 1.25}})
    assert r.json()["data"]["cost"] == 1.25
    r = api.patch(f"/v1/types/log/records/{rid}", json={"data": {"latency": 2}})
    assert r.json()["data"]["cost"] == 1.25  # an override set by the client stays


def test_alias_accepted_and_conflict_is_400(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    r = create(api, {"model": "m1", "generation_time": 1.5})
    assert r.status_code == 201, r.text
    data = r.json()["records"][0]["data"]
    assert data["latency"] == 1.5 and "generation_time" not in data
    same = create(api, {"model": "m1", "generation_time": 1.5, "latency": 1.5})
    assert same.status_code == 201
    r = create(api, {"model": "m1", "generation_time": 1.5, "latency": 2})
    assert r.status_code == 400
    assert r.json()["code"] == "alias_conflict"
    assert r.json()["errors"][0]["path"] == "/records/0/data/generation_time"


def test_read_only_write_is_400_and_replace_keeps_it(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    r = create(api, {"model": "m1", "serial": "mine"})
    assert r.status_code == 400
    assert r.json()["code"] == "read_only_field"
    assert r.json()["errors"][0]["path"] == "/records/0/data/serial"
    rec = create(api, {"model": "m1"}).json()["records"][0]
    rid = rec["id"]
    r = api.patch(f"/v1/types/log/records/{rid}", json={"data": {"serial": "x"}})
    assert r.status_code == 400 and r.json()["code"] == "read_only_field"
    # Echoing the stored value back (e.g. after a GET) is not a write.
    r = api.put(f"/v1/types/log/records/{rid}", json={"data": rec["data"]})
    assert r.status_code == 200, r.text
    r = api.put(f"/v1/types/log/records/{rid}", json={"data": {"model": "m2"}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["serial"] == "M2-200"  # read-only but computed: follows the data


def test_discriminator_parses_json_text_for_its_case(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    chat = create(api, {"model": "m1", "input": '[{"role": "user", "content": "hi"}]'})
    assert chat.json()["records"][0]["data"]["input"] == [{"role": "user", "content": "hi"}]
    text = create(api, {"model": "m1", "input": "just text"})
    assert text.json()["records"][0]["data"]["input"] == "just text"
    other = create(api, {"model": "m1", "kind": "completion", "input": '{"a": 1}'})
    assert other.json()["records"][0]["data"]["input"] == '{"a": 1}'


def test_type_shows_and_stores_the_new_members(api: Api) -> None:
    made = api.make_type("log", **DEFINITION)
    for member in ("aliases", "computed", "read_only", "discriminator", "constants"):
        assert made[member] == DEFINITION[member], member
    got = api.get("/v1/types/log").json()
    assert got["computed"] == DEFINITION["computed"]
    assert got["discriminator"] == DEFINITION["discriminator"]
    computed = {**DEFINITION["computed"], "data.cost": "usage.total_tokens * 10"}
    r = api.patch("/v1/types/log", json={"computed": computed})
    assert r.status_code == 200, r.text
    rec = create(api, {"model": "m1", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert rec.json()["records"][0]["data"]["cost"] == 20  # the new expression applies at once


def test_bad_definitions_are_400_naming_the_member(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"computed": {"data.x": "__import__('os')"}}, "/computed/data.x"),
        ({"computed": {"data.x": "a +"}}, "/computed/data.x"),
        ({"computed": {"data.x": "open('f')"}}, "/computed/data.x"),
        ({"computed": {"data.x": "model.__class__"}}, "/computed/data.x"),
        ({"computed": {"data.x": "[i for i in tags]"}}, "/computed/data.x"),
        ({"computed": {"name": "1"}}, "/computed/name"),
        ({"aliases": {"data.a": "owner"}}, "/aliases/data.a"),
        ({"read_only": ["data..x"]}, "/read_only/0"),
        (
            {"discriminator": {"field": "data.kind", "cases": {"a": {"eval": []}}}},
            "/discriminator/cases/a",
        ),
        ({"constants": {"data": 1}}, "/constants/data"),
    ]
    for extra, path in cases:
        r = api.post("/v1/types", json={"key": "bad", "schema": {"type": "object"}, **extra})
        assert r.status_code == 400, (extra, r.text)
        assert path in [e["path"] for e in r.json()["errors"]], (extra, r.json())


def test_expressions_cannot_mutate_or_reach_python(api: Api) -> None:
    api.make_type(
        "t",
        schema={"type": "object"},
        computed={"data.n": "len(tags) if tags else 0", "data.m": "tags.pop"},
    )
    r = create(api, {"tags": ["a", "b"]}, "t")
    data = r.json()["records"][0]["data"]
    assert data == {"tags": ["a", "b"], "n": 2}  # .pop is not a method here: no value


def test_changing_one_member_keeps_the_others(api: Api) -> None:
    api.make_type("log", **DEFINITION)
    before = api.get("/v1/types/log").json()
    r = api.patch("/v1/types/log", json={"description": "renamed"})
    assert r.status_code == 200, r.text
    after = r.json()
    for member in ("aliases", "computed", "constants", "read_only", "discriminator", "schema"):
        assert after[member] == before[member], member
    assert after["description"] == "renamed"
