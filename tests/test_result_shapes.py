"""The JSON shapes clients see stay put: every result model's schema equals the snapshot
taken before answers, summaries and briefings shared one base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import service.models

SNAPSHOT = Path(__file__).parent / "snapshots" / "result_models.json"


def _ignoring_field_order(schema: Any) -> Any:
    """Fields a base model declares come first in a subclass, so the order of properties
    and of the "required" list may change; dicts already compare without order."""
    if isinstance(schema, dict):
        return {
            k: sorted(v) if k == "required" else _ignoring_field_order(v) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_ignoring_field_order(v) for v in schema]
    return schema


SNAPSHOTTED: dict[str, Any] = json.loads(SNAPSHOT.read_text("utf-8"))


@pytest.mark.parametrize("name", sorted(SNAPSHOTTED))
def test_schema_matches_the_snapshot(name: str) -> None:
    model = getattr(service.models, name)
    assert issubclass(model, BaseModel)
    assert _ignoring_field_order(model.model_json_schema()) == _ignoring_field_order(
        SNAPSHOTTED[name]
    )


def test_every_result_model_is_snapshotted() -> None:
    defined = {
        name
        for name, obj in vars(service.models).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == service.models.__name__
    }
    # The shared base is never sent on its own; every model a client receives is pinned.
    assert defined - set(SNAPSHOTTED) == {"CitedResult"}
