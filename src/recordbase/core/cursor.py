"""Opaque keyset cursors: (query fingerprint, sort values, id), signed so they can't be forged.

A cursor is only good for the query that made it: a cursor from another filter or sort, or
one that was altered, is a 400 `invalid_cursor` rather than a wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from recordbase.errors import InvalidCursor


def fingerprint(*parts: Any) -> str:
    raw = orjson.dumps(parts, default=str, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def encode(secret: bytes, fp: str, values: tuple[Any, ...]) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps([fp, list(values)])).rstrip(b"=")
    sig = hmac.new(secret, body, hashlib.sha256).digest()[:12]
    return (body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()


def decode(secret: bytes, fp: str, cursor: str) -> tuple[Any, ...]:
    try:
        body, sig = cursor.encode().split(b".", 1)
        expected = hmac.new(secret, body, hashlib.sha256).digest()[:12]
        given = base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4))
        if not hmac.compare_digest(expected, given):
            raise ValueError("signature")
        got_fp, values = orjson.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("The cursor is malformed or was altered.") from exc
    if got_fp != fp or not isinstance(values, list):
        raise InvalidCursor(
            "The cursor belongs to a different query (filter or sort changed); start again "
            "without a cursor."
        )
    return tuple(values)
