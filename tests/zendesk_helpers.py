"""Helpers for the Zendesk face tests: a car object with a few fields, Basic auth headers."""

from __future__ import annotations

import base64
from typing import Any

from tests.conftest import Api

CO = "/api/v2/custom_objects"


def basic(email: str, key: str) -> dict[str, str]:
    token = base64.b64encode(f"{email}/token:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def make_object(api: Api, key: str = "car", **members: Any) -> dict[str, Any]:
    body = {"key": key, "title": key.title(), "title_pluralized": key.title() + "s", **members}
    response = api.post(CO, json={"custom_object": body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["custom_object"]
    return result


def make_field(api: Api, obj: str, key: str, type: str = "text", **members: Any) -> dict[str, Any]:
    body = {"key": key, "type": type, "title": key.title(), **members}
    response = api.post(f"{CO}/{obj}/fields", json={"custom_object_field": body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["custom_object_field"]
    return result


def set_name(api: Api, obj: str, **properties: Any) -> dict[str, Any]:
    response = api.patch(
        f"{CO}/{obj}/fields/standard::name",
        json={"custom_object_field": {"properties": properties}},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["custom_object_field"]
    return result


def make_car(api: Api, *, naming: dict[str, Any] | None = None) -> None:
    make_object(api, "car")
    make_field(api, "car", "make")
    make_field(api, "car", "model")
    make_field(api, "car", "year", "integer")
    make_field(
        api,
        "car",
        "color",
        "dropdown",
        custom_field_options=[
            {"name": "Red", "value": "red"},
            {"name": "Blue", "value": "blue"},
        ],
    )
    if naming:
        set_name(api, "car", **naming)


def create(api: Api, obj: str = "car", **record: Any) -> dict[str, Any]:
    response = api.post(f"{CO}/{obj}/records", json={"custom_object_record": record})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["custom_object_record"]
    return result
