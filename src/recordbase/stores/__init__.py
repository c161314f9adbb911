"""Database backends behind the core's Store protocol; `open_store` picks one by URL."""

from __future__ import annotations

from recordbase.config import Settings
from recordbase.core.store import Store


def open_store(settings: Settings) -> Store:
    url = settings.database_url
    if url.startswith(("postgres://", "postgresql://")):
        from recordbase.stores.postgres import PostgresStore

        return PostgresStore(settings)
    from recordbase.stores.sqlite import SqliteStore

    return SqliteStore(settings)
