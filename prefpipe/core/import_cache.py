"""A batch's imported labels, parsed once per file content.

A run reads ai_labels.jsonl and the annotation files in several steps (prompts validates them;
ai_labels, routing, human_queue and human_annotations use them). At a million pairs each parse
costs seconds, so the first parse is kept as an Arrow file under data/cache/imports/, named by a
digest of the files' bytes and of the settings that shape the rows (the batch's label_map...):
an edited file, or changed settings, is parsed again; the same bytes are never parsed twice. The
cache is derived data: deleting the folder only costs the next parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from prefpipe.core import settings
from prefpipe.core.jsonl import arrow_frame

CACHE_DIR = ("cache", "imports")
_READ_BLOCK = 1 << 22


def cache_dir() -> Path:
    return settings.data_dir().joinpath(*CACHE_DIR)


def digest(files: list[Path], shape: Mapping[str, Any]) -> str:
    """blake2b of the files' names and bytes and of `shape` (JSON): the cache entry's name."""
    h = hashlib.blake2b(json.dumps(shape, sort_keys=True, default=str).encode(), digest_size=20)
    for path in files:
        h.update(b"\0" + path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_READ_BLOCK):
                h.update(block)
    return h.hexdigest()


def parsed_once(kind: str, files: list[Path], shape: Mapping[str, Any], parse: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """parse(), or the frame an earlier parse of the same bytes under the same `shape` gave. A
    failing parse raises as it would uncached, and caches nothing."""
    if not files or not all(_in_a_batch(f) for f in files):  # a file outside data/batches/ is parsed where it is, not cached
        return parse()
    scope = hashlib.blake2b(str(files[0].resolve().parent).encode(), digest_size=6).hexdigest()  # the batch's folder
    prefix = f"{kind}-{scope}-"
    path = cache_dir() / f"{prefix}{digest(files, {'kind': kind, **shape})}.arrow"
    if path.is_file():
        try:
            return arrow_frame(feather.read_table(path, memory_map=False))
        except (OSError, pa.ArrowInvalid):
            path.unlink(missing_ok=True)  # a torn or foreign file: parse again
    frame = parse()
    _store(path, prefix, frame)
    return frame


def _in_a_batch(path: Path) -> bool:
    return path.resolve().is_relative_to(settings.batches_dir())


def _store(path: Path, prefix: str, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="lz4")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only or full disk costs speed, never the run
        return
    for old in path.parent.glob(f"{prefix}*.arrow"):  # one entry a kind and folder: its files as they are now
        if old != path:
            old.unlink(missing_ok=True)


def as_arrow(ids: Collection[str] | pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Pair ids as one Arrow text array, whatever the caller holds them in."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, pa.Array):
        return ids.cast(pa.string())
    if isinstance(ids, pd.Series):
        return pa.array(ids.astype("string[pyarrow]")).cast(pa.string())
    return pa.array(list(ids), pa.string())


def pairs_are_known(pair_ids: pd.Series | pa.ChunkedArray, known: Any, unpaired: Mapping[str, str] | None) -> bool:
    """True when every id is in `known` (None: anything goes) and none is in `unpaired`."""
    ids = as_arrow(pair_ids)
    if unpaired and pc.any(pc.is_in(ids, value_set=pa.array(list(unpaired), pa.string()))).as_py():
        return False
    return known is None or len(ids) == 0 or bool(pc.all(pc.is_in(ids, value_set=as_arrow(known))).as_py())
