"""SQLite string equality on a data path carries a text test (`data GLOB '*value"*'`) that
lets json_extract parse only the records whose JSON text can match (stores/sql.py,
Compiler.text_hint). The test must never drop a record the equality holds for, and must not
take a declared index's place in the plan."""

from __future__ import annotations

from typing import Any

import pytest

from recordbase.core.query import Condition
from recordbase.stores.sql import POSTGRES, SQLITE, Compiler
from tests.conftest import Api
from tests.test_query_search_index import plan

R = "/v1/types/thing/records"
SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "label": {"type": "string"}, "loose": {}},
}

# (id, data): the typed `status` and the untyped `loose` hold the value, hold it elsewhere in
# the record, hold something that contains it, or hold it with another JSON type.
RECORDS: list[tuple[str, dict[str, Any]]] = [
    ("r1", {"status": "pending", "loose": "pending"}),
    ("r2", {"status": "pending-x", "loose": "xpending"}),
    ("r3", {"status": "open", "label": "pending", "note": {"status": "pending"}}),
    ("r4", {"status": "Pending", "loose": ["pending"]}),
    ("r5", {"status": "in progress", "loose": "in progress", "pending": 1}),
    ("r6", {"status": "épuisé", "loose": "épuisé"}),
    ("r7", {"status": 'say "hi"', "loose": 'say "hi"'}),
    ("r8", {"status": "a/b<c>&d", "loose": "a/b<c>&d"}),
    ("r9", {"loose": {"pending": "pending"}}),
    ("r11", {"status": "x", "loose": 5}),
    ("r10", {"status": "", "loose": ""}),
    ("r12", {"status": "reopen", "loose": "is*it?"}),
    ("r13", {"status": "open", "loose": "isXitY", "label": "pen"}),
    ("r14", {"status": "a*b", "loose": "open"}),
]


@pytest.fixture
def things(api: Api) -> Api:
    api.make_type("thing", schema=SCHEMA)
    body = {"records": [{"id": rid, "data": data} for rid, data in RECORDS]}
    assert api.post(R, json=body).status_code == 201
    return api


def _ids(api: Api, params: dict[str, str]) -> list[str]:
    r = api.get(R, params=params)
    assert r.status_code == 200, r.text
    return sorted(rec["id"] for rec in r.json()["records"])


@pytest.mark.parametrize("field", ["status", "loose"])
@pytest.mark.parametrize(
    "value",
    [
        "pending",
        "in progress",
        "épuisé",
        'say "hi"',
        "a/b<c>&d",
        "",
        "Pending",
        "nope",
        "open",
        "pen",
        "is*it?",
        "a*b",
        "a?b",
    ],
)
def test_equality_answers_exactly_the_records_that_hold_the_value(
    things: Api, field: str, value: str
) -> None:
    expected = sorted(rid for rid, data in RECORDS if data.get(field) == value)
    assert _ids(things, {f"data.{field}__eq": value}) == expected
    # `not` is the exact complement, and `in` reads each value the same way.
    assert _ids(things, {f"data.{field}__not": value}) == sorted(
        rid for rid, _ in RECORDS if rid not in expected
    )
    assert _ids(things, {f"data.{field}__in": f"{value},zzz"}) == expected


def _sql(dialect: Any, value: Any, kind: str = "string", op: str = "eq") -> tuple[str, list[Any]]:
    c = Compiler(dialect)
    return c.compile(Condition(("data", "status"), op, value, kind)), c.params


def test_only_plain_strings_on_sqlite_get_the_text_test() -> None:
    sql, params = _sql(SQLITE, "pending")
    assert sql.startswith("(data GLOB ? AND ") and params == ['*pending"*', "pending"]
    assert _sql(SQLITE, "in progress", kind="any")[1][0] == '*in progress"*'
    # GLOB's wildcards in the value match themselves only
    assert _sql(SQLITE, "is*it?")[1][0] == '*is[*]it[?]"*'
    for value in ("épuisé", 'say "hi"', "a/b", "x<y", "", "back\\slash", "x" * 201, "[x]"):
        assert "GLOB" not in _sql(SQLITE, value)[0], value
    assert "GLOB" not in _sql(SQLITE, 5, kind="number")[0]
    assert "GLOB" not in _sql(SQLITE, "pending", op="lt")[0]
    assert "GLOB" not in _sql(SQLITE, "2020-01-01T00:00:00Z", kind="datetime")[0]
    assert "GLOB" not in _sql(POSTGRES, "pending")[0]


@pytest.mark.backend("sqlite")  # SQLite's EXPLAIN QUERY PLAN (the text test is SQLite's only)
def test_a_declared_index_still_serves_a_plain_string_equality(api: Api) -> None:
    api.make_type("thing", schema=SCHEMA)
    records = [{"data": {"status": f"s{i % 50}", "label": f"l{i}"}} for i in range(300)]
    assert api.post(R, json={"records": records}).status_code == 201
    indexes = [{"name": "by_status", "fields": ["data.status"]}]
    assert api.patch("/v1/types/thing", json={"indexes": indexes}).status_code == 200
    eq = plan(api, "thing", {"data.status": "s7"})
    assert "USING INDEX rbx_" in eq and "by_status" in eq, eq
