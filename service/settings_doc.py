"""The README's settings table, rendered from ``Settings`` so the two cannot drift.

    python -m service.settings_doc                   # print the table
    python -m service.settings_doc --write README.md # replace it between the markers

tests/test_settings.py fails when README.md's table is not what this renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from service.settings import GROUP_TITLES, Settings

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
COMMAND = "python -m service.settings_doc --write README.md"


def env_name(name: str, settings: type[Settings] = Settings) -> str:
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def field_group(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    return str(extra.get("group", "")) if isinstance(extra, dict) else ""


def _is_secret(info: FieldInfo) -> bool:
    return "SecretStr" in str(info.annotation)


def _default(info: FieldInfo) -> str:
    value: Any = info.get_default(call_default_factory=True)
    if value is None or value == []:
        return "unset"
    if _is_secret(info):
        # A shipped secret would be a leak; its value stays out of the docs.
        return "(secret)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, Path) and not value.is_absolute():
        # Path drops the leading "./", which says "relative to where it runs".
        return f"`./{value}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table(settings: type[Settings] = Settings) -> str:
    """The Markdown between the markers: one row per setting, grouped as in Settings."""
    lines = [
        START,
        f"<!-- Generated from service/settings.py by: {COMMAND} -->",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    fields = settings.model_fields
    for group, title in GROUP_TITLES.items():
        lines.append(f"| **{title}** | | |")
        for name, info in fields.items():
            if field_group(info) == group:
                description = _cell(info.description or "")
                variable = env_name(name, settings)
                lines.append(f"| `{variable}` | {_default(info)} | {description} |")
    lines += ["", END]
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """``text`` with everything from START to END replaced by ``table``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {START} ... {END} block to replace")
    return text[:start] + table + text[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the table in FILE")
    args = parser.parse_args(argv)
    table = settings_table()
    if args.write is None:
        print(table)
        return 0
    text = args.write.read_text("utf-8")
    updated = with_table(text, table)
    if updated != text:
        args.write.write_text(updated, "utf-8")
        print(f"updated the settings table in {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
