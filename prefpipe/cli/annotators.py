"""Commands for the annotation app: `annotate`, `annotators`, `queue add`, `gold`, `annotations export`.

All of them find the store through PREFPIPE_ANNOTATION_STORE (a SQLite file or PostgreSQL), else
the SQLite file under PREFPIPE_DATA_DIR (settings.annotation_store_path()).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefpipe.core.labels import SCALE as SCALE_CHOICES


def register(sub: Any) -> None:
    p = sub.add_parser(
        "annotate", help="start the annotators' web app",
        description="Serve the annotation app (FastAPI + uvicorn) over the annotation store: annotators sign in with the "
                    "token `prefpipe annotators add NAME` printed; admins also see the admin page (queue progress per "
                    "batch, each annotator's answers, gold accuracy, time on task, and unflag).")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="BYTES",
                   help="largest request body accepted, else 413 (default %(default)s = 1 MiB)")
    p.add_argument("--max-concurrent", type=int, default=4, metavar="N",
                   help="requests one annotator may have in flight at once, else 429 (default %(default)s)")
    p.add_argument("--session-hours", type=float, default=12.0, metavar="HOURS",
                   help="how long a page sign-in lasts (default %(default)s; never longer than the annotator's token)")
    p.add_argument("--openapi", action="store_true", help="serve /api/openapi.json to admins (off by default)")
    p.set_defaults(handler=run_app)

    p = sub.add_parser("annotators", help="add, list, rotate tokens of, disable or unflag annotators",
                       description="The annotators' accounts in the annotation store: their roles, secret tokens "
                                   "(stored hashed) and gold flags.")
    asub = p.add_subparsers(dest="annotators_command", metavar="ACTION", required=True)
    add = asub.add_parser("add", help="add an annotator and print their secret token (shown once)",
                          description="Add an account and print its secret token on stdout, once: hand it over "
                                      "privately; it signs in to `prefpipe annotate`.")
    add.add_argument("name", metavar="NAME", help="the annotator's name, as labels and reports show it")
    add.add_argument("--role", choices=("annotator", "expert", "admin"), default="annotator",
                     help="annotator: the regular queue; expert: the expert queue, whose answer is final; admin: the "
                          "admin page as well (default %(default)s)")
    add.add_argument("--days", type=float, default=30.0, help="how long the token works (default %(default)s)")
    add.set_defaults(handler=annotators_add)
    rot = asub.add_parser("rotate", help="print a new token for an annotator; the old one and its sign-ins stop working",
                          description="Print a new secret token for an annotator, once; the old token and every "
                                      "sign-in made with it stop working at once.")
    rot.add_argument("name", metavar="NAME", help="the annotator whose token to replace")
    rot.add_argument("--days", type=float, default=30.0, help="how long the new token works (default %(default)s)")
    rot.set_defaults(handler=annotators_add, rotate=True)
    asub.add_parser("list", help="list annotators with gold accuracy and flag state",
                    description="Every account: role, state (active, FLAGGED, disabled), answered and skipped tasks, "
                                "gold answers (right / given), when the token expires, and why a flag was raised.",
                    ).set_defaults(handler=annotators_list)
    for action, helptext, description, name_help in (
        ("disable", "revoke an annotator's token (their work is kept)",
         "Revoke an annotator's token and sign-ins; their answers stay in the store and in the batch's labels.",
         "the annotator to disable"),
        ("unflag", "lift a gold flag after review",
         "Lift an annotator's gold flag after review: they get tasks again, and their gold count starts afresh.",
         "the annotator to unflag"),
    ):
        q = asub.add_parser(action, help=helptext, description=description)
        q.add_argument("name", metavar="NAME", help=name_help)
        q.set_defaults(handler=annotators_change, action=action)

    p = sub.add_parser("queue", help="load pairs into the annotation queue",
                       description="The annotation queue: what people are asked to label. The human_queue asset fills "
                                   "it from the routing; `queue add` puts any pairs file in front of people by hand.")
    qsub = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    q = qsub.add_parser("add", help="load a pairs file (JSONL: pair_id, prompt, response_a, response_b)",
                        description="Load a pairs file into the queue for a batch, with optional hidden gold questions. "
                                    "Loading the same file again changes nothing.")
    q.add_argument("pairs", metavar="FILE",
                   help="pairs JSONL: pair_id, prompt, response_a, response_b; optional per line: route "
                        "(human|spot_check|expert), priority")
    q.add_argument("--batch", required=True, metavar="ID", help="the batch the tasks belong to")
    q.add_argument("--gold", metavar="FILE", help="gold JSONL: a pairs file whose lines also have `label` (the pair's own order)")
    q.add_argument("--gold-scope", choices=("batch", "global"), default="batch",
                   help="batch: serve the gold only beside this batch's tasks; global: beside any batch's (default %(default)s)")
    q.add_argument("--per-item", type=int, default=None, metavar="N",
                   help="distinct annotators per pair (default: the batch's labels_per_pair in its batch.json, else 3, "
                        "the number the pipeline's final labels wait for)")
    q.set_defaults(handler=queue_add)

    p = sub.add_parser("gold", help="list, export and re-check gold answer keys after a guideline change",
                       description="Gold answer keys are part of the guidelines: after a guideline change, answers to "
                                   "keys written under the old version flag no one until an expert re-checks them.")
    gsub = p.add_subparsers(dest="gold_command", metavar="ACTION", required=True)
    g = gsub.add_parser("list", help="gold pairs with their key, its guideline version and answers awaiting re-check",
                        description="Every gold pair: its key, the guideline version the key was written under, "
                                    "whether that is stale, its answers and those awaiting re-check.")
    g.add_argument("--stale", action="store_true", help="only keys written under an older guideline version")
    g.set_defaults(handler=gold_list)
    g = gsub.add_parser("export", help="write gold pairs as a gold file (JSONL) for an expert to review and edit",
                        description="Write the stale gold pairs (or all of them) as one gold file, a JSON line per "
                                    "pair, to edit and give back to `prefpipe gold recheck --file`.")
    g.add_argument("--out", required=True, metavar="PATH", help="the gold JSONL file to write (its folder is created)")
    g.add_argument("--all", action="store_true", help="every gold pair, not only the stale ones")
    g.add_argument("--batch", metavar="ID", help="only the gold pairs this batch loaded")
    g.set_defaults(handler=gold_export)
    g = gsub.add_parser("recheck", help="an expert confirms or corrects gold keys under the current guidelines",
                        description="Record an expert's decision on gold keys under the current guideline version, for "
                                    "one pair (--confirm or --label) or a reviewed gold file (--file); answers waiting "
                                    "for the re-check are then scored.")
    g.add_argument("pair_id", nargs="?", metavar="PAIR_ID", help="one gold pair (or give --file)")
    g.add_argument("--expert", required=True, metavar="NAME", help="the expert (or admin) account making the decision")
    how = g.add_mutually_exclusive_group(required=True)
    how.add_argument("--confirm", action="store_true", help="the key stands under the current guidelines")
    how.add_argument("--label", choices=SCALE_CHOICES, help="the corrected key, in the pair's own order")
    how.add_argument("--file", metavar="FILE", help="a reviewed gold file (from `prefpipe gold export`): each line's label is the decision")
    g.add_argument("--batch", metavar="ID", help="the batch that loaded the pair, when several did")
    g.set_defaults(handler=gold_recheck)

    p = sub.add_parser("annotations", help="read stored annotations",
                       description="Read the annotations stored by the annotation app.")
    nsub = p.add_subparsers(dest="annotations_command", metavar="ACTION", required=True)
    e = nsub.add_parser("export", help="write every stored annotation of a batch as JSONL",
                        description="Write every annotation the store holds for a batch, one JSON line each.")
    e.add_argument("--batch", required=True, metavar="ID", help="the batch whose annotations to write")
    e.add_argument("--out", required=True, metavar="PATH", help="the JSONL file to write")
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
    from prefpipe.core.guidelines import GuidelinesError, load_guidelines

    try:
        return GoldPolicy.from_thresholds(load_guidelines().thresholds)
    except GuidelinesError as exc:
        print(f"note: {exc}; using the default gold policy", file=sys.stderr)
        return GoldPolicy()


def run_app(args: argparse.Namespace) -> int:
    from prefpipe.annotate.app import create_app
    from prefpipe.annotate.guard import Limits
    from prefpipe.annotate.server import bind, serve, url_of

    try:
        limits = Limits(max_body_bytes=args.max_body_bytes, max_concurrent=args.max_concurrent)
    except ValueError as exc:
        return _fail(str(exc))
    policy = _gold_policy()
    with _store(gold_policy=policy) as store:
        try:
            sock = bind(args.host, args.port)
        except OSError as exc:
            return _fail(f"cannot listen on {args.host}:{args.port}: {exc}")
        print(f"prefpipe annotate: serving {url_of(sock)}/ (store {store.display})", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print("note: tokens travel in clear over plain HTTP; put a TLS proxy in front before "
                  "annotators connect from other machines", file=sys.stderr)
        serve(create_app(store, limits=limits, session_ttl_s=args.session_hours * 3600, openapi=args.openapi), sock)
    return 0


def annotators_add(args: argparse.Namespace) -> int:
    """`add` and `rotate`: both print a fresh token, once."""
    from prefpipe.annotate.errors import AnnotatorError

    rotate = getattr(args, "rotate", False)
    ttl_s = args.days * 24 * 3600
    with _store() as store:
        try:
            token = store.rotate_token(args.name, ttl_s=ttl_s) if rotate else store.add_annotator(args.name, args.role, ttl_s=ttl_s)
        except AnnotatorError as exc:
            return _fail(str(exc))
    print(token)
    done = f"new token for {args.name!r} (the old one no longer works)" if rotate else f"added {args.role} {args.name!r}"
    print(f"{done}; valid {args.days:g} days; this token is shown once: hand it over privately", file=sys.stderr)
    return 0


def annotators_list(args: argparse.Namespace) -> int:
    with _store() as store:
        rows = store.list_annotators()
    if not rows:
        print("no annotators yet: add one with `prefpipe annotators add NAME`")
        return 0
    print(f"{'name':<20} {'role':<9} {'state':<8} {'answered':>8} {'skipped':>7} {'gold':>9}  {'token expires':<20} flag reason")
    for r in rows:
        state = "disabled" if r["disabled"] else ("FLAGGED" if r["flagged"] else "active")
        gold = f"{r['gold_correct']}/{r['gold_answers']}" if r["gold_answers"] else "-"
        expires = (r["token_expires_at"] or "-")[:19]
        print(f"{r['name']:<20} {r['role']:<9} {state:<8} {r['answered']:>8} {r['skipped']:>7} {gold:>9}  {expires:<20} "
              f"{r['flag_reason'] or ''}")
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
    from prefpipe.core import settings
    from prefpipe.core.batch_config import load_batch_config
    from prefpipe.core.guidelines import GuidelinesError, load_guidelines
    from prefpipe.core.input_errors import BatchInputError
    from prefpipe.core.pairs_file import PairsFileError, read_pairs
    from prefpipe.core.routing import DEFAULT_LABELS_PER_PAIR

    try:
        per_item = args.per_item
        if per_item is None:
            per_item = load_batch_config(settings.batch_dir(args.batch)).labels_per_pair or DEFAULT_LABELS_PER_PAIR
        guidelines = load_guidelines()
        tasks = read_pairs(args.pairs)
        gold = read_pairs(args.gold, gold=True) if args.gold else None
        with _store() as store:
            counts = store.enqueue(
                args.batch,
                tasks,
                per_item=per_item,
                guideline_version=guidelines.version,
                rubric=guidelines.rubric_dict(),
                gold=gold,
                dimension_scale=guidelines.dimension_scale,
                gold_scope=args.gold_scope,
            )
    except (PairsFileError, GuidelinesError, FieldError, BatchInputError) as exc:
        return _fail(str(exc))
    print(
        f"batch {args.batch!r} (guidelines {guidelines.version}, {per_item} label(s) a pair): {counts['inserted']} new tasks, "
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


def _gold_keys() -> tuple[str, Any]:
    """(the current guideline version, the store's gold keys marked stale against it)."""
    from prefpipe.core.guidelines import load_guidelines

    current = load_guidelines().version
    with _store() as store:
        return current, store.gold_items(current)


def gold_list(args: argparse.Namespace) -> int:
    from prefpipe.core.guidelines import GuidelinesError

    try:
        current, gold = _gold_keys()
    except GuidelinesError as exc:
        return _fail(str(exc))
    shown = gold[gold["stale"]] if args.stale else gold
    print(f"current guideline version {current}: {len(gold)} gold pair(s), {int(gold['stale'].sum())} written under an "
          f"older version, {int(gold['answers_awaiting_recheck'].sum())} answer(s) awaiting re-check")
    if len(shown):
        print(f"{'batch':<16} {'pair':<24} {'key':<5} {'state':<7} {'answers':>7} {'waiting':>7}  version / checked by")
    for r in shown.itertuples():
        checked = f"  (re-checked by {r.checked_by} {r.checked_at})" if r.checked_by else ""
        print(f"{r.batch_id:<16} {r.pair_id:<24} {r.gold_label:<5} {'STALE' if r.stale else 'current':<7} "
              f"{r.answers:>7} {r.answers_awaiting_recheck:>7}  {r.gold_version}{checked}")
    if gold["stale"].any():
        print("review them: prefpipe gold export --out review.jsonl, edit the labels, then "
              "prefpipe gold recheck --file review.jsonl --expert NAME")
    return 0


def gold_export(args: argparse.Namespace) -> int:
    """One line per gold pair (a pair loaded by several batches with the same text is one decision)."""
    import json
    from pathlib import Path

    from prefpipe.annotate.store import content_key
    from prefpipe.core.guidelines import GuidelinesError

    try:
        current, gold = _gold_keys()
    except GuidelinesError as exc:
        return _fail(str(exc))
    chosen = gold if args.all else gold[gold["stale"]]
    if args.batch is not None:
        chosen = chosen[chosen["batch_id"] == args.batch]
    chosen = chosen.assign(key=[content_key(p, a, b) for p, a, b in zip(chosen["prompt"], chosen["response_a"], chosen["response_b"])])
    texts = chosen.groupby("pair_id")["key"].nunique()
    if (texts > 1).any():
        pair = texts.index[texts > 1][0]
        batches = ", ".join(sorted(chosen.loc[chosen["pair_id"] == pair, "batch_id"]))
        return _fail(f"gold pair {pair!r} was loaded with different text by batches {batches}: export one batch at a time (--batch)")
    lines = []
    for pair_id, rows in chosen.groupby("pair_id", sort=False):
        r = rows.iloc[0]
        lines.append(json.dumps({"pair_id": pair_id, "prompt": r["prompt"], "response_a": r["response_a"],
                                 "response_b": r["response_b"], "label": r["gold_label"],
                                 "key_version": r["gold_version"], "batches": sorted(rows["batch_id"])}, ensure_ascii=False))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} gold pair(s) to {out}; edit `label` where the current guidelines say otherwise, "
          f"then: prefpipe gold recheck --file {out} --expert NAME" + (f" --batch {args.batch}" if args.batch else ""))
    return 0


