"""A fresh PostgreSQL database per test, cloned from a migrated template (fast).

The template `rb_tpl_<digest of the migrations>` is made once per server and schema version
(under an advisory lock, so parallel test processes agree); each test then gets
`CREATE DATABASE ... TEMPLATE`, a file copy that takes milliseconds, and drops it after.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

_TEMPLATE_LOCK = 7_262_737


def template_name() -> str:
    from recordbase.stores.common import migrations

    text = "".join(sql for _v, sql in migrations("postgres"))
    return "rb_tpl_" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def ensure_template(base: str) -> str:
    import psycopg

    from recordbase.stores.postgres import migrate

    name = template_name()
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
                try:
                    migrate(f"{base}/{name}")
                except BaseException:
                    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                    raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
    return name


def fresh_database(url: str) -> Iterator[str]:
    import psycopg

    base, _, _dbname = url.rpartition("/")
    template = ensure_template(base)
    name = "rb_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
