"""The Zendesk custom objects face: /api/v2/custom_objects/... and /api/v2/job_statuses/...

A thin translation over the core (see docs/faces/zendesk.md): objects and fields are record
types (model.py, objects.py, fields.py), records are records (codec.py, records.py), the
filtered-search language becomes the core filter tree (search.py), cursors wrap the core's
keyset cursors (paging.py), and bulk jobs run item by item (jobs.py). errors.py holds the
face's credentials, rate-limit headers and error renderer.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from recordbase.web.faces.zendesk import fields, jobs, objects, records
from recordbase.web.faces.zendesk.errors import credentials, limit_headers, refine, render_error
from recordbase.web.middleware import Face

FACE = Face(
    "zendesk",
    ("/api/v2/custom_objects", "/api/v2/job_statuses"),
    render_error,
    credentials=credentials,
    limit_headers=limit_headers,
    refine=refine,
)


def routes() -> list[BaseRoute]:
    # Fixed segments (limits, reorder, count, search...) come before the {param} routes.
    return [*objects.routes(), *fields.routes(), *records.routes(), *jobs.routes()]