def gold_recheck(args: argparse.Namespace) -> int:
    from prefpipe.annotate.errors import AnnotatorError, FieldError
    from prefpipe.core.pairs_file import PairsFileError, read_pairs
    from prefpipe.annotate.store import content_key
    from prefpipe.core.guidelines import GuidelinesError, load_guidelines

    if (args.pair_id is None) == (args.file is None):
        return _fail("give one gold pair id with --confirm or --label, or a reviewed gold file with --file")
    try:
        current = load_guidelines().version
        if args.file:
            decisions = read_pairs(args.file, gold=True)
        else:
            decisions = None
        with _store() as store:
            if decisions is None:
                results = [store.recheck_gold(args.pair_id, version=current, expert=args.expert,
                                              label=args.label, batch_id=args.batch)]
            else:
                stored = store.gold_items(current)
                keys: dict[str, set[str]] = {}
                for r in stored.itertuples():
                    if args.batch is None or r.batch_id == args.batch:
                        keys.setdefault(r.pair_id, set()).add(content_key(r.prompt, r.response_a, r.response_b))
                for r in decisions.itertuples():
                    if r.pair_id not in keys:
                        raise FieldError("pair_id", f"{args.file}: {r.pair_id!r} is not a gold pair")
                    if content_key(r.prompt, r.response_a, r.response_b) not in keys[r.pair_id]:
                        raise FieldError("prompt", f"{args.file}: pair {r.pair_id!r}: the text differs from the stored "
                                                   "gold pair; re-check what annotators are shown (export again)")
                with store.group():
                    results = [store.recheck_gold(r.pair_id, version=current, expert=args.expert, label=r.label,
                                                  batch_id=args.batch) for r in decisions.itertuples()]
    except (PairsFileError, GuidelinesError, FieldError, AnnotatorError) as exc:
        return _fail(str(exc))
    changed = sum(r["changed"] for r in results)
    scored = sum(r["answers_scored"] for r in results)
    for r in results:
        if r["changed"]:
            print(f"  {r['pair_id']}: {r['old_label']} -> {r['label']}")
    print(f"re-checked {len(results)} gold key(s) under guideline version {current} by {args.expert}: "
          f"{len(results) - changed} confirmed, {changed} corrected; {scored} waiting answer(s) scored")
    return 0
