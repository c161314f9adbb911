"""API key secrets: generation and hashing. Only the SHA-256 of a secret is ever stored.

A secret is `rb_` + 40 random URL-safe characters (240 bits). Such a secret needs no slow
password hash: guessing is hopeless, and a fast digest keeps authentication off the hot path.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "rb_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(30)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The first characters of a secret, shown in `keys list` to tell keys apart."""
    return secret[:10]


def looks_like_secret(text: str) -> bool:
    return text.startswith(PREFIX) and len(text) > 20
