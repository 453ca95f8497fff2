"""The JSON each prompt asks the model for: claims backed by quotes from numbered passages
(``CLAIMS_SCHEMA``), arranged per job. Sent as the structured-output schema where the
endpoint supports it; the ledger checks every quote whatever the model returns."""

from __future__ import annotations

from typing import Any

from service.verify import CLAIMS_SCHEMA

POINTS_SCHEMA = CLAIMS_SCHEMA
DIFFERENCES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "sides": POINTS_SCHEMA},
        "required": ["topic", "sides"],
    },
}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"refused": {"type": "boolean"}, "claims": CLAIMS_SCHEMA},
    "required": ["claims"],
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"points": POINTS_SCHEMA, "differences": DIFFERENCES_SCHEMA},
    "required": ["points"],
}
BRIEF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "bottom_line": POINTS_SCHEMA,
        "developments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "date": {"type": ["string", "null"]},
                    "text": {"type": "string"},
                    "quotes": POINTS_SCHEMA["items"]["properties"]["quotes"],
                },
                "required": ["text", "quotes"],
            },
        },
        "perspectives": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"actor": {"type": "string"}, "points": POINTS_SCHEMA},
                "required": ["actor", "points"],
            },
        },
        "differences": DIFFERENCES_SCHEMA,
        "open_questions": POINTS_SCHEMA,
    },
    "required": ["bottom_line", "developments"],
}
