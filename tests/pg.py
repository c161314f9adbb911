"""A fresh PostgreSQL database per test (created from the URL's server, dropped after)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator


def fresh_database(url: str) -> Iterator[str]:
    import psycopg

    base, _, _dbname = url.rpartition("/")
    name = "rb_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
