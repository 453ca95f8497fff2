"""Prompt templates, read from ``prompts/*.md`` and filled with ``$name`` placeholders.

The templates are the ``prompts`` package's data, found through ``importlib.resources``,
so they load the same from a source checkout and from an installed wheel.

``string.Template`` rather than ``str.format``: prompts contain JSON examples whose
braces must stay literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.resources import files
from importlib.resources.abc import Traversable
from string import Template

from vectorstore.chunk import count_tokens

PROMPTS_DIR: Traversable = files("prompts")
_FRONT = re.compile(r"\A---\n(?P<meta>.*?)\n---\n", re.DOTALL)
_SECTION = re.compile(r"^## (system|user)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str

    def render(self, **values: object) -> tuple[str, str]:
        """System and user messages; a missing placeholder value is a bug, so it raises."""
        strings = {k: str(v) for k, v in values.items()}
        return Template(self.system).substitute(strings), Template(self.user).substitute(strings)

    @cached_property
    def template_tokens(self) -> int:
        """Tokens of both templates, placeholders included; counted once per prompt."""
        return count_tokens(self.system) + count_tokens(self.user)


@cache
def load_prompt(name: str, directory: Traversable = PROMPTS_DIR) -> Prompt:
    raw = (directory / f"{name}.md").read_text("utf-8")
    front = _FRONT.match(raw)
    if not front:
        raise ValueError(f"prompt {name}: missing '---' front matter with a version")
    meta = dict(line.split(":", 1) for line in front.group("meta").splitlines() if ":" in line)
    version = meta.get("version", "").strip()
    if not version:
        raise ValueError(f"prompt {name}: front matter has no version")
    body = raw[front.end() :]
    parts = _SECTION.split(body)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise ValueError(f"prompt {name}: needs exactly '## system' and '## user' sections")
    return Prompt(name, version, sections["system"], sections["user"])
