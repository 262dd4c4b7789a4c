"""Reading a batch's JSONL files: in bulk through DuckDB, or line by line when anything is off.

Line by line (`read_jsonl`) is exact and names the file, line and field of every problem, but
parses in Python: minutes at a million prompts. In bulk (`read_bulk`), DuckDB's `read_json` parses
the file with explicit columns in C++, and the readers check the columns at once in SQL. DuckDB's
parser is laxer than Python's `json` (trailing commas, `nan`, `inf`), reads a missing key and a
null one alike and knows no line numbers, so one pass over the bytes numbers the lines and marks
those where the two parsers may differ (they are parsed again exactly), and any doubt raises
`LineByLine`: the reader then reads the file line by line, which gives the exact error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from prefpipe.core.input_errors import BatchInputError

T = TypeVar("T")
BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CHUNK = 1 << 24
_LONE_CR = re.compile(rb"\r(?!\n)")
"""Python's text mode (universal newlines) ends a line at a lone CR, DuckDB does not."""
_BLANK_NEXT = re.compile(rb"\n(?=[ \t\r]*(?:\n|\Z))")
_BLANK_FIRST = re.compile(rb"[ \t\r]*(?:\n|\Z)")
_DIFFERS = (re.compile(rb":[ \t\r]*null"), re.compile(rb",[ \t\r]*[\]}]"))
"""Where DuckDB and Python may read a line differently: a null value (DuckDB: same as missing), a
trailing comma, and (_VT_FF) a vertical tab or form feed, all lax in DuckDB; one pattern each, as
an alternation is several times slower to search."""
_VT_FF = re.compile(rb"[\x0b\x0c]")
_LOWER_NAN_INF = bytes.maketrans(b"NAIF", b"naif")
_BEFORE_VALUE = frozenset(b":,[")
"""`nan` and `inf` in any case are numbers to DuckDB; Python reads only NaN, Infinity and -Infinity."""


# -- line by line ------------------------------------------------------------------------------
def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a line that is not a JSON object of
    text fails. A UTF-8 byte order mark may start the file; CRLF line ends are accepted."""
    with Path(path).open("rb") as handle:
        line_no = 0
        for chunk in handle:
            for raw in chunk.splitlines():  # \n, \r\n and a lone \r, as text mode splits
                line_no += 1
                if line_no == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                obj = parse_line(path, line_no, raw)
                if obj is not None:
                    yield line_no, obj


def parse_line(path: Path, line_no: int, raw: bytes) -> dict[str, Any] | None:
    """One line as an object, None when blank; BatchInputError naming the line otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchInputError(path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)", line=line_no) from exc
    if not text.strip():
        return None
    if text.lstrip().startswith("\ufeff"):
        raise BatchInputError(path, "a byte order mark (U+FEFF) starts this line; it may only start the file", line=line_no)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchInputError(path, f"not valid JSON ({exc.msg} at column {exc.colno})", line=line_no) from exc
    except RecursionError as exc:
        raise BatchInputError(path, "not valid JSON (nested too deeply)", line=line_no) from exc
    if not isinstance(obj, dict):
        raise BatchInputError(path, f"expected a JSON object, got {type(obj).__name__}", line=line_no)
    if _SURROGATE_ESCAPE.search(text):
        where = lone_surrogate(obj)
        if where is not None:
            raise BatchInputError(path, "holds a lone surrogate (a \\ud800-\\udfff escape without its pair), which is not text", line=line_no, field=where)
    return obj


