"""Docs are part of the work: every error code and every setting is documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from recordbase.config import Settings
from recordbase.errors import all_error_classes

DOCS = Path(__file__).parent.parent / "docs"
README = Path(__file__).parent.parent / "README.md"


def test_every_error_code_is_documented() -> None:
    text = (DOCS / "errors.md").read_text()
    missing = sorted(
        {c.code for c in all_error_classes()}
        - {c.code for c in all_error_classes() if f"`{c.code}`" in text}
    )
    assert missing == []


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        f.name
        for f in fields(Settings)
        if f"`{f.name}`" not in text or f"RECORDBASE_{f.name.upper()}" not in text
    ]
    assert missing == []
    assert all(f.metadata.get("help") for f in fields(Settings))


def test_readme_quick_start_and_links() -> None:
    text = README.read_text()
    assert "./dev.sh serve" in text and "./dev.sh test" in text
    for link in ("docs/errors.md", "docs/configuration.md", "docs/auth.md", "docs/api/native.md"):
        assert link in text and (README.parent / link).exists(), link
