"""The request log's declared indexes are real: filtering on custom_identifier uses one."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.test_keywords_face import DOC_EXAMPLE, create
from tests.test_query_search_index import plan


@pytest.mark.backend("sqlite")  # SQLite's EXPLAIN QUERY PLAN (PostgreSQL: test_postgres_indexes)
def test_custom_identifier_filter_uses_its_index(api: Api) -> None:
    for i in range(30):
        log = {**DOC_EXAMPLE, "custom_identifier": f"c{i}", "trace_unique_id": f"t{i}"}
        r = create(api, log)
        assert r.status_code == 201, r.text
    # The type was made (and its indexes built) on the first log, when the table was empty;
    # the writer refreshes statistics every sqlite_analyze_seconds — here, at once.
    api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.store.write(lambda tx: tx.conn.execute("ANALYZE"))
    )
    used = plan(api, "request_log", {"data.custom_identifier": "c7"})
    assert "by_custom_identifier" in used
    assert "by_trace_unique_id" in plan(api, "request_log", {"data.trace_unique_id": "t1"})
