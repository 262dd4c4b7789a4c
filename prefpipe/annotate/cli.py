"""Commands for the annotation app: `annotate`, `annotators`, `queue add`, `annotations export`.

All of them find the store through PREFPIPE_DATA_DIR (settings.annotation_store_path()).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("annotate", help="start the annotators' web app")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.set_defaults(handler=run_app)

    p = sub.add_parser("annotators", help="add, list, disable or unflag annotators")
    asub = p.add_subparsers(dest="annotators_command", metavar="ACTION", required=True)
    add = asub.add_parser("add", help="add an annotator and print their secret token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=("annotator", "expert", "admin"), default="annotator")
    add.set_defaults(handler=annotators_add)
    asub.add_parser("list", help="list annotators with gold accuracy and flag state").set_defaults(
        handler=annotators_list
    )
    for action, helptext in (("disable", "revoke an annotator's token (their work is kept)"),
                             ("unflag", "lift a gold flag after review")):
        q = asub.add_parser(action, help=helptext)
        q.add_argument("name")
        q.set_defaults(handler=annotators_change, action=action)

    p = sub.add_parser("queue", help="load pairs into the annotation queue")
    qsub = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    q = qsub.add_parser("add", help="load a pairs file (JSONL: pair_id, prompt, response_a, response_b)")
    q.add_argument("pairs", help="PAIRS.jsonl; optional per line: route (human|spot_check|expert), priority")
    q.add_argument("--batch", required=True, help="batch id the tasks belong to")
    q.add_argument("--gold", help="GOLD.jsonl: a pairs file whose lines also have `label` (the pair's own order)")
    q.add_argument("--per-item", type=int, default=3, help="distinct annotators per pair (default 3)")
    q.set_defaults(handler=queue_add)

    p = sub.add_parser("annotations", help="read stored annotations")
    nsub = p.add_subparsers(dest="annotations_command", metavar="ACTION", required=True)
    e = nsub.add_parser("export", help="write every stored annotation of a batch as JSONL")
    e.add_argument("--batch", required=True)
    e.add_argument("--out", required=True, help="FILE.jsonl")
    e.set_defaults(handler=annotations_export)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _store(**kwargs: Any) -> Any:
    from prefpipe.annotate.store import AnnotationStore

    return AnnotationStore(**kwargs)


def _gold_policy() -> Any:
    """The gold thresholds from the guidelines' rubric, or the design defaults when there are none."""
    from prefpipe.annotate.gold import GoldPolicy
    from prefpipe.guidelines import GuidelinesError, load_guidelines

    try:
        return GoldPolicy.from_thresholds(load_guidelines().thresholds)
    except GuidelinesError as exc:
        print(f"note: {exc}; using the default gold policy", file=sys.stderr)
        return GoldPolicy()


def run_app(args: argparse.Namespace) -> int:
    from prefpipe.annotate.app import create_app
    from prefpipe.annotate.server import bind, serve, url_of

    policy = _gold_policy()
    with _store(gold_policy=policy) as store:
        try:
            sock = bind(args.host, args.port)
        except OSError as exc:
            return _fail(f"cannot listen on {args.host}:{args.port}: {exc}")
        print(f"prefpipe annotate: serving {url_of(sock)}/ (store {store.path})", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print("note: tokens travel in clear over plain HTTP; put a TLS proxy in front before "
                  "annotators connect from other machines", file=sys.stderr)
        serve(create_app(store), sock)
    return 0


def annotators_add(args: argparse.Namespace) -> int:
    from prefpipe.annotate.errors import AnnotatorError

    with _store() as store:
        try:
            token = store.add_annotator(args.name, args.role)
        except AnnotatorError as exc:
            return _fail(str(exc))
    print(token)
    print(f"added {args.role} {args.name!r}; this token is shown once: hand it over privately", file=sys.stderr)
    return 0


def annotators_list(args: argparse.Namespace) -> int:
    with _store() as store:
        rows = store.list_annotators()
    if not rows:
        print("no annotators yet: add one with `prefpipe annotators add NAME`")
        return 0
    print(f"{'name':<20} {'role':<9} {'state':<8} {'answered':>8} {'skipped':>7} {'gold':>9}  flag reason")
    for r in rows:
        state = "disabled" if r["disabled"] else ("FLAGGED" if r["flagged"] else "active")
        gold = f"{r['gold_correct']}/{r['gold_answers']}" if r["gold_answers"] else "-"
        print(f"{r['name']:<20} {r['role']:<9} {state:<8} {r['answered']:>8} {r['skipped']:>7} {gold:>9}  {r['flag_reason'] or ''}")
    return 0


def annotators_change(args: argparse.Namespace) -> int:
    from prefpipe.annotate.errors import AnnotatorError

    with _store() as store:
        try:
            getattr(store, args.action)(args.name)
        except AnnotatorError as exc:
            return _fail(str(exc))
    print(f"{args.action}d {args.name!r}" if args.action == "disable" else f"unflagged {args.name!r}")
    return 0


def queue_add(args: argparse.Namespace) -> int:
    from prefpipe.annotate.errors import FieldError
    from prefpipe.annotate.pairs_file import PairsFileError, read_pairs
    from prefpipe.guidelines import GuidelinesError, load_guidelines

    try:
        guidelines = load_guidelines()
        tasks = read_pairs(args.pairs)
        gold = read_pairs(args.gold, gold=True) if args.gold else None
        with _store() as store:
            counts = store.enqueue(
                args.batch,
                tasks,
                per_item=args.per_item,
                guideline_version=guidelines.version,
                rubric=guidelines.rubric_dict(),
                gold=gold,
                dimension_scale=guidelines.dimension_scale,
            )
    except (PairsFileError, GuidelinesError, FieldError) as exc:
        return _fail(str(exc))
    print(
        f"batch {args.batch!r} (guidelines {guidelines.version}): {counts['inserted']} new tasks, "
        f"{counts['updated']} updated, {counts['unchanged']} unchanged, {counts['gold_inserted']} new gold, "
        f"{counts['gold_updated']} gold updated"
        + (f"; {counts['text_kept']} pairs already served kept their old text" if counts["text_kept"] else "")
    )
    return 0


def annotations_export(args: argparse.Namespace) -> int:
    with _store() as store:
        n = store.export_jsonl(args.batch, args.out)
    print(f"wrote {n} annotations of batch {args.batch!r} to {args.out}")
    return 0
