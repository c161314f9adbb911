"""Property: keyset paging over random data returns every record exactly once, in the order
of the sort (nulls and missing smallest, ties broken by id), under every sort."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": ["number", "null"]},
        "s": {"type": ["string", "null"]},
        "b": {"type": "boolean"},
        "t": {"type": "string", "format": "date-time"},
    },
}
MISSING = object()
SORT_KEYS = ["data.n", "data.s", "data.b", "data.t", "name", "created_at"]
counter = itertools.count()

values = {
    "n": st.one_of(st.none(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False, width=32)),
    "s": st.one_of(
        st.none(),
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=3),
    ),
    "b": st.booleans(),
    # Offsets other than Z: the sort is by instant, not by text.
    "t": st.builds(
        lambda h, m, off: f"2020-01-01T{h:02d}:{m:02d}:00{off}",
        st.integers(0, 23),
        st.sampled_from([0, 30]),
        st.sampled_from(["Z", "+02:00", "-01:00"]),
    ),
}
record = st.fixed_dictionaries(
    {},
    optional={
        "n": values["n"],
        "s": values["s"],
        "b": values["b"],
        "t": values["t"],
        "name": st.sampled_from(["a", "b", "B", "é"]),
    },
)
sorts = st.lists(
    st.tuples(st.sampled_from(SORT_KEYS), st.booleans()),
    min_size=1,
    max_size=3,
    unique_by=lambda k: k[0],
)


def sort_value(rec: dict[str, Any], key: str) -> Any:
    if key == "name":
        return rec.get("name")
    if key == "created_at":
        return rec["created_at"]
    value = rec["data"].get(key.split(".")[1])
    if key == "data.t" and value is not None:
        from datetime import datetime

        return datetime.fromisoformat(value)
    return value


def expected_order(records: list[dict[str, Any]], sort: list[tuple[str, bool]]) -> list[str]:
    """Python's reading of the contract: nulls smallest, id breaks ties in the last direction."""
    ordered = sorted(records, key=lambda r: r["id"], reverse=sort[-1][1])
    for key, descending in reversed(sort):
        ordered.sort(
            key=lambda r, k=key: (
                (sort_value(r, k) is not None, sort_value(r, k) or 0)
                if k != "data.s"
                else (sort_value(r, k) is not None, sort_value(r, k) or "")
            ),
            reverse=descending,
        )
    return [r["id"] for r in ordered]


@settings(
    max_examples=75,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=st.lists(record, min_size=0, max_size=12),
    sort=sorts,
    limit=st.integers(1, 4),
)
def test_keyset_paging_visits_every_record_once(
    api: Api, items: list[dict[str, Any]], sort: list[tuple[str, bool]], limit: int
) -> None:
    key = f"t{next(counter)}"
    api.make_type(key, schema=SCHEMA)
    path = f"/v1/types/{key}/records"
    body = [{"name": i.pop("name", None), "data": i} for i in (dict(item) for item in items)]
    if body:
        r = api.post(path, json={"records": body})
        assert r.status_code == 201, r.text
        created = r.json()["records"]
    else:
        created = []
    spec = [("-" if desc else "") + k for k, desc in sort]
    seen: list[str] = []
    cursor = None
    for _ in range(len(created) + 2):
        query: dict[str, Any] = {"sort": spec, "limit": limit}
        if cursor:
            query["cursor"] = cursor
        r = api.post(f"{path}/query", json=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["records"]) <= limit
        seen += [x["id"] for x in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert sorted(seen) == sorted(x["id"] for x in created)
    assert len(seen) == len(set(seen))
    assert seen == expected_order(created, sort)
    assert api.delete(f"/v1/types/{key}").status_code == 204
