"""Judge prompt templates: versioned files, so every label says which prompt made it.

A template is a text file with [system], [user] and [reminder] sections and `$name` placeholders
(string.Template, so braces in responses or code are harmless). Its version is its name plus a
hash of its bytes: editing the file makes a new version without anyone remembering to bump it.
Packaged templates live in prefpipe/judge/templates/; a path to any .txt file works too.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

from prefpipe.errors import PrefpipeError

TEMPLATES_DIR = Path(__file__).with_name("templates")
SECTIONS = ("system", "user", "reminder")


class TemplateError(PrefpipeError, ValueError):
    """A template file is missing, lacks a section, or uses an unknown placeholder."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    path: Path
    system: string.Template
    user: string.Template
    reminder: str
    version: str
    placeholders: frozenset[str]

    def messages(self, **values: str) -> tuple[tuple[str, str], ...]:
        missing = self.placeholders - values.keys()
        if missing:
            raise TemplateError(f"{self.path}: no value for placeholder(s) {', '.join(sorted(missing))}")
        system = self.system.substitute(values).strip()
        user = self.user.substitute(values).strip()
        return (("system", system), ("user", user)) if system else (("user", user),)


def load_template(name_or_path: str | Path, *, required: frozenset[str] = frozenset(), allowed: frozenset[str] | None = None) -> PromptTemplate:
    """Load a packaged template by name (e.g. "judge_v1") or a template file by path."""
    path = Path(name_or_path)
    if path.suffix != ".txt":
        path = TEMPLATES_DIR / f"{name_or_path}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TEMPLATES_DIR.glob("*.txt")))
        raise TemplateError(f"{path}: template not found (packaged templates: {known})")
    data = path.read_bytes()
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        header = line.strip()
        if header.startswith("[") and header.endswith("]") and header[1:-1] in SECTIONS:
            current = header[1:-1]
            if current in sections:
                raise TemplateError(f"{path}: line {lineno}: section [{current}] appears twice")
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
        elif header and not header.startswith("#"):
            raise TemplateError(f"{path}: line {lineno}: text before the first section ([system], [user] or [reminder])")
    for name in ("user", "reminder"):
        if name not in sections:
            raise TemplateError(f"{path}: section [{name}] is missing")
    system = string.Template("\n".join(sections.get("system", [])))
    user = string.Template("\n".join(sections["user"]))
    used = frozenset(_placeholders(system, path) | _placeholders(user, path))
    if required - used:
        raise TemplateError(f"{path}: placeholder(s) {', '.join(sorted(required - used))} are required but not used")
    if allowed is not None and used - allowed:
        raise TemplateError(f"{path}: unknown placeholder(s) {', '.join(sorted(used - allowed))}; allowed: {', '.join(sorted(allowed))}")
    return PromptTemplate(
        name=path.stem,
        path=path,
        system=system,
        user=user,
        reminder="\n".join(sections["reminder"]).strip(),
        version=f"{path.stem}@{hashlib.sha256(data).hexdigest()[:12]}",
        placeholders=used,
    )


def _placeholders(template: string.Template, path: Path) -> set[str]:
    if not template.is_valid():
        raise TemplateError(f"{path}: a '$' is not followed by a placeholder name (write $$ for a literal dollar sign)")
    return set(template.get_identifiers())
