"""The team's labelling guidelines and rubric, and their version.

The guidelines folder (data/guidelines/) holds the principles in `guidelines.md` and the rubric
(dimensions, weights, thresholds) in `rubric.json`. The version is a content hash of every file in
the folder, so any edit, and only an edit, makes a new version; every label carries the version it
was made under, which is how stale batches are found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefpipe.core import settings
from prefpipe.errors import PrefpipeError

GUIDELINES_FILE = "guidelines.md"
RUBRIC_FILE = "rubric.json"


class GuidelinesError(PrefpipeError, ValueError):
    """The guidelines folder is missing or a file in it is malformed."""


@dataclass(frozen=True)
class RubricDimension:
    name: str
    weight: float
    description: str


@dataclass(frozen=True)
class Guidelines:
    version: str
    """First 12 hex digits of the sha256 over every file's relative path and bytes."""
    text: str
    dimensions: tuple[RubricDimension, ...]
    thresholds: dict[str, float] = field(default_factory=dict)
    dimension_scale: tuple[int, int] = (1, 5)
    files: tuple[str, ...] = ()

    def threshold(self, name: str, default: float) -> float:
        return float(self.thresholds.get(name, default))

    def rubric_text(self) -> str:
        """The rubric as a short list, for prompts and the annotation page."""
        return "\n".join(f"- {d.name} (weight {d.weight:.2f}): {d.description}" for d in self.dimensions)

    def rubric_dict(self) -> list[dict[str, Any]]:
        return [{"name": d.name, "weight": d.weight, "description": d.description} for d in self.dimensions]


def version_of(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def load_guidelines(folder: Path | None = None) -> Guidelines:
    folder = Path(folder) if folder is not None else settings.guidelines_dir()
    text_path, rubric_path = folder / GUIDELINES_FILE, folder / RUBRIC_FILE
    for path in (text_path, rubric_path):
        if not path.is_file():
            raise GuidelinesError(f"{path}: missing; the guidelines folder needs {GUIDELINES_FILE} and {RUBRIC_FILE}")
    try:
        rubric = json.loads(rubric_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GuidelinesError(f"{rubric_path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    dims = []
    for i, raw in enumerate(rubric.get("dimensions", [])):
        try:
            dims.append(RubricDimension(str(raw["name"]), float(raw["weight"]), str(raw.get("description", ""))))
        except (KeyError, TypeError, ValueError) as exc:
            raise GuidelinesError(f"{rubric_path}: dimensions[{i}]: needs a name and a numeric weight ({exc})") from exc
    if not dims:
        raise GuidelinesError(f"{rubric_path}: field 'dimensions' is empty or missing")
    total = sum(d.weight for d in dims)
    if abs(total - 1.0) > 1e-6:
        raise GuidelinesError(f"{rubric_path}: field 'dimensions': weights sum to {total:g}, not 1")
    scale = rubric.get("dimension_scale", [1, 5])
    return Guidelines(
        version=version_of(folder),
        text=text_path.read_text(encoding="utf-8"),
        dimensions=tuple(dims),
        thresholds={k: float(v) for k, v in rubric.get("thresholds", {}).items()},
        dimension_scale=(int(scale[0]), int(scale[1])),
        files=tuple(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())),
    )
