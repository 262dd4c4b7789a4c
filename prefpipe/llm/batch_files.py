"""Batch API input files: request lines streamed into JSONL files that each stay within the API's
limits (50,000 requests and 200 MB a file by default), and output files read back in bounded chunks.

Lines come as Arrow record batches (columns key, model, line; each line ends in a newline), so a
file is written as slices of the batches' own string buffers: no Python object per line. The
limits are enforced exactly: a file holds at most `max_requests` lines and `max_bytes` bytes, and a
single line over `max_bytes` is an error (it could never be submitted).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from prefpipe.llm.bulk import CHAT_URL
from prefpipe.llm.request import ChatRequest

MAX_REQUESTS_PER_FILE = 50_000  # OpenAI's limits per batch input file
MAX_BYTES_PER_FILE = 200_000_000
READ_CHUNK_BYTES = 32 * 2**20
"""Output files are parsed this many bytes at a time (whole lines)."""
LINE_SCHEMA = pa.schema([("key", pa.string()), ("model", pa.string()), ("line", pa.large_string())])


@dataclass(frozen=True)
class BatchLimits:
    """How large one Batch API input file may be."""

    max_requests: int = MAX_REQUESTS_PER_FILE
    max_bytes: int = MAX_BYTES_PER_FILE


@dataclass
class InputFile:
    """One written input file and what it carries."""

    path: Path
    keys: list[str] = field(repr=False)
    models: list[str] = field(repr=False)
    n_bytes: int


class LineTooLarge(ValueError):
    """One request line is larger than a whole file may be."""


def request_lines(requests: Iterable[ChatRequest], wire_body: Callable[[ChatRequest], dict[str, Any]], chunk: int = 5_000) -> Iterator[pa.RecordBatch]:
    """LINE_SCHEMA batches for requests given as objects (a few thousand, written by json.dumps)."""
    keys: list[str] = []
    models: list[str] = []
    lines: list[str] = []
    for r in requests:
        keys.append(r.key)
        models.append(r.model)
        lines.append(json.dumps({"custom_id": r.key, "method": "POST", "url": CHAT_URL, "body": wire_body(r)}, ensure_ascii=False) + "\n")
        if len(keys) == chunk:
            yield pa.record_batch([keys, models, lines], schema=LINE_SCHEMA)
            keys, models, lines = [], [], []
    if keys:
        yield pa.record_batch([keys, models, lines], schema=LINE_SCHEMA)


class _Writer:
    """The file being filled: its handle, its size, and the key/model slices it holds."""

    def __init__(self, folder: Path, number: int):
        self.path = folder / f"requests-{number:05d}.jsonl"
        self.handle = self.path.open("wb")
        self.n = self.bytes = 0
        self.keys: list[pa.Array] = []
        self.models: list[pa.Array] = []

    def add(self, batch: pa.RecordBatch, data: memoryview, offsets: np.ndarray, start: int, stop: int) -> None:
        self.handle.write(data[offsets[start] : offsets[stop]])
        self.n += stop - start
        self.bytes += int(offsets[stop] - offsets[start])
        self.keys.append(batch.column("key").slice(start, stop - start))
        self.models.append(batch.column("model").slice(start, stop - start))

    def close(self) -> InputFile:
        self.handle.close()
        keys = pa.concat_arrays(self.keys).to_pylist()
        models = pa.concat_arrays(self.models).to_pylist()
        return InputFile(self.path, keys, models, self.bytes)


def write_files(batches: Iterable[pa.RecordBatch], folder: Path, limits: BatchLimits = BatchLimits()) -> Iterator[InputFile]:
    """Write the lines of `batches` into files under `folder`, each within `limits`, yielding each
    file as soon as it is full (so it can be submitted before the next one is written)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer: _Writer | None = None
    number = 0
    for batch in batches:
        lines = batch.column("line")
        if lines.null_count:
            raise ValueError("a request line is null")
        lines = lines.cast(pa.large_string())
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
        data = memoryview(lines.buffers()[2])  # type: ignore[arg-type]
        sizes = np.diff(offsets)
        too_big = np.flatnonzero(sizes > limits.max_bytes)
        if len(too_big):
            raise LineTooLarge(f"request {batch.column('key')[int(too_big[0])]} is {int(sizes[too_big[0]]):,} bytes, over max_bytes {limits.max_bytes:,}")
        start = 0
        while start < len(lines):
            if writer is None:
                writer = _Writer(folder, number)
                number += 1
            fit = int(np.searchsorted(offsets[start + 1 :] - offsets[start], limits.max_bytes - writer.bytes, side="right"))
            take = min(limits.max_requests - writer.n, fit)
            if take:
                writer.add(batch, data, offsets, start, start + take)
                start += take
            if not take or writer.n == limits.max_requests:
                yield writer.close()
                writer = None
    if writer is not None and writer.n:
        yield writer.close()


async def chunks_of_lines(response: Any, chunk_bytes: int = READ_CHUNK_BYTES) -> AsyncIterator[bytes]:
    """The body of a streamed response in pieces of about `chunk_bytes` that end at a line end:
    a file of any size is parsed with at most two chunks in memory."""
    pending = bytearray()
    async for piece in response.iter_bytes():
        pending += piece
        if len(pending) >= chunk_bytes:
            cut = pending.rfind(b"\n") + 1
            if cut:
                yield bytes(pending[:cut])
                del pending[:cut]
    if pending.strip():
        yield bytes(pending) + (b"" if pending.endswith(b"\n") else b"\n")


def line_array(chunk: bytes) -> pa.LargeStringArray:
    """The non-blank lines of `chunk` (each ending in a newline) as one Arrow array, cut where the
    newlines are (numpy over the bytes; no Python object per line)."""
    raw = np.frombuffer(chunk, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10) + 1
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    keep = np.diff(offsets) > 1
    lines = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(chunk))
    return lines.filter(pa.array(keep)) if not keep.all() else lines
