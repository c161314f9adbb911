"""`/v1/openapi.json` (OpenAPI 3.1 of the native API) and `/docs`, a page that renders it.

The document is built once from the route table below, so a route added to the native API
without a line here fails the test that compares both. `/docs` is a small self-contained page
(no CDN: self-hosted installs often have no outbound network).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from recordbase import __version__
from recordbase.config import Settings
from recordbase.errors import all_error_classes
from recordbase.web.http import JSONResponse

T = "/v1/types"
R = T + "/{type}/records"

# (method, path, summary, request body?, success status, response schema ref)
OPERATIONS: list[tuple[str, str, str, str | None, str, str | None]] = [
    ("get", T, "List record types", None, "200", "TypeList"),
    ("post", T, "Create a record type", "TypeDefinition", "201", "RecordType"),
    ("get", T + "/{type}", "Get a record type", None, "200", "RecordType"),
    ("patch", T + "/{type}", "Change a record type", "TypeDefinition", "200", "RecordType"),
    ("delete", T + "/{type}", "Delete a record type and its records", None, "204", None),
    ("post", R, "Create records (a batch: all or nothing)", "RecordBatch", "201", "RecordList"),
    (
        "put",
        R,
        "Upsert records by ?on=external_id|name|<unique key>",
        "RecordBatch",
        "200",
        "UpsertResult",
    ),
    ("get", R, "List records (filters, sort, keyset pages)", None, "200", "RecordPage"),
    ("post", R + "/query", "Query records (JSON filter form)", "RecordQuery", "200", "RecordPage"),
    ("get", R + "/count", "Count records (same filters as the list)", None, "200", "RecordCount"),
    ("get", R + "/{id}", "Get a record", None, "200", "Record"),
    (
        "patch",
        R + "/{id}",
        "Update a record (data is a JSON Merge Patch)",
        "RecordInput",
        "200",
        "Record",
    ),
    ("put", R + "/{id}", "Replace a record", "RecordInput", "200", "Record"),
    ("delete", R + "/{id}", "Delete a record", None, "204", None),
    ("get", "/v1/jobs/{id}", "Get a job (an asynchronous write)", None, "200", "Job"),
]
# Writes that answer 202 with a Job under `Prefer: respond-async` (docs/jobs.md).
ASYNC_OPERATIONS = {
    ("post", R),
    ("put", R),
    ("patch", R + "/{id}"),
    ("put", R + "/{id}"),
    ("delete", R + "/{id}"),
}

_STRING_OR_NULL = {"type": ["string", "null"]}
SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": sorted({c.code for c in all_error_classes()})},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
    "TypeDefinition": {
        "type": "object",
        "properties": {
            "key": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "schema": {"type": "object", "description": "JSON Schema 2020-12 of `data`"},
            "naming": {"type": ["object", "null"]},
            "unique_keys": {"type": "array", "items": {"$ref": "#/components/schemas/KeySpec"}},
            "indexes": {"type": "array", "items": {"$ref": "#/components/schemas/KeySpec"}},
            "aliases": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "old data path -> new data path (docs/types.md)",
            },
            "computed": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "data path -> expression, evaluated on write (docs/types.md)",
            },
            "read_only": {"type": "array", "items": {"type": "string"}},
            "discriminator": {
                "type": ["object", "null"],
                "properties": {
                    "field": {"type": "string"},
                    "cases": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "parse_json": {"type": "array", "items": {"type": "string"}}
                            },
                        },
                    },
                },
            },
            "constants": {"type": "object", "description": "names usable in expressions"},
            "search": {
                "type": "boolean",
                "default": False,
                "description": "full-text search (`q=`) over the name and string data; "
                "off by default (it costs every write; docs/filters.md)",
            },
        },
    },
    "KeySpec": {
        "type": "object",
        "required": ["name", "fields"],
        "properties": {
            "name": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "string"}},
        },
    },
    "RecordType": {
        "allOf": [
            {"$ref": "#/components/schemas/TypeDefinition"},
            {
                "type": "object",
                "properties": {
                    "version": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
        ]
    },
    "TypeList": {
        "type": "object",
        "properties": {
            "types": {"type": "array", "items": {"$ref": "#/components/schemas/RecordType"}}
        },
    },
    "RecordInput": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": _STRING_OR_NULL,
            "external_id": _STRING_OR_NULL,
            "owner": _STRING_OR_NULL,
            "data": {"type": "object"},
            "description": _STRING_OR_NULL,
            "attachments": {"type": "array"},
        },
    },
    "Record": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "name": _STRING_OR_NULL,
            "external_id": _STRING_OR_NULL,
            "owner": _STRING_OR_NULL,
            "data": {"type": "object"},
            "description": _STRING_OR_NULL,
            "attachments": {"type": "array"},
            "version": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "created_by": _STRING_OR_NULL,
            "updated_by": _STRING_OR_NULL,
        },
    },
    "RecordBatch": {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/RecordInput"}},
            "record": {"$ref": "#/components/schemas/RecordInput"},
        },
    },
    "RecordList": {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}
        },
    },
    "RecordPage": {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
            "next_cursor": _STRING_OR_NULL,
            "count": {"type": "integer"},
        },
    },
    "RecordQuery": {
        "type": "object",
        "properties": {
            "filter": {
                "type": "object",
                "description": '{"<path>": {"operator": op, "value": [...]}, "and"|"or": '
                '[...], "not": {...}} (docs/filters.md)',
            },
            "sort": {"type": ["array", "string"], "items": {"type": "string"}},
            "limit": {"type": "integer", "minimum": 1},
            "cursor": _STRING_OR_NULL,
            "count": {"type": "boolean"},
            "q": _STRING_OR_NULL,
            "page": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1},
        },
    },
    "RecordCount": {"type": "object", "properties": {"count": {"type": "integer"}}},
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "action": {
                "type": "string",
                "enum": ["create", "upsert", "update", "delete", "delete_by"],
            },
            "options": {"type": "object"},
            "status": {"type": "string", "enum": ["queued", "running", "completed", "failed"]},
            "total": {"type": "integer"},
            "processed": {"type": "integer"},
            "succeeded": {"type": "integer"},
            "failed": {"type": "integer"},
            "progress": {"type": "number"},
            "attempts": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "error": {"type": ["object", "null"]},
            "results": {"type": "array", "items": {"type": "object"}},
            "url": {"type": "string"},
        },
    },
    "UpsertResult": {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
            "created": {"type": "array", "items": {"type": "string"}},
            "updated": {"type": "array", "items": {"type": "string"}},
        },
    },
}

_ERRORS = {
    "400": "Bad input (see code and errors)",
    "401": "Missing, unknown, revoked or expired key",
    "403": "Missing scope",
    "404": "No such type or record in this project",
    "409": "Conflict (duplicate id, unique key, schema change)",
    "412": "If-Match does not match the record's version",
    "413": "Body, batch or record too large",
    "415": "Content-Type is not JSON",
    "429": "Rate limited (see Retry-After)",
}


def _operation(
    method: str, path: str, summary: str, body: str | None, status: str, schema: str | None
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "responses": {
            status: {"description": "Success"}
            if schema is None
            else {
                "description": "Success",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                },
            },
            **{
                code: {
                    "description": text,
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
                for code, text in _ERRORS.items()
            },
        },
    }
    if (method, path) in ASYNC_OPERATIONS:
        op["responses"]["202"] = {
            "description": "Accepted as a job (the request sent Prefer: respond-async)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
        }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in ("type", "id")
        if "{" + name + "}" in path
    ]
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, body, status, schema in OPERATIONS:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, body, status, schema)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "recordbase native API",
            "version": __version__,
            "description": "Typed JSON records over HTTP. Errors are RFC 9457 problem+json.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def routes(settings: Settings) -> list[BaseRoute]:
    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    page = (resources.files("recordbase.web") / "static" / "docs.html").read_text()

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(page)

    found: list[BaseRoute] = [Route("/v1/openapi.json", openapi, methods=["GET"])]
    if settings.docs_enabled:
        found.append(Route("/docs", docs_page, methods=["GET"]))
    return found
