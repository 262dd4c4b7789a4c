"""`prefpipe generate`: the response_pairs stage for a prompts file, outside Dagster (same code).

The prompts file is a batch's prompts.jsonl: one JSON object a line with `prompt`, optional `id`
and optional `responses` ([{"model", "text"}], for --strategy existing). The pairs file gets one
line per kept pair (pair_id, prompt_id, prompt, response_a, response_b, model_a, model_b,
strategy, strategy_params), ready for `prefpipe judge --pairs`; dropped pairs and their reasons go
to a second file (--dropped-out, default PAIRS.dropped.jsonl). With --strategy existing, A is the
first response of the line and B the second, so labels that came with the file line up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefpipe.cli.llm_options import add_client_options, client_from_args

STRATEGY_CHOICES = ("existing", "two_models", "two_temperatures", "best_of_n", "rejection_sampling")
"""config.STRATEGIES, spelled out so that building the parser does not import pydantic."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="make response pairs from prompts (five strategies)", description=__doc__)
    parser.add_argument("--prompts", required=True, metavar="FILE", help="prompts JSONL: prompt, optional id, optional responses")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="the pairs JSONL file to write: one line per kept pair (dropped pairs go to --dropped-out)")
    parser.add_argument("--strategy", required=True, choices=STRATEGY_CHOICES,
                        help="existing: the prompts' own responses; two_models; two_temperatures; best_of_n; rejection_sampling")
    parser.add_argument("--dropped-out", metavar="PATH",
                        help="the JSONL file for dropped pairs and their reasons (default: --out with .dropped.jsonl for its suffix)")
    parser.add_argument("--model", default="gpt-4o-mini", metavar="MODEL",
                        help="sampling model; model A of two_models (default %(default)s)")
    parser.add_argument("--model-b", metavar="MODEL", help="second model of two_models (required there)")
    parser.add_argument("--temperature", type=float, default=0.7, help="two_models: temperature of both models (default %(default)s)")
    parser.add_argument("--low-temperature", type=float, default=0.3,
                        help="two_temperatures: temperature of the careful sample (default %(default)s)")
    parser.add_argument("--high-temperature", type=float, default=1.0,
                        help="two_temperatures: temperature of the adventurous sample (default %(default)s)")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt for best_of_n / rejection_sampling (default %(default)s)")
    parser.add_argument("--sample-temperature", type=float, default=0.8,
                        help="best_of_n / rejection_sampling: sampling temperature (default %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="rejection_sampling: a sample passes at this score or above, on the scorer's scale (judge: 0..1; "
                             "default %(default)s)")
    parser.add_argument("--scorer", default="judge",
                        help="'judge' (the pointwise LLM judge) or module:function taking (prompts, responses) -> scores "
                             "(default %(default)s)")
    parser.add_argument("--scorer-model", metavar="MODEL", help="the judge scorer's model (default: --model)")
    parser.add_argument("--similarity-threshold", type=float, default=0.9,
                        help="drop pairs at or above this character 5-gram Jaccard similarity (default %(default)s)")
    degenerate = parser.add_mutually_exclusive_group()
    degenerate.add_argument("--drop-degenerate", dest="drop_degenerate", action="store_const", const=True, default=None,
                            help="drop empty / near-identical pairs (the default for generated pairs)")
    degenerate.add_argument("--keep-degenerate", dest="drop_degenerate", action="store_const", const=False,
                            help="keep them, with the reason recorded (the default for existing completions)")
    parser.add_argument("--max-tokens", type=int, default=1024, metavar="N", help="longest response, in tokens (default %(default)s)")
    parser.add_argument("--system-prompt", metavar="TEXT", help="system message for the responding model (default: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the A/B order (not used by existing; default %(default)s)")
    parser.add_argument("--guidelines", metavar="DIR", help="guidelines folder for the judge scorer (default <data dir>/guidelines)")
    add_client_options(parser)
    parser.set_defaults(handler=run)


def _load_scorer(spec: str):  # noqa: ANN202 - returns any callable
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--scorer: {spec!r} is neither 'judge' nor module:function")
    try:
        scorer = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--scorer: cannot load {spec!r} ({exc})") from exc
    if not callable(scorer):
        raise ValueError(f"--scorer: {spec!r} is not callable")
    return scorer


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from prefpipe.core.batches import BatchInputError, load_prompts
    from prefpipe.generation.config import GenerationConfig
    from prefpipe.generation.pairs import generate_pairs
    from prefpipe.core.guidelines import GuidelinesError, load_guidelines
    from prefpipe.judge.template import TemplateError
    from prefpipe.llm.client import LLMConfigError
    from prefpipe.llm.jsonl import write_jsonl

    try:
        # the generation options are named after GenerationConfig's fields (the client's are not)
        config = GenerationConfig(**{name: value for name, value in vars(args).items() if name in GenerationConfig.model_fields})
        prompts = load_prompts(Path(args.prompts))
        scorer = None if args.scorer == "judge" else _load_scorer(args.scorer)
        needs_judge = scorer is None and args.strategy in ("best_of_n", "rejection_sampling")
        guidelines = load_guidelines(args.guidelines) if needs_judge else None
        client = None if args.strategy == "existing" else client_from_args(args)
        result = generate_pairs(prompts, config, client, scorer=scorer, guidelines=guidelines)
    except ValidationError as exc:
        print(f"prefpipe generate: {'; '.join(e['msg'] for e in exc.errors())}", file=sys.stderr)
        return 2
    except (BatchInputError, GuidelinesError, TemplateError, LLMConfigError, ValueError) as exc:
        print(f"prefpipe generate: {exc}", file=sys.stderr)
        return 2
    pairs = result.pairs
    dropped = pairs["dropped"].astype(bool)
    kept_n = write_jsonl(args.out, pairs[~dropped].drop(columns=["dropped", "drop_reason"]))
    dropped_path = Path(args.dropped_out) if args.dropped_out else Path(args.out).with_suffix(".dropped.jsonl")
    write_jsonl(dropped_path, pairs[dropped])
    if args.usage_out:
        write_jsonl(args.usage_out, result.usage)
    print(f"wrote {kept_n} pair(s) to {args.out}; {int(dropped.sum())} dropped -> {dropped_path}", file=sys.stderr)
    for reason, count in pairs.loc[dropped, "drop_reason"].str.replace(r"\(.*", "", regex=True).str.strip().value_counts().items():
        print(f"  dropped {count}: {reason}", file=sys.stderr)
    usage = result.usage
    if len(usage):
        print(f"  calls: {len(usage)} ({int(usage['cached'].sum())} from the cache), spent ${usage['spent_usd'].sum():.4f} this run", file=sys.stderr)
    return 0
