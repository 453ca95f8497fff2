"""The JSON shapes clients see stay put: every result model's schema equals the snapshot
taken before answers, summaries and briefings shared one base model, and the whole
OpenAPI document equals the one taken before request models were unified.

A deliberate API change regenerates both snapshots with ``python -m tests.test_result_shapes``
and shows up in review as a diff of those files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import service.models

SNAPSHOT = Path(__file__).parent / "snapshots" / "result_models.json"
OPENAPI_SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"


def _ignoring_field_order(schema: Any) -> Any:
    """Fields a base model declares come first in a subclass, so the order of properties
    and of the "required" list may change; dicts already compare without order."""
    if isinstance(schema, dict):
        return {
            k: sorted(v) if k == "required" and isinstance(v, list) else _ignoring_field_order(v)
            for k, v in schema.items()
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


def defined_models() -> set[str]:
    return {
        name
        for name, obj in vars(service.models).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == service.models.__name__
    }


def test_every_result_model_is_snapshotted() -> None:
    # The shared base is never sent on its own; every model a client receives is pinned.
    assert defined_models() - set(SNAPSHOTTED) == {"CitedResult"}


def current_openapi() -> dict[str, Any]:
    import tempfile

    from service.api import create_app
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(_env_file=None, data_dir=Path(data), llm_base_url=None)
        return create_app(settings).openapi()


def test_the_openapi_document_matches_the_snapshot() -> None:
    snapshot = json.loads(OPENAPI_SNAPSHOT.read_text("utf-8"))
    assert _ignoring_field_order(current_openapi()) == _ignoring_field_order(snapshot)


def current_result_models() -> dict[str, Any]:
    names = sorted(defined_models() - {"CitedResult"})
    return {name: getattr(service.models, name).model_json_schema() for name in names}


if __name__ == "__main__":
    OPENAPI_SNAPSHOT.write_text(json.dumps(current_openapi(), indent=1, sort_keys=True) + "\n")
    SNAPSHOT.write_text(json.dumps(current_result_models(), indent=2) + "\n", "utf-8")