def lone_surrogate(value: Any, prefix: str = "") -> str | None:
    """The field path (`responses[1].text`) of the first key or string holding a lone surrogate."""
    if isinstance(value, str):
        return prefix if any("\ud800" <= c <= "\udfff" for c in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if lone_surrogate(key) is not None:
                return path
            found = lone_surrogate(item, path)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate(item, f"{prefix}[{i}]")
            if found is not None:
                return found
    return None


# -- in bulk -----------------------------------------------------------------------------------
class LineByLine(Exception):
    """The bulk reader cannot vouch for the file: read it line by line for the exact answer."""


def bulk_or_line_by_line(bulk: Callable[[], T], line_by_line: Callable[[], T]) -> T:
    """bulk(), or line_by_line() when it hands over; the bulk reader's tables are freed first
    (the traceback of LineByLine would otherwise hold them through the slow pass)."""
    try:
        return bulk()
    except LineByLine:
        pass
    return line_by_line()


@dataclass(frozen=True)
class Bulk:
    table: pa.Table
    """The reader's SELECT over the file: one row per non-blank line, in file order."""
    lines: np.ndarray
    """The line number of each row."""
    exact: dict[int, dict[str, Any]]
    """Line number -> the object as Python's json reads it, for the lines where DuckDB may differ."""

    def rows_of(self, lines: list[int]) -> np.ndarray:
        return np.searchsorted(self.lines, np.asarray(lines, dtype=np.int64))


def read_bulk(path: Path, columns: dict[str, str], select: str, params: dict[str, Any] | None = None) -> Bulk:
    """Run `select` (which reads the relation `lines`, the file's `columns`, each a DuckDB type) with
    DuckDB; LineByLine when DuckDB fails or the file has lines the two parsers may read apart. The
    byte scan runs meanwhile (DuckDB does not hold the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    path = Path(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        query = pool.submit(_query, path, columns, select, params or {})
        try:
            lines, marked = _scan(path, stop=lambda: query.done() and query.exception() is not None)
        finally:
            table = query.result()  # raises the query's LineByLine
    if table.num_rows != len(lines):
        raise LineByLine(f"DuckDB read {table.num_rows} rows, the file has {len(lines)} non-blank lines")
    try:
        exact = {line: parse_line(path, line, raw) for line, raw in marked.items()}
    except BatchInputError as exc:
        raise LineByLine(str(exc)) from exc
    return Bulk(table, lines, {line: obj for line, obj in exact.items() if obj is not None})


def _query(path: Path, columns: dict[str, str], select: str, params: dict[str, Any]) -> pa.Table:
    import duckdb

    spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    sql = (
        f"WITH lines AS (SELECT * FROM read_json($path, format='newline_delimited', compression='uncompressed', "
        f"columns={{{spec}}})) {select}"
    )
    try:
        with duckdb.connect() as con:
            con.execute("SET enable_progress_bar = false")
            con.execute(f"CREATE TEMP TABLE result AS {sql}", {"path": str(path), **params})  # in parallel; streaming it to Arrow is not
            return con.execute("SELECT * FROM result").arrow().read_all()
    except duckdb.Error as exc:
        raise LineByLine(str(exc)) from exc


def _scan(path: Path, stop: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, dict[int, bytes]]:
    """The number of every non-blank line, and the raw bytes of the lines matching _DIFFERS (cut
    short once `stop()`: the query failed, so the file is read line by line anyway)."""
    blank: list[int] = []
    marked: dict[int, bytes] = {}
    total, rest = 0, b""  # lines numbered so far; the unfinished last line read
    with path.open("rb") as handle:
        if handle.read(len(BOM)) != BOM:
            handle.seek(0)
        while not stop():
            block = handle.read(_CHUNK)
            data = rest + block
            if not data:
                break
            cut = data.rfind(b"\n") + 1 if block else len(data)
            if cut == 0:  # a line longer than a chunk: read on
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
            if b"\r" in data and _LONE_CR.search(data):
                raise LineByLine("a carriage return alone ends a line")
            first = total + 1
            if _BLANK_FIRST.match(data):
                blank.append(first)
            blanks, differs = _gates(data)
            if blanks:
                for line, pos in _lines_of(data, first, (m.start() for m in _BLANK_NEXT.finditer(data))):
                    if pos + 1 < len(data):
                        blank.append(line + 1)
            if differs:
                patterns = [*_DIFFERS, _VT_FF] if b"\x0b" in data or b"\x0c" in data else _DIFFERS  # a class is slow to search
                for positions in [*((m.start() for m in p.finditer(data)) for p in patterns), _odd_numbers(data)]:
                    for line, pos in _lines_of(data, first, positions):
                        marked.setdefault(line, _line_at(data, pos))
            total += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    numbers = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), np.asarray(blank, dtype=np.int64), assume_unique=True)
    return numbers, marked


_BLANK_GATE = r"\n[ \t\r]*\n"
_DIFFER_GATES = (r":[ \t\r]*null", r",[ \t\r]*[\]}]", *(rf"{c}[ \t\r-]*[nNiI][aAnN][nNfF]" for c in (":", ",", r"\[")))
"""Cheap tests that _BLANK_NEXT, _DIFFERS and _odd_numbers surely find nothing in a block, run by
RE2 (pyarrow) without the GIL: each pattern starts with a fixed byte, which RE2 finds at memchr
speed, where Python's searches cost seconds a gigabyte even when nothing matches."""


def _gates(data: bytes) -> tuple[bool, bool]:
    """(may hold a blank line, may hold a line the two parsers read apart); a false true only costs
    the full search."""
    import pyarrow.compute as pc

    block = pa.array([data], pa.binary())

    def found(pattern: str) -> bool:
        return bool(pc.match_substring_regex(block, pattern)[0].as_py())

    blanks = not data.endswith(b"\n") or found(_BLANK_GATE)  # the file's last line may be blank too
    differs = b"\x0b" in data or b"\x0c" in data or any(found(p) for p in _DIFFER_GATES)
    return blanks, differs


def _lines_of(data: bytes, first: int, positions) -> Iterator[tuple[int, int]]:
    """(line number, position) of each of the ascending `positions` in `data`, whose first line is `first`."""
    line, at = first, 0
    for pos in positions:
        line += data.count(b"\n", at, pos)
        at = pos
        yield line, pos


def _odd_numbers(data: bytes) -> list[int]:
    """Positions of `nan`/`inf` literals Python does not read (any case but NaN, Infinity)."""
    low = data.translate(_LOWER_NAN_INF)
    found = []
    for word in (b"nan", b"inf"):
        for match in re.finditer(word, low):
            start, end = match.start(), match.end()
            if word == b"inf" and low.startswith(b"inity", end):
                end += 5
            if data[end : end + 1].isalpha() or data[start:end] in (b"NaN", b"Infinity"):
                continue  # a word, or what Python reads too
            before = start - 1
            while before >= 0 and data[before] in b" \t\r-":
                before -= 1
            if before >= 0 and data[before] in _BEFORE_VALUE:
                found.append(start)
    return sorted(found)


def _line_at(data: bytes, pos: int) -> bytes:
    end = data.find(b"\n", pos)
    return data[data.rfind(b"\n", 0, pos) + 1 : end if end >= 0 else len(data)]


# -- SQL over the JSON columns -----------------------------------------------------------------
PY_SPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
"""The characters str.strip() removes."""
_SPACE_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_SPACE) + "]"
UPPER_ESCAPES = r"'\\u00(0[BEF]|1[A-F])'"
"""DuckDB writes control characters as \\u000B, Python's json as \\u000b: rows with them are left to Python."""


