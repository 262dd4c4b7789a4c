"""The `existing` strategy in bulk gives exactly the rows, values, dtypes and errors of the per-row
code it replaced (kept below, trimmed to `existing`, as the reference)."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import schemas
from prefpipe.generation import dedup, pairs
from prefpipe.generation.config import GenerationConfig
from prefpipe.generation.pairs import generate_pairs
from prefpipe_tests.generation.test_dedup import TRICKY, reference_drop_reasons


# -- the reference: pairs.py's existing strategy before it went to Arrow -------------------------
@dataclass
class _Side:
    text: str | None
    model: str | None
    meta: dict[str, Any]


def reference_candidates(raw: Any, prompt_id: str) -> list[dict[str, Any]]:
    items = json.loads(raw) if isinstance(raw, str) else (raw if isinstance(raw, list) else [])
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ValueError(f"prompts: prompt {prompt_id!r}: field candidates[{i}] must be an object with a text")  # noqa: TRY004 - as it was
    return items


def reference_existing(prompts: pd.DataFrame) -> list[tuple[str, int, _Side, _Side, str | None]]:
    out = []
    for pid, raw in zip(prompts["prompt_id"].astype(str), prompts["candidates"]):
        items = reference_candidates(raw, pid)
        if len(items) < 2:
            out.append((pid, 0, _Side(None, None, {}), _Side(None, None, {}), f"fewer than two existing responses ({len(items)})"))
            continue
        for n, (i, j) in enumerate(itertools.combinations(range(len(items)), 2)):
            first, second = items[i], items[j]
            out.append(
                (
                    pid,
                    n,
                    _Side(first["text"], first.get("model") or "unknown", {"role": "existing", "candidate": i}),
                    _Side(second["text"], second.get("model") or "unknown", {"role": "existing", "candidate": j}),
                    None,
                )
            )
    return out


def reference_pairs(prompts: pd.DataFrame, config: GenerationConfig) -> pd.DataFrame:
    sides = reference_existing(prompts)
    prompt_of = dict(zip(prompts["prompt_id"].astype(str), prompts["prompt"]))
    pair_ids = [f"{pid}:{n}" for pid, n, _, _, _ in sides]
    first = [s[2] for s in sides]
    second = [s[3] for s in sides]
    reasons = np.array([s[4] for s in sides], dtype=object)
    complete = np.array([a.text is not None and b.text is not None for a, b in zip(first, second)], dtype=bool)
    idx = np.flatnonzero(complete & (reasons == None))
    if len(idx):
        reasons[idx] = reference_drop_reasons([first[i].text for i in idx], [second[i].text for i in idx], config.similarity_threshold)
    base = config.params()
    params = [json.dumps({**base, "a": x.meta, "b": y.meta}, ensure_ascii=False, sort_keys=True) for x, y in zip(first, second)]
    frame = pd.DataFrame(
        {
            "pair_id": pair_ids,
            "prompt_id": [s[0] for s in sides],
            "prompt": [prompt_of[s[0]] for s in sides],
            "response_a": [x.text for x in first],
            "response_b": [y.text for y in second],
            "model_a": [x.model for x in first],
            "model_b": [y.model for y in second],
            "strategy": config.strategy,
            "strategy_params": params,
            "dropped": (reasons != None) & (~complete | config.drops_degenerate()),
            "drop_reason": reasons,
        }
    )
    return schemas.conform(frame, schemas.RESPONSE_PAIRS, name="response_pairs")


# -- the inputs ---------------------------------------------------------------------------------
def synthetic_prompts(n: int, seed: int, *, odd: bool, most: int = 4) -> pd.DataFrame:
    """Prompts as the reader writes them (two candidates mostly; none, one, three or four some, up
    to `most`), of tricky texts, identical and near-identical pairs; with `odd`, also lists the
    reader never writes (other escapes and layouts, missing or non-string models, Python lists,
    missing values) and a repeated prompt id."""
    rng = random.Random(seed)
    words = ["the", "The", "answer", "Answer", "data", "a", "x", "İ", "Σ", "ΟΔΟΣ", "straße", "😀", "中文", "word", "words", "42"]

    def text() -> str:
        if rng.random() < 0.2:
            return rng.choice(TRICKY)
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))

    ids, prompts, column = [], [], []
    for i in range(n):
        k = min(rng.choices([2, 0, 1, 3, 4], weights=[80, 5, 5, 7, 3])[0], most)
        texts = [text() for _ in range(k)]
        if k >= 2 and rng.random() < 0.2:
            texts[1] = texts[0].upper() if rng.random() < 0.5 else texts[0] + " indeed"
        items: list[dict[str, Any]] = [{"model": rng.choice(["m1", "m2", ""]), "text": t} for t in texts]
        raw: Any = json.dumps(items, ensure_ascii=False)
        if odd:
            shape = rng.randrange(14)
            if shape == 0:
                raw = json.dumps(items, ensure_ascii=True)
            elif shape == 1:
                raw = json.dumps(items, indent=1)
            elif shape == 2:
                raw = json.dumps([{"text": it["text"], "model": it["model"]} for it in items], ensure_ascii=False)
            elif shape == 3 and items:
                raw = json.dumps([{**items[0], "extra": 1}] + items[1:])
            elif shape == 4 and items:
                raw = json.dumps([{"text": items[0]["text"]}] + items[1:])
            elif shape == 5 and items:
                raw = json.dumps([{"model": rng.choice([None, 5, 2.5, True, [1], {"a": 1}, 0]), "text": items[0]["text"]}] + items[1:])
            elif shape == 6:
                raw = items  # a Python list in an object column
            elif shape == 7:
                raw = rng.choice([None, float("nan"), "[]", '""', "{}"])
            elif shape == 8 and items:
                raw = json.dumps([{"model": "a\x0bb\x7f\x00", "text": items[0]["text"] + "\u2028\x01"}] + items[1:], ensure_ascii=False)
        ids.append(f"p{i}" if not (odd and i % 97 == 5) else "p3")
        prompts.append(f"Question {i}: {text()}")
        column.append(raw)
    return pd.DataFrame({"prompt_id": ids, "prompt": prompts, "candidates": column})


STORAGES = {"object": None, "python": pd.StringDtype("python"), "pyarrow": pd.StringDtype("pyarrow")}


def stored(frame: pd.DataFrame, storage: str) -> pd.DataFrame:
    if STORAGES[storage] is None:
        return frame
    text_only = frame["candidates"].map(lambda v: isinstance(v, str) or v is None or (isinstance(v, float) and np.isnan(v)))
    frame = frame[text_only.to_numpy()].reset_index(drop=True)
    return frame.astype({c: STORAGES[storage] for c in frame.columns})


def assert_same(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    assert [str(d) for d in new.dtypes] == [str(d) for d in old.dtypes]
    pd.testing.assert_frame_equal(new, old.astype({c: new[c].dtype for c in new.columns}))


def outcome(make: Any) -> tuple[str, str]:
    try:
        make()
    except Exception as exc:  # noqa: BLE001 - any type: the old code's (ValueError, JSONDecodeError, TypeError) must recur
        return type(exc).__name__, str(exc)
    return "ok", ""


# -- the tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("storage", list(STORAGES))
@pytest.mark.parametrize("most", [2, 4])
def test_reader_shaped_prompts_give_the_same_frame(storage: str, most: int) -> None:
    prompts = stored(synthetic_prompts(3000, seed=7, odd=False, most=most), storage)
    for config in (GenerationConfig(), GenerationConfig(drop_degenerate=True, similarity_threshold=0.5)):
        assert_same(generate_pairs(prompts, config).pairs, reference_pairs(prompts, config))


@pytest.mark.parametrize("storage", list(STORAGES))
def test_odd_candidates_give_the_same_frame_in_small_chunks(monkeypatch: pytest.MonkeyPatch, storage: str) -> None:
    monkeypatch.setattr(pairs, "EXISTING_CHUNK", 701)
    monkeypatch.setattr(dedup, "CHUNK_PAIRS", 333)
    prompts = stored(synthetic_prompts(3000, seed=11, odd=True), storage)
    new = generate_pairs(prompts, GenerationConfig()).pairs
    assert_same(new, reference_pairs(prompts, GenerationConfig()))
    assert new["model_a"].isna().any() and (new["model_a"] == "5").any()  # the odd models did occur


def test_the_reader_s_own_files_give_the_same_frame(tmp_path) -> None:
    """Through the prompts reader (both of its paths: DuckDB in bulk, and line by line)."""
    from prefpipe.core.prompts_file import load_prompts

    source = synthetic_prompts(2000, seed=3, odd=False)
    plain = [s for s in TRICKY if not any(c in s for c in "\x0b\x0c\x1c\x1d\x1e\x1f\x00\x85\u2028\u2029\r")]
    lines = []
    for i, (pid, prompt, raw) in enumerate(zip(source["prompt_id"], source["prompt"], source["candidates"])):
        responses = [{"text": it["text"], **({"model": it["model"]} if it["model"] else {})} for it in json.loads(raw)]
        if i % 2:  # texts the bulk reader takes (the others go line by line)
            responses = [{**r, "text": plain[(i + j) % len(plain)] if r["text"] in TRICKY else r["text"]} for j, r in enumerate(responses)]
        lines.append(json.dumps({"id": pid, "prompt": prompt, "responses": responses}, ensure_ascii=False))
    bulk, by_line = tmp_path / "bulk.jsonl", tmp_path / "by_line.jsonl"
    bulk.write_text("\n".join(lines[1::2]) + "\n", encoding="utf-8")
    by_line.write_text("\n".join(lines) + "\r", encoding="utf-8")  # a lone CR: the reader reads line by line
    for path in (bulk, by_line):
        prompts = load_prompts(path)
        assert_same(generate_pairs(prompts, GenerationConfig()).pairs, reference_pairs(prompts, GenerationConfig()))


@pytest.mark.parametrize(
    "bad",
    [
        '[{"model": "a", "text": "b"}',  # not JSON
        '[{"model": "a", "text": "b",}]',  # DuckDB reads it, Python does not
        '[{"model": "a", "text": "b"}, "c"]',
        '[{"model": "a", "text": 5}]',
        '[{"model": "a"}]',
        '["x"]',
        '"abc"',
        '{"text": "b"}',
        "5",
        "null",
        "",
        "[{'model': 'a', 'text': 'b'}]",
    ],
)
def test_bad_candidates_fail_with_the_same_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setattr(pairs, "EXISTING_CHUNK", 40)
    prompts = synthetic_prompts(100, seed=5, odd=False)
    prompts.loc[57, "candidates"] = bad
    prompts.loc[83, "candidates"] = '[{"model": "a", "text": 1}]'  # a later bad row: the first is named
    for storage in STORAGES:
        frame = stored(prompts, storage)
        old = outcome(lambda frame=frame: reference_pairs(frame, GenerationConfig()))
        assert old[0] != "ok"
        assert outcome(lambda frame=frame: generate_pairs(frame, GenerationConfig())) == old


def test_no_prompts_and_integer_ids() -> None:
    empty = synthetic_prompts(0, seed=1, odd=False).astype(object)
    assert_same(generate_pairs(empty, GenerationConfig()).pairs, reference_pairs(empty, GenerationConfig()))
    numbered = synthetic_prompts(50, seed=2, odd=False).assign(prompt_id=range(50))
    assert_same(generate_pairs(numbered, GenerationConfig()).pairs, reference_pairs(numbered, GenerationConfig()))


@pytest.mark.parametrize("size", [29, 457, 5000])
def test_prompts_given_a_chunk_at_a_time_give_the_same_frame(size: int) -> None:
    """response_pairs reads the prompts table a chunk at a time: the pairs are the whole frame's."""
    prompts = stored(synthetic_prompts(1200, seed=5, odd=False), "pyarrow")
    config = GenerationConfig(drop_degenerate=True, similarity_threshold=0.5)
    chunks = (prompts.iloc[lo : lo + size].reset_index(drop=True) for lo in range(0, len(prompts), size))
    assert_same(pairs.existing_pairs_in_chunks(chunks, config), generate_pairs(prompts, config).pairs)


def test_no_chunk_gives_no_pair_and_a_repeated_id_fails() -> None:
    assert len(pairs.existing_pairs_in_chunks(iter([]), GenerationConfig())) == 0
    prompts = stored(synthetic_prompts(10, seed=1, odd=False), "pyarrow")
    with pytest.raises(ValueError, match="repeats across chunks"):
        pairs.existing_pairs_in_chunks([prompts, prompts], GenerationConfig())
    with pytest.raises(ValueError, match="is not 'existing'"):
        pairs.existing_pairs_in_chunks([prompts], GenerationConfig(strategy="two_models", model="m", model_b="n"))
