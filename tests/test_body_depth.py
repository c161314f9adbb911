"""The body nesting check skips its walk only when the text cannot nest too deep
(web/http.py json_body): the limit still holds exactly at its boundary."""

from __future__ import annotations

from typing import Any

from tests.conftest import CONTACT_SCHEMA

R = "/v1/types/contact/records"


def _nested(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_depth_limit_holds_at_the_boundary(make_api: Any, settings: Any) -> None:
    api = make_api(settings.replace(max_depth=8))
    schema = {**CONTACT_SCHEMA, "additionalProperties": True}
    api.make_type("contact", schema=schema)
    # body {record {data {...}}}: the body, record and data objects are three levels
    fits = api.post(R, json={"record": {"data": {"x": _nested(5)}}})
    assert fits.status_code == 201, fits.text
    deep = api.post(R, json={"record": {"data": {"x": _nested(6)}}})
    assert deep.status_code == 400 and deep.json()["code"] == "nesting_too_deep"
    # Brackets inside strings count towards the quick bound but not the real depth.
    shallow = api.post(R, json={"record": {"data": {"email": "[{" * 50}}})
    assert shallow.status_code == 201, shallow.text
    # Many containers side by side (count above the limit, depth below it) still pass.
    wide = api.post(R, json={"record": {"data": {"tags": ["a"], "x": [[1], [2], [3], [4]]}}})
    assert wide.status_code == 201, wide.text
