"""The body nesting check skips its walk only when the text cannot nest too deep
(web/http.py json_body): the limit still holds exactly at its boundary."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from recordbase.errors import NestingTooDeep
from recordbase.web.http import check_depth, depth_within
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
    # Large bodies (a batch) skip the count and are read from the text: the same boundary.
    pad = "p" * 5000
    big_fits = api.post(R, json={"record": {"data": {"x": _nested(5), "pad": pad}}})
    assert big_fits.status_code == 201, big_fits.text
    big_deep = api.post(R, json={"record": {"data": {"x": _nested(6), "pad": pad}}})
    assert big_deep.status_code == 400 and big_deep.json()["code"] == "nesting_too_deep"
    # body, records list, record, data: four levels before x
    batch = [{"data": {"x": _nested(3 if i % 7 else 4)}} for i in range(300)]
    assert api.post(R, json={"records": batch}).status_code == 201
    batch[123] = {"data": {"x": _nested(5)}}
    too_deep = api.post(R, json={"records": batch})
    assert too_deep.status_code == 400 and too_deep.json()["code"] == "nesting_too_deep"


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_text = st.text(alphabet=st.sampled_from('ab[]{}"\\ \n\u00e9'), max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=40,
)


@settings_(max_examples=400, deadline=None)
@given(value=_json, limit=st.integers(min_value=1, max_value=12))
def test_depth_read_from_the_text_agrees_with_the_walk(value: Any, limit: int) -> None:
    """depth_within never answers wrong: True only within the limit, False only past it
    (None leaves it to the walk), whatever brackets, quotes and backslashes strings hold."""
    raw = orjson.dumps(value)
    within = depth_within(raw, limit)
    depth = _depth(value)
    if within is True:
        assert depth <= limit
    elif within is False:
        assert depth > limit
    # The whole check (text, then the walk when the text cannot tell) is exact.
    if depth > limit:
        with pytest.raises(NestingTooDeep):
            _check(raw, value, limit)
    else:
        _check(raw, value, limit)


def _check(raw: bytes, value: Any, limit: int) -> None:
    within = depth_within(raw, limit)
    if within is None:
        check_depth(value, limit)
    elif not within:
        raise NestingTooDeep("too deep")


def test_depth_read_from_the_text_decides_typical_bodies() -> None:
    """A usual body needs no walk: the text answers True, and False for a deep one."""
    batch = orjson.dumps({"records": [{"data": {"tags": ["a", "[{"], "x": {"y": 1}}}] * 50})
    assert depth_within(batch, 32) is True
    assert depth_within(orjson.dumps(_nested(40)), 32) is False
    assert depth_within(b'{"a": "\\\\", "b": "\\"[[[[[[[[["}', 2) is True