def sql_text(column: str) -> str:
    """The string a JSON column holds, NULL for any other JSON type."""
    return f"(CASE WHEN json_type({column}) = 'VARCHAR' THEN {column} ->> '$' END)"


def sql_id(column: str) -> str:
    """A string or integer as text (str() of the value), NULL for any other JSON type."""
    return f"(CASE json_type({column}) WHEN 'VARCHAR' THEN {column} ->> '$' WHEN 'UBIGINT' THEN CAST({column} AS VARCHAR) WHEN 'BIGINT' THEN CAST({column} AS VARCHAR) END)"


def sql_number(column: str) -> str:
    """A JSON number as DOUBLE, NULL for any other JSON type (booleans included)."""
    return f"(CASE WHEN json_type({column}) IN ('UBIGINT', 'BIGINT', 'DOUBLE') THEN CAST({column} AS DOUBLE) END)"


_NOT_SPACE = "BETWEEN 33 AND 132"
"""Code points that are not whitespace to Python whatever surrounds them (every whitespace character
is under 33 or from U+0085 on): a text that starts and ends with one needs no strip."""


def _plain_ends(expression: str) -> str:
    return f"(ord(left({expression}, 1)) {_NOT_SPACE} AND ord(right({expression}, 1)) {_NOT_SPACE})"


def sql_blank(expression: str) -> str:
    """True when str.strip() leaves nothing of the text (the regular expression runs only on texts
    that start with a character that could be whitespace: a million ids check in milliseconds)."""
    return f"(CASE WHEN ord(left({expression}, 1)) {_NOT_SPACE} THEN false ELSE regexp_full_match({expression}, '{_SPACE_CLASS}*') END)"


def sql_strip(expression: str) -> str:
    """str.strip() of the text (trim runs only where an end could be whitespace)."""
    return f"(CASE WHEN {_plain_ends(expression)} THEN {expression} ELSE trim({expression}, '{PY_SPACE}') END)"


def sql_or_default(column: str, default: str) -> str:
    """`str(obj.get(column) or default)` where the value is a string or missing; NULL otherwise."""
    return f"(CASE WHEN {column} IS NULL THEN ${default} WHEN json_type({column}) = 'VARCHAR' THEN coalesce(nullif({column} ->> '$', ''), ${default}) END)"


def arrow_frame(table: pa.Table):
    """The table as a DataFrame whose text stays in Arrow (pandas' string[pyarrow])."""
    import pandas as pd

    text = pd.StringDtype("pyarrow")
    return table.to_pandas(types_mapper=lambda t: text if t in (pa.string(), pa.large_string()) else None)


def arrow_series(array: pa.Array | pa.ChunkedArray):
    """One Arrow text column as a pandas string[pyarrow] Series."""
    return arrow_frame(pa.table({"column": array}))["column"]


def arrow_strings(frame):
    """`frame` with every text column in Arrow, so both readers return the same dtypes."""
    import pandas as pd

    text = pd.StringDtype("pyarrow")
    return frame.astype({c: text for c in frame.columns if str(frame[c].dtype) == "string"})
