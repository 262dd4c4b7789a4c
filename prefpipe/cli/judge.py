"""`prefpipe judge`: the ai_labels stage for a pairs file, outside Dagster (same code as the asset).

A pairs file holds one JSON object a line with pair_id, prompt, response_a, response_b. The labels
file gets one line per (pair, judge) with label (one of the five verdicts, or null), status (ok,
unparsed, inconsistent, failed), confidence, both per-order verdicts, the problem when not ok, the
versions, tokens and cost. Answers are cached as they arrive: an interrupted run, started again,
sends only the calls that had no answer.
"""

from __future__ import annotations

import argparse
import sys

from prefpipe.cli.llm_options import add_client_options, client_from_args

EXIT_PENDING = 75  # EX_TEMPFAIL: Batch API answers are not in yet; run again later


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("judge", help="label response pairs with an LLM judge (both orders)", description=__doc__)
    parser.add_argument("--pairs", required=True, metavar="FILE", help="pairs JSONL: pair_id, prompt, response_a, response_b")
    parser.add_argument("--out", required=True, metavar="PATH", help="the labels JSONL file to write: one line per pair and judge")
    parser.add_argument("--model", action="append", metavar="MODEL",
                        help="judge model; repeat for several judges side by side (default gpt-4o-mini)")
    parser.add_argument("--template", default="judge_v1", metavar="NAME_OR_FILE",
                        help="packaged template name or template file (default %(default)s)")
    parser.add_argument("--guidelines", metavar="DIR", help="guidelines folder (default <data dir>/guidelines)")
    parser.add_argument("--single-order", action="store_true", help="judge only the A/B order (half the cost, no consistency check)")
    parser.add_argument("--no-logprobs", action="store_true", help="do not ask for log-probabilities (servers that reject them)")
    parser.add_argument("--max-tokens", type=int, default=1024, metavar="N",
                        help="longest judge answer, in tokens (default %(default)s)")
    parser.add_argument("--batch-api", action="store_true",
                        help=f"submit cache misses as OpenAI Batch API jobs (half price, up to 24 h); exits {EXIT_PENDING} "
                             "while answers are pending")
    add_client_options(parser)
    parser.set_defaults(handler=run)


def _share(value: float) -> str:
    return "n/a" if value != value else f"{value:.1%}"  # NaN: nothing to count yet


def run(args: argparse.Namespace) -> int:
    from prefpipe.core.pairs_file import PairsFileError, read_pairs
    from prefpipe.core.guidelines import GuidelinesError, load_guidelines
    from prefpipe.judge.judge import REQUIRED_PAIR_COLUMNS, JudgeConfig, judge_pairs
    from prefpipe.judge.template import TemplateError
    from prefpipe.llm.client import LLMConfigError
    from prefpipe.llm.jsonl import write_jsonl

    try:
        pairs = read_pairs(args.pairs)[list(REQUIRED_PAIR_COLUMNS)]
        guidelines = load_guidelines(args.guidelines)
        judges = [
            JudgeConfig(model=m, template=args.template, both_orders=not args.single_order, logprobs=not args.no_logprobs, max_tokens=args.max_tokens)
            for m in (args.model or ["gpt-4o-mini"])
        ]
        client = client_from_args(args)
        result = judge_pairs(pairs, guidelines, judges, client, batch_api=args.batch_api)
    except (PairsFileError, GuidelinesError, TemplateError, LLMConfigError, ValueError) as exc:
        print(f"prefpipe judge: {exc}", file=sys.stderr)
        return 2
    labels = result.labels.merge(result.problems[["pair_id", "judge", "problem"]], on=["pair_id", "judge"], how="left")
    columns = ["pair_id", "judge", "label", "status", "confidence", "label_ab", "label_ba", "problem",
               "guideline_version", "judge_prompt_version", "prompt_tokens", "completion_tokens", "cost_usd", "raw"]
    n = write_jsonl(args.out, labels[columns])
    if args.usage_out:
        write_jsonl(args.usage_out, result.usage)
    usage = result.usage
    print(f"wrote {n} label(s) to {args.out}", file=sys.stderr)
    for row in result.bias.to_dict("records"):
        print(
            f"  {row['judge']}: ok {row['ok']}, unparsed {row['unparsed']}, inconsistent {row['inconsistent']}, failed {row['failed']}; "
            f"position flips {_share(row['position_flip_rate'])}, first slot preferred {_share(row['first_slot_rate'])}, "
            f"longer preferred {_share(row['longer_rate'])}",
            file=sys.stderr,
        )
    print(
        f"  calls: {len(usage)} ({int(usage['cached'].sum())} from the cache), spent ${usage['spent_usd'].sum():.4f} this run, "
        f"labels cost ${usage['cost_usd'].sum():.4f} in all" + ("" if usage["cost_usd"].notna().all() else " (some models have no price)"),
        file=sys.stderr,
    )
    if result.pending:
        print(f"  {result.pending} row(s) wait for Batch API job(s) {', '.join(result.batch_jobs)}; run the same command again later", file=sys.stderr)
        return EXIT_PENDING
    return 0
