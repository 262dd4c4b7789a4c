"""Every generation strategy against the real scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import schemas
from prefpipe.generation.config import GenerationConfig
from prefpipe.generation.pairs import generate_pairs, swap_mask
from prefpipe.core.guidelines import Guidelines
from prefpipe.llm.client import LLMClient
from prefpipe.testing.scripted_server import Fault, Reply, ScriptedServer
from prefpipe_tests.llm.fixtures import make_client


def prompts(n: int, candidates: list | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {"prompt_id": [f"p{i}" for i in range(n)], "prompt": [f"Explain topic {i}." for i in range(n)], "candidates": [json.dumps(candidates or [])] * n}
    )


def params(pairs: pd.DataFrame) -> list[dict]:
    return [json.loads(p) for p in pairs["strategy_params"]]


def test_existing_keeps_the_file_order_and_drops_duplicates() -> None:
    frame = pd.DataFrame(
        {
            "prompt_id": ["a", "b", "c"],
            "prompt": ["q1", "q2", "q3"],
            "candidates": [
                json.dumps([{"model": "m1", "text": "first answer"}, {"model": "m2", "text": "second answer, different"}]),
                json.dumps([{"model": "m1", "text": "Same thing."}, {"model": "m2", "text": "same   thing."}, {"model": "m3", "text": "Other."}]),
                "[]",
            ],
        }
    )
    pairs = generate_pairs(frame, GenerationConfig(strategy="existing"), None).pairs
    assert list(pairs.columns) == list(schemas.RESPONSE_PAIRS)
    assert list(pairs["pair_id"]) == ["a:0", "b:0", "b:1", "b:2", "c:0"]
    first = pairs.iloc[0]
    assert (first["response_a"], first["model_a"], first["model_b"], first["strategy"]) == ("first answer", "m1", "m2", "existing")
    kept = pairs.set_index("pair_id")
    # existing completions keep degenerate pairs (flagged); an incomplete pair is always dropped
    assert kept.loc["b:0", "drop_reason"] == "identical responses" and not bool(kept.loc["b:0", "dropped"])
    assert (kept.loc["b:1", "model_a"], kept.loc["b:1", "model_b"]) == ("m1", "m3") and not kept.loc["b:1", "dropped"]
    assert kept.loc["c:0", "drop_reason"] == "fewer than two existing responses (0)" and pd.isna(kept.loc["c:0", "response_a"])
    assert bool(kept.loc["c:0", "dropped"])
    strict = generate_pairs(frame, GenerationConfig(strategy="existing", drop_degenerate=True), None).pairs.set_index("pair_id")
    assert bool(strict.loc["b:0", "dropped"]) and not bool(strict.loc["b:1", "dropped"])


def test_two_models_randomizes_a_and_b_stably(server: ScriptedServer, client: LLMClient) -> None:
    config = GenerationConfig(strategy="two_models", model="model-x", model_b="model-y", seed=3)
    pairs = generate_pairs(prompts(12), config, client).pairs
    assert not pairs["dropped"].any() and len(server.chat_requests) == 24
    swapped = pairs["model_a"] == "model-y"
    assert 0 < swapped.sum() < 12  # both orders occur
    assert (swapped.to_numpy() == swap_mask(list(pairs["pair_id"]), 3)).all()
    for p, (_, row) in zip(params(pairs), pairs.iterrows()):
        assert p["a"]["role"] == ("model_b" if row["model_a"] == "model-y" else "model_a") and p["model_b"] == "model-y" and p["seed"] == 3
    again = generate_pairs(prompts(12), config, client).pairs
    pd.testing.assert_frame_equal(again, pairs)
    assert len(server.chat_requests) == 24  # all from the cache


def test_two_temperatures_and_a_failed_generation(server: ScriptedServer, tmp_path: Path) -> None:
    server.on("Explain topic 1.", Fault("500"), repeat=True)
    client = make_client(server, tmp_path / "c.sqlite3", max_attempts=2)
    result = generate_pairs(prompts(3), GenerationConfig(strategy="two_temperatures", model="m"), client)
    pairs = result.pairs.set_index("pair_id")
    temperatures = sorted({s.body["temperature"] for s in server.chat_requests})
    assert temperatures == [0.3, 1.0]
    assert bool(pairs.loc["p1:0", "dropped"]) and pairs.loc["p1:0", "drop_reason"].startswith("generation failed: low (m): HTTP 500")
    assert not pairs.loc["p0:0", "dropped"]
    roles = {json.loads(pairs.loc["p0:0", "strategy_params"])[side]["temperature"] for side in ("a", "b")}
    assert roles == {0.3, 1.0}
    assert set(result.usage["status"]) == {"ok", "failed"}


def test_best_of_n_with_a_custom_scorer_and_samples_cached_per_index(server: ScriptedServer, client: LLMClient) -> None:
    calls = []

    def length_scorer(prompts: list[str], responses: list[str]) -> np.ndarray:
        calls.append(len(responses))
        return np.array([float(len(r)) for r in responses])

    config = GenerationConfig(strategy="best_of_n", model="m", n=8, scorer="length")
    result = generate_pairs(prompts(2), config, client, scorer=length_scorer)
    assert len(server.chat_requests) == 16 and calls == [16]
    assert all(s.body["temperature"] == 0.8 for s in server.chat_requests)
    samples = result.samples
    assert samples.groupby("prompt_id")["text"].nunique().eq(8).all()
    for pid, row in result.pairs.set_index("prompt_id").iterrows():
        own = samples[samples["prompt_id"] == pid]
        best, worst = own["text"].str.len().max(), own["text"].str.len().min()
        p = json.loads(row["strategy_params"])
        by_role = {p[s]["role"]: (row[f"response_{s}"], p[s]["score"]) for s in ("a", "b")}
        assert len(by_role["best"][0]) == best and len(by_role["worst"][0]) == worst
    generate_pairs(prompts(2), config, client, scorer=length_scorer)
    assert len(server.chat_requests) == 16  # the same 8 samples, from the cache


def test_best_of_n_judged_by_the_default_judge_scorer(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    result = generate_pairs(prompts(2), GenerationConfig(strategy="best_of_n", model="m", n=4), client, guidelines=guidelines)
    assert sorted(result.usage["stage"].unique()) == ["generation", "scorer"]
    for p in params(result.pairs):
        roles = {p["a"]["role"]: p["a"]["score"], p["b"]["role"]: p["b"]["score"]}
        assert roles["best"] > roles["worst"] and p["scorer"] == "judge" and p["scorer_model"] == "m"


def test_rejection_sampling_pairs_a_pass_with_a_fail(server: ScriptedServer, client: LLMClient) -> None:
    def scorer(prompts: list[str], responses: list[str]) -> np.ndarray:
        return np.array([float(r.count("e")) for r in responses])

    # 20: some prompts have samples on both sides of the mark, some have none passing it
    config = GenerationConfig(strategy="rejection_sampling", model="m", n=6, threshold=20, scorer="e-count")
    result = generate_pairs(prompts(3), config, client, scorer=scorer)
    assert 0 < result.pairs["dropped"].sum() < len(result.pairs)  # both branches below are exercised
    for (_, row), p in zip(result.pairs.iterrows(), params(result.pairs)):
        if row["dropped"]:
            assert "threshold 20" in row["drop_reason"]
            continue
        sides = {p[s]["role"]: p[s]["score"] for s in ("a", "b")}
        assert sides["accepted"] >= 20 > sides["rejected"]
    never = generate_pairs(prompts(1), config.model_copy(update={"threshold": 1e9}), client, scorer=scorer).pairs.iloc[0]
    assert bool(never["dropped"]) and never["drop_reason"].startswith("no sample passed the threshold")


def test_near_identical_generations_are_dropped_with_the_reason(server: ScriptedServer, client: LLMClient) -> None:
    server.on("Explain topic 0.", Reply("The same careful answer, word for word."), repeat=True)
    pairs = generate_pairs(prompts(2), GenerationConfig(strategy="two_models", model="x", model_b="y"), client).pairs.set_index("pair_id")
    assert pairs.loc["p0:0", "drop_reason"] == "identical responses" and not pairs.loc["p1:0", "dropped"]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="needs model_b"):
        GenerationConfig(strategy="two_models")
    with pytest.raises(ValueError, match="n >= 2"):
        GenerationConfig(strategy="best_of_n", n=1)
    with pytest.raises(ValueError, match="pass an LLM client"):
        generate_pairs(prompts(1), GenerationConfig(strategy="two_temperatures"), None)
