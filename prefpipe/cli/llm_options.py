"""Command-line options shared by `prefpipe judge` and `prefpipe generate`: where the endpoint
is, how hard to push it, and where the cache lives. Kept free of heavy imports."""

from __future__ import annotations

import argparse
from typing import Any


def add_client_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("endpoint")
    group.add_argument("--base-url", metavar="URL",
                       help="OpenAI-compatible endpoint ending in /v1 (default $OPENAI_BASE_URL, else OpenAI)")
    group.add_argument("--concurrency", type=int, default=16, metavar="N", help="requests on the wire at once (default %(default)s)")
    group.add_argument("--rpm", type=float, metavar="N", help="request-per-minute limit (default: none)")
    group.add_argument("--tpm", type=float, metavar="N", help="token-per-minute limit (default: none)")
    group.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                       help="seconds one attempt may take, from connect to the last byte (default %(default)s)")
    group.add_argument("--max-attempts", type=int, default=6, metavar="N",
                       help="attempts per call before it is recorded as failed (default %(default)s)")
    group.add_argument("--cache", metavar="FILE", help="answer cache file (default <data dir>/llm_cache.sqlite3)")
    group.add_argument("--no-cache", action="store_true", help="send every call and store nothing")
    group.add_argument("--prices", metavar="FILE", help="price table JSON overriding the packaged one")
    group.add_argument("--usage-out", metavar="PATH",
                       help="also write one usage row per call (tokens, cached, cost) to this JSONL file")


def client_from_args(args: argparse.Namespace) -> Any:
    from prefpipe.llm.client import LLMClient, LLMSettings

    settings = LLMSettings(
        base_url=args.base_url,
        concurrency=args.concurrency,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        timeout_s=args.timeout,
        max_attempts=args.max_attempts,
        cache_path=args.cache,
        use_cache=not args.no_cache,
        prices_path=args.prices,
    )
    return LLMClient(settings)
