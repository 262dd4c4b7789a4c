"""Versions of a batch's published dataset: what was published when, under which versions, what
changed since the previous publish, and the exact files, to export again.

Every publish with rows is identified by a content hash: the SHA-256 of its train.jsonl, whose rows
are written in pair-id order (`canonical_order`) with the bytes Python's json writes, so the same
rows give the same hash whatever order a run computed them in. A publish whose hash is the latest
version's records nothing new.

Where versions live: beside the published files, immutable and named by their content,

    <exports>/<batch>/versions/<version>/train.parquet, train.jsonl, README.md
    <exports>/<batch>/versions/history.jsonl     one record a publish, oldest first

The data files of a version are hard links to the files published then (atomic writes replace the
published names with new files, so the old ones live on under versions/ only): the current version
costs no disk beyond the published files, an older one its own files. A file system without hard
links gets copies. The card is copied (it is small, and a card written in place must not change an
old version's). A version's files are checked against the SHA-256 recorded for them before they are
exported again, so an export is what was published, or an error. The warehouse is not the place:
its rows say what the labels are now, while these files are what people took away, byte for byte,
and a team's shared exports folder holds them for every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core.files import atomic_write
from prefpipe.errors import PrefpipeError

VERSIONS_DIR = "versions"
HISTORY_FILE = "history.jsonl"
DATA_FILES = ("train.parquet", "train.jsonl")
CARD_FILE = "README.md"
VERSION_DIGITS = 16
"""Hex digits of the content hash that name a version (64 bits: no two versions of a batch collide)."""
_READ_BLOCK = 1 << 22


class DatasetVersionError(PrefpipeError):
    """A version that is not there, is ambiguous, or whose files no longer match their record."""


@dataclass(frozen=True)
class DatasetChange:
    """What changed since the previous version, counted by pair."""

    previous: str
    added: int
    removed: int
    labels_changed: int
    otherwise_changed: int
    """Pairs with the same label whose row changed all the same (text, margin, source or versions)."""


@dataclass(frozen=True)
class DatasetVersion:
    version: str
    content_hash: str
    batch_id: str
    published_at: str
    """ISO-8601 UTC."""
    run_id: str | None
    rows: int
    guideline_versions: tuple[str, ...]
    judge_prompt_versions: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    """File name -> SHA-256 of the bytes published."""
    change: DatasetChange | None = None
    """None for the batch's first version, or when the previous version's files are gone."""
    previous: str | None = None
    """The version before this one (None: the first)."""

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping) -> DatasetVersion:
        change = record.get("change")
        return cls(**{**record, "guideline_versions": tuple(record["guideline_versions"]),
                      "judge_prompt_versions": tuple(record["judge_prompt_versions"]), "files": dict(record["files"]),
                      "change": DatasetChange(**change) if change else None})


@dataclass(frozen=True)
class Publication:
    """A publish about to be recorded: the version its files make, whether it is new (not the
    latest version's content again), and the version before it."""

    version: DatasetVersion
    new: bool
    previous: DatasetVersion | None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def canonical_order(table: pa.Table) -> pa.Table:
    """The rows in pair-id order (as they are already when preference_dataset made them: then no
    copy), so the files, and the content hash, do not depend on the order rows were computed in."""
    ids = table["pair_id"]
    if table.num_rows < 2 or (ids.null_count == 0 and pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py()):
        return table
    return table.take(pc.sort_indices(table, sort_keys=[("pair_id", "ascending")]))


def versions_in(table: pa.Table, column: str) -> tuple[str, ...]:
    """The distinct versions a column names, "+"-joined values split (a label made of several)."""
    values = pc.unique(pc.drop_null(table[column])).to_pylist() if column in table.column_names else []
    return tuple(sorted({part for value in values for part in str(value).split("+") if part}))


def versions_dir(export_dir: Path) -> Path:
    return Path(export_dir) / VERSIONS_DIR


def history(export_dir: Path) -> list[DatasetVersion]:
    """Every recorded version of the batch whose files are in export_dir, oldest first."""
    path = versions_dir(export_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    out = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            out.append(DatasetVersion.from_record(json.loads(text)))
        except (ValueError, TypeError, KeyError) as exc:
            raise DatasetVersionError(f"{path}, line {line}: not a dataset version record ({exc})") from None
    return out


def find_version(export_dir: Path, version: str) -> DatasetVersion:
    """The newest record of the version a hash (or a prefix of at least 4 hex digits) names."""
    wanted = version.strip().lower()
    found = {v.version: v for v in history(export_dir) if v.version.startswith(wanted) or v.content_hash.startswith(wanted)}
    if len(wanted) < 4 or not found:
        known = ", ".join(v.version for v in reversed(history(export_dir))) or "none"
        raise DatasetVersionError(f"no version {version!r} of the dataset in {export_dir} (known: {known})")
    if len(found) > 1:
        raise DatasetVersionError(f"version {version!r} is ambiguous: {', '.join(sorted(found))}")
    return next(iter(found.values()))


CHANGES_SQL = """
WITH n AS (SELECT pair_id, label, hash(prompt, chosen, rejected, margin, label_source, batch_id, guideline_version, judge_prompt_version) AS h
           FROM read_parquet($new)),
     o AS (SELECT pair_id, label, hash(prompt, chosen, rejected, margin, label_source, batch_id, guideline_version, judge_prompt_version) AS h
           FROM read_parquet($old))
SELECT count(*) FILTER (o.pair_id IS NULL), count(*) FILTER (n.pair_id IS NULL),
       count(*) FILTER (n.pair_id IS NOT NULL AND o.pair_id IS NOT NULL AND n.label IS DISTINCT FROM o.label),
       count(*) FILTER (n.pair_id IS NOT NULL AND o.pair_id IS NOT NULL AND n.label IS NOT DISTINCT FROM o.label AND n.h <> o.h)
FROM n FULL OUTER JOIN o ON n.pair_id = o.pair_id
"""
"""Pairs added, removed, relabelled, and otherwise changed between two published Parquet files:
one scan of each, in DuckDB, with the rows compared by a hash of their columns."""


def changes(new_parquet: Path, old_parquet: Path, previous: str) -> DatasetChange:
    with duckdb.connect() as con:
        added, removed, relabelled, other = con.execute(CHANGES_SQL, {"new": str(new_parquet), "old": str(old_parquet)}).fetchone()
    return DatasetChange(previous, int(added), int(removed), int(relabelled), int(other))


def next_version(export_dir: Path, files: Mapping[str, Path], *, batch_id: str, run_id: str | None, published_at: str, rows: int,
                 guideline_versions: Sequence[str], judge_prompt_versions: Sequence[str]) -> Publication:
    """The version the files just published make (files: "parquet" and "jsonl" paths, as
    write_trl returns them), compared with the latest recorded one."""
    digests = {Path(p).name: file_sha256(Path(p)) for p in files.values()}
    content = digests[Path(files["jsonl"]).name]
    recorded = history(export_dir)
    previous = recorded[-1] if recorded else None
    new = previous is None or previous.content_hash != content
    change = None
    if new and previous is not None:
        old = versions_dir(export_dir) / previous.version / Path(files["parquet"]).name
        if old.is_file():
            change = changes(Path(files["parquet"]), old, previous.version)
    version = DatasetVersion(content[:VERSION_DIGITS], content, batch_id, published_at, run_id, rows, tuple(guideline_versions),
                             tuple(judge_prompt_versions), digests, change, previous.version if previous is not None else None)
    return Publication(version, new, previous)


def _keep(source: Path, kept: Path) -> None:
    """`source` under `kept` as a hard link (a copy where links are not possible), read-only."""
    if kept.is_file():
        return  # content-named: an earlier publish of the same rows left it
    tmp = kept.with_name(f".{kept.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o444)
    os.replace(tmp, kept)


def record_version(export_dir: Path, publication: Publication, files: Mapping[str, Path], card: Path | None = None) -> Path:
    """Keep a new version's files under versions/<version>/ and append its record to the history
    (the last step: a publish that fails before it records nothing). Returns the version's folder."""
    version = publication.version
    folder = versions_dir(export_dir) / version.version
    folder.mkdir(parents=True, exist_ok=True)
    for path in files.values():
        _keep(Path(path), folder / Path(path).name)
    if card is not None and not (folder / CARD_FILE).is_file():
        atomic_write(folder / CARD_FILE, lambda tmp: shutil.copyfile(card, tmp))
    path = versions_dir(export_dir) / HISTORY_FILE
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    line = json.dumps(version.record(), ensure_ascii=False, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(before + ("" if not before or before.endswith("\n") else "\n") + line, encoding="utf-8"))
    return folder


def export_version(export_dir: Path, version: str, out_dir: Path) -> tuple[DatasetVersion, list[Path]]:
    """Write a recorded version's files into out_dir exactly as they were published (checked
    against their recorded SHA-256 first); its card too when it was kept."""
    found = find_version(export_dir, version)
    folder = versions_dir(export_dir) / found.version
    for name, digest in found.files.items():
        path = folder / name
        if not path.is_file():
            raise DatasetVersionError(f"{path}: the file of version {found.version} is gone; it cannot be exported again")
        if file_sha256(path) != digest:
            raise DatasetVersionError(f"{path}: its bytes no longer match what version {found.version} published (changed in place?)")
    out_dir = Path(out_dir)
    written = []
    for name in [*found.files, *([CARD_FILE] if (folder / CARD_FILE).is_file() else [])]:
        written.append(atomic_write(out_dir / name, lambda tmp, source=folder / name: shutil.copyfile(source, tmp)))
    return found, written
