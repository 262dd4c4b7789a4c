"""`prefpipe generate` as users run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefpipe.cli import main
from prefpipe.testing.scripted_server import ScriptedServer


def test_generate_then_judge_the_pairs_file(server: ScriptedServer, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Say something about {i}."}) + "\n" for i in range(4)))
    out = tmp_path / "pairs.jsonl"
    common = ["--base-url", server.base_url, "--cache", str(tmp_path / "c.sqlite3")]
    assert main(["generate", "--prompts", str(prompts), "--out", str(out), "--strategy", "two_models", "--model", "a", "--model-b", "b", *common]) == 0
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["pair_id"] for p in pairs] == ["p0:0", "p1:0", "p2:0", "p3:0"]
    assert {p["model_a"] for p in pairs} | {p["model_b"] for p in pairs} == {"a", "b"}
    assert (tmp_path / "pairs.dropped.jsonl").read_text() == ""
    # the pairs file is what `prefpipe judge --pairs` reads
    from prefpipe.core.pairs_file import read_pairs

    assert len(read_pairs(out)) == 4


def test_existing_responses_keep_their_order_and_dropped_pairs_go_aside(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"id": "x", "prompt": "q", "responses": [{"model": "m1", "text": "first"}, {"model": "m2", "text": "second one"}]},
        {"id": "y", "prompt": "q2", "responses": [{"model": "m1", "text": "dup"}, {"model": "m2", "text": "dup"}]},
    ]
    prompts.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "pairs.jsonl"
    # existing completions keep degenerate pairs by default (their labels may exist), reason recorded
    assert main(["generate", "--prompts", str(prompts), "--out", str(out), "--strategy", "existing"]) == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["pair_id"] for p in kept] == ["x:0", "y:0"]
    assert main(["generate", "--prompts", str(prompts), "--out", str(out), "--strategy", "existing", "--drop-degenerate"]) == 0
    [pair] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (pair["response_a"], pair["model_a"]) == ("first", "m1")
    [dropped] = [json.loads(line) for line in (tmp_path / "pairs.dropped.jsonl").read_text().splitlines()]
    assert dropped["pair_id"] == "y:0" and dropped["drop_reason"] == "identical responses"


def test_bad_prompts_name_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{"id": "z"}\n')
    assert main(["generate", "--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl"), "--strategy", "existing"]) == 2
    err = capsys.readouterr().err
    assert str(prompts) in err and "line 2" in err and "'prompt'" in err
    assert main(["generate", "--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl"), "--strategy", "two_models"]) == 2
    assert "needs model_b" in capsys.readouterr().err


def test_options_default_to_the_config_and_offer_its_strategies() -> None:
    from prefpipe.cli import build_parser
    from prefpipe.cli.generate import STRATEGY_CHOICES
    from prefpipe.generation.config import STRATEGIES, GenerationConfig

    args = vars(build_parser().parse_args(["generate", "--prompts", "p", "--out", "o", "--strategy", "existing"]))
    shared = [name for name in GenerationConfig.model_fields if name in args and name != "strategy"]
    assert len(shared) == 15
    assert {name: args[name] for name in shared} == {name: GenerationConfig.model_fields[name].default for name in shared}
    assert STRATEGY_CHOICES == STRATEGIES
