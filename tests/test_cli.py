"""The operator contract: keys, types apply, records import/export, init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.server import cli


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    out = cli(
        "keys",
        "create",
        "--db",
        db,
        "--project",
        "acme",
        "--scope",
        "records:read",
        "--scope",
        "types:write:invoice",
        "--rate",
        "10/s",
        "--burst",
        "5",
        "--expires",
        "30d",
    )
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("rb_") and len(secret) > 30
    listed = [json.loads(line) for line in cli("keys", "list", "--db", db, "--json").splitlines()]
    assert len(listed) == 1 and listed[0]["scopes"] == ["records:read", "types:write:invoice"]
    assert listed[0]["rate"] == 10.0 and listed[0]["burst"] == 5 and listed[0]["expires_at"]
    assert secret not in json.dumps(listed)
    cli("keys", "revoke", "--db", db, secret)
    listed = [json.loads(line) for line in cli("keys", "list", "--db", db, "--json").splitlines()]
    assert listed[0]["revoked_at"] is not None


def test_bad_scope_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="valid"):
        cli("keys", "create", "--db", str(tmp_path / "x.db"), "--project", "a", "--scope", "root")


def test_types_apply_and_records_round_trip(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    cli("init", "--db", db)
    cli("keys", "create", "--db", db, "--project", "acme", "--scope", "admin")
    types = tmp_path / "types.json"
    types.write_text(json.dumps([{"key": "invoice", "schema": {"type": "object"}}]))
    assert "created invoice" in cli("types", "apply", str(types), "--db", db, "--project", "acme")
    types.write_text(json.dumps({"key": "invoice", "description": "bills"}))
    assert "updated invoice" in cli("types", "apply", str(types), "--db", db, "--project", "acme")
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        "\n".join(json.dumps({"external_id": f"e{i}", "data": {"n": i}}) for i in range(1203))
    )
    out = cli("records", "import", str(lines), "--db", db, "--project", "acme", "--type", "invoice")
    assert "imported 1203" in out
    exported = cli("records", "export", "--db", db, "--project", "acme", "--type", "invoice")
    rows = [json.loads(line) for line in exported.splitlines()]
    assert sorted(r["data"]["n"] for r in rows) == list(range(1203))
    out = cli(
        "records",
        "import",
        str(lines),
        "--db",
        db,
        "--project",
        "acme",
        "--type",
        "invoice",
        "--on",
        "external_id",
    )
    assert "imported 1203" in out
