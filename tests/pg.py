"""A fresh, empty PostgreSQL namespace per test: its own schema in the URL's database.

`CREATE DATABASE` costs about a second here (it fsyncs a whole database), so each test instead
gets a new schema `rb_<random>` and a URL whose `options=-csearch_path=...` points every
connection at it; the store migrates it like any empty database, and the test drops it after.
The isolation is the same for our purposes: tables, indexes, sequences and advisory-locked
migrations are per schema. (LISTEN/NOTIFY channels are per database, so parallel tests may see
each other's epoch notifications: that only costs them a cache reload.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def fresh_database(url: str) -> Iterator[str]:
    import psycopg

    name = "rb_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield with_schema(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
