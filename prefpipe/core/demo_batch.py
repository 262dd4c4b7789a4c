"""Build the shipped demo batch (`demo`) from the PandaLM human-annotated test set.

PandaLM (WeOpenML/PandaLM, Apache-2.0) holds 999 instruction + two-response pairs, three human
labels each (1 = response1 better, 2 = response2 better, 0 = tie) and gpt-3.5-turbo verdicts
("1", "2", "Tie", or "garbage" when the authors could not parse the answer). The demo batch is a
faithful conversion into prefpipe's batch-folder format, so it exercises the same import path a
user's own labels take. Run: `python -m prefpipe.core.demo_batch SRC_DIR OUT_DIR`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

LABEL_MAP = {"0": "A=B", "1": "A>B", "2": "B>A", "Tie": "A=B"}
SOURCE_FILES = ("testset-v1.json", "gpt-3.5-turbo-testset-v1.json")


def _prompt_text(row: dict) -> str:
    return row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")


def _text(value: object) -> str:
    """Six PandaLM responses are the JSON literal true (a response "True" that the authors' tooling
    parsed); a response is text, so they are stored as the text they were."""
    return value if isinstance(value, str) else str(value)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def build(src: Path, out: Path) -> dict[str, int]:
    """Write prompts.jsonl, ai_labels.jsonl, annotations.jsonl and batch.json into `out`."""
    tests = json.loads((src / "testset-v1.json").read_text(encoding="utf-8"))
    gpt = {row["idx"]: row for row in json.loads((src / "gpt-3.5-turbo-testset-v1.json").read_text(encoding="utf-8"))}
    out.mkdir(parents=True, exist_ok=True)
    prompts, verdicts, annotations = [], [], []
    for row in sorted(tests, key=lambda r: r["idx"]):
        prompt_id = f"pandalm-{row['idx']}"
        pair_id = f"{prompt_id}:0"
        model_1, model_2 = row["cmp_key"].split("_")
        prompts.append(
            {
                "id": prompt_id,
                "prompt": _prompt_text(row),
                "responses": [{"model": model_1, "text": _text(row["response1"])}, {"model": model_2, "text": _text(row["response2"])}],
                "meta": {"source": "PandaLM testset-v1", "idx": row["idx"], "motivation_app": row["motivation_app"]},
            }
        )
        judged = gpt[row["idx"]]
        verdicts.append({"pair_id": pair_id, "judge": "gpt-3.5-turbo", "verdict": judged["gpt_result"], "reasoning": judged["gpt_reason"]})
        for k in (1, 2, 3):
            annotations.append({"pair_id": pair_id, "annotator_id": f"pandalm-annotator{k}", "label": row[f"annotator{k}"]})
    _write_jsonl(out / "prompts.jsonl", prompts)
    _write_jsonl(out / "ai_labels.jsonl", verdicts)
    _write_jsonl(out / "annotations.jsonl", annotations)
    config = {
        "description": "PandaLM human-annotated test set (999 pairs, 3 annotators each) with gpt-3.5-turbo verdicts.",
        "label_map": LABEL_MAP,
        "external_judge": "gpt-3.5-turbo",
        "imported_guideline_version": "pandalm-v1",
    }
    (out / "batch.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for extra in ("LICENSE.apache-2.0.txt", "PROVENANCE.md"):
        if (src / extra).is_file():
            shutil.copyfile(src / extra, out / extra)
    return {"prompts": len(prompts), "verdicts": len(verdicts), "annotations": len(annotations)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder holding PandaLM's testset-v1.json and gpt-3.5-turbo-testset-v1.json")
    parser.add_argument("out", type=Path, help="batch folder to write, e.g. data/batches/demo")
    args = parser.parse_args(argv)
    print(build(args.src, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
