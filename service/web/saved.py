"""Briefings kept on disk, one JSON file each, so a page can show one again
(``newsdesk brief --save``, ``POST /briefings``): ``<data dir>/briefings/<id>.json``."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.models import Briefing

_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class SavedBriefing:
    id: str
    created_at: str
    briefing: Briefing


class BriefingStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def save(self, briefing: Briefing) -> SavedBriefing:
        """Written to a temporary file and renamed, so a page never reads half a file."""
        saved = SavedBriefing(
            id=secrets.token_hex(8),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            briefing=briefing,
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{saved.id}.json"
        tmp = path.with_name(f".{saved.id}.tmp")
        record = {
            "id": saved.id,
            "created_at": saved.created_at,
            "briefing": briefing.model_dump(mode="json"),
        }
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return saved

    def get(self, briefing_id: str) -> SavedBriefing | None:
        # The id is checked before it becomes a path: nothing outside the folder is read.
        if not _ID.match(briefing_id):
            return None
        try:
            return self._read(self.dir / f"{briefing_id}.json")
        except FileNotFoundError:
            return None

    def list(self, limit: int = 50) -> list[SavedBriefing]:
        """The newest first."""
        if not self.dir.is_dir():
            return []
        found: list[SavedBriefing] = []
        for path in self.dir.glob("*.json"):
            try:
                found.append(self._read(path))
            except (OSError, ValueError):
                continue  # one unreadable file hides itself, not the list
        found.sort(key=lambda s: s.created_at, reverse=True)
        return found[:limit]

    @staticmethod
    def _read(path: Path) -> SavedBriefing:
        record = json.loads(path.read_text(encoding="utf-8"))
        return SavedBriefing(
            id=record["id"],
            created_at=record["created_at"],
            briefing=Briefing.model_validate(record["briefing"]),
        )
