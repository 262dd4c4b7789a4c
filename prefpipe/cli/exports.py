"""`prefpipe export` and `prefpipe import`: data out to trainers and other annotation tools, and
annotations made there back in.

Export reads the warehouse in one short read-only connection (a pipeline run may be waiting to
write). Import never touches the warehouse's tables for writing: it writes the annotations as a
JSONL file in the batch folder (data/batches/<batch>/annotations/), which the next run of the
batch picks up with the same checks as any other import.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXPORT_FORMATS = ("trl", "label-studio", "argilla", "pairs")
IMPORT_FORMATS = ("label-studio", "argilla")
EXPORT_TABLES = {
    "trl": ("preference_dataset", "ai_labels", "human_annotations", "agreement_report"),
    "label-studio": ("response_pairs", "ai_labels", "human_annotations"),
    "argilla": ("response_pairs", "ai_labels", "human_annotations"),
    "pairs": ("response_pairs",),
}
PAIR_FIELDS = ("pair_id", "prompt", "response_a", "response_b")
"""The pairs-file format `prefpipe judge --pairs` and `prefpipe queue add` read."""


def read_batch_tables(batch_id: str, tables: tuple[str, ...], *, database: Path | None = None) -> dict:
    """The batch's rows of each table, in one short read-only connection; a table not written yet
    comes back empty with its schema's columns."""
    from prefpipe.core import settings
    from prefpipe.core.warehouse import read_tables

    path = Path(database or settings.warehouse_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no warehouse yet (run the pipeline on the batch first: prefpipe run --batch {batch_id})")
    return read_tables(tables, batch_id=batch_id, database=path)


def batch_id_error(batch_id: str) -> str | None:
    """Why `batch_id` names no batch folder (as `prefpipe run` checks it), or None: a path such as
    ../../outside would read and write outside data/batches/."""
    from prefpipe.core.batches import is_valid_batch_id

    if is_valid_batch_id(batch_id):
        return None
    return (f"--batch {batch_id!r} is not a batch id: letters, digits, '_', '.' and '-', starting with a letter or digit, "
            "at most 100 characters (the name of a folder under data/batches/)")


def _export(args: argparse.Namespace) -> int:
    from prefpipe.core import settings
    from prefpipe.exports import argilla, label_studio
    from prefpipe.core.files import write_json

    if (problem := batch_id_error(args.batch)) is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        tables = read_batch_tables(args.batch, EXPORT_TABLES[args.format])
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    default_name = {"trl": args.batch, "label-studio": f"{args.batch}.label-studio.json", "argilla": f"{args.batch}.argilla.json",
                    "pairs": f"{args.batch}.pairs.jsonl"}
    out = Path(args.out) if args.out else settings.exports_dir() / default_name[args.format]
    if args.format == "trl":
        return _export_trl(args.batch, tables, out)
    if args.format == "pairs":
        return _export_pairs(args.batch, tables["response_pairs"], out)
    kw = dict(ai_labels=tables["ai_labels"], human_annotations=tables["human_annotations"], batch_id=args.batch)
    if tables["response_pairs"].empty:
        print(f"batch {args.batch!r} has no response pairs in the warehouse", file=sys.stderr)
        return 2
    if args.format == "label-studio":
        tasks = label_studio.export_tasks(tables["response_pairs"], **kw)
        write_json(tasks, out)
        config = out.with_name(out.stem + ".label_config.xml")
        config.write_text(label_studio.label_config(argilla.dimension_names(tables["human_annotations"])), encoding="utf-8")
        print(f"{len(tasks):,} Label Studio tasks -> {out}\nlabelling interface -> {config}")
    else:
        records = argilla.export_records(tables["response_pairs"], **kw)
        write_json(records, out)
        print(f"{len(records):,} Argilla records -> {out}")
    return 0


def _export_pairs(batch_id: str, pairs, out: Path) -> int:
    """The batch's (undropped) pairs as a pairs file, e.g. to load them into the annotation queue."""
    from prefpipe.core.files import atomic_write

    live = pairs[~pairs["dropped"].fillna(False).astype(bool)]
    if live.empty:
        print(f"batch {batch_id!r} has no response pairs in the warehouse", file=sys.stderr)
        return 2
    rows = live.loc[:, list(PAIR_FIELDS)].to_dict("records")
    atomic_write(out, lambda p: p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"))
    print(f"{len(rows):,} pairs -> {out}")
    return 0


def _export_trl(batch_id: str, tables: dict, out_dir: Path) -> int:
    from prefpipe.reports.dataset_card import dataset_card
    from prefpipe.exports.trl import to_trl, write_trl

    dataset = tables["preference_dataset"]
    if dataset.empty:
        print(f"batch {batch_id!r} has no preference_dataset rows in the warehouse", file=sys.stderr)
        return 2
    trl = to_trl(dataset, ai_labels=tables["ai_labels"], human_annotations=tables["human_annotations"], batch_id=batch_id)
    paths = write_trl(trl, out_dir)
    card = out_dir / "README.md"
    card.write_text(
        dataset_card(trl, files=[p.name for p in paths.values()], agreement_report=tables["agreement_report"],
                     title=f"prefpipe preference dataset: batch {batch_id}"),
        encoding="utf-8",
    )
    print(f"{len(trl):,} preference pairs -> {paths['parquet']}, {paths['jsonl']}\ndataset card -> {card}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from prefpipe.core import settings
    from prefpipe.core.batches import BatchInputError, load_batch_config
    from prefpipe.exports import argilla, label_studio
    from prefpipe.exports.annotation_files import batch_annotations_path, import_file_name, write_annotations_jsonl

    if (problem := batch_id_error(args.batch)) is not None:
        print(f"import failed, nothing written: {problem}", file=sys.stderr)
        return 2
    source = Path(args.file)
    batch_dir = settings.batch_dir(args.batch)
    if not batch_dir.is_dir():
        print(f"{batch_dir}: no such batch folder", file=sys.stderr)
        return 2
    try:
        label_map = load_batch_config(batch_dir).label_map
        if args.format == "label-studio":
            rows = label_studio.import_annotations(label_studio.read_export(source), source=source.name,
                                                   label_map=label_map, guideline_version=args.guideline_version)
        else:
            user_names = json.loads(Path(args.users).read_text(encoding="utf-8")) if args.users else {}
            rows = argilla.import_records(argilla.read_records(source), source=source.name, user_names=user_names,
                                          known_annotators=_known_annotators(args.batch), label_map=label_map,
                                          guideline_version=args.guideline_version)
    except (OSError, ValueError, BatchInputError) as exc:
        print(f"import failed, nothing written: {exc}", file=sys.stderr)
        return 1
    if rows.empty:
        print(f"{source}: no submitted annotation with a preference label; nothing written", file=sys.stderr)
        return 1
    target = batch_annotations_path(args.batch, import_file_name(args.format, source))
    write_annotations_jsonl(rows, target)
    print(f"{len(rows):,} annotations by {rows['annotator_id'].nunique():,} annotator(s) -> {target}\n"
          f"the next run of batch {args.batch!r} imports them (prefpipe run --batch {args.batch})")
    return 0


def _known_annotators(batch_id: str) -> list[str]:
    """Annotator ids the warehouse knows for the batch (to map Argilla user ids back), if any."""
    try:
        return sorted(read_batch_tables(batch_id, ("human_annotations",))["human_annotations"]["annotator_id"].dropna().unique())
    except FileNotFoundError:
        return []


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "export", help="export a batch for trainers (TRL) or annotation tools (Label Studio, Argilla)",
        description="Write a batch's rows from the warehouse for a trainer (trl: the preference dataset), Label Studio or "
                    "Argilla (the pairs with their AI and human labels), or as a pairs file for `prefpipe queue add` and "
                    "`prefpipe judge`. Reads the warehouse in one short read-only connection.")
    ex.add_argument("--batch", required=True, metavar="ID", help="the batch to export (run it first: prefpipe run --batch ID)")
    ex.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                    help="trl: train.parquet, train.jsonl and a dataset card README.md; label-studio: tasks JSON and its "
                         "labelling interface; argilla: records JSON; pairs: a pairs JSONL file")
    ex.add_argument("--out", metavar="PATH",
                    help="trl: the folder to write the three files into; label-studio: the tasks JSON file (the interface "
                         "goes beside it, its .json suffix replaced by .label_config.xml); argilla: the records JSON file; pairs: the JSONL file "
                         "(default: data/exports/ID/ for trl, else data/exports/ID.label-studio.json, ID.argilla.json or "
                         "ID.pairs.jsonl)")
    ex.set_defaults(handler=_export)
    im = sub.add_parser(
        "import", help="import annotations made in Label Studio or Argilla into a batch folder",
        description="Convert annotations made in Label Studio or Argilla into a JSONL file under the batch folder "
                    "(data/batches/ID/annotations/); the next run of the batch imports them with every other check. "
                    "The warehouse is not touched.")
    im.add_argument("--batch", required=True, metavar="ID", help="the batch folder to write the annotations into")
    im.add_argument("--format", required=True, choices=IMPORT_FORMATS, help="the tool that made FILE")
    im.add_argument("--users", metavar="FILE", help="argilla: a JSON file holding an object that maps user ids to annotator names")
    im.add_argument("--guideline-version", metavar="VERSION", help="the guideline version the annotators worked under, when known")
    im.add_argument("file", metavar="FILE", help="Label Studio JSON export, or Argilla records (JSON or JSONL)")
    im.set_defaults(handler=_import)
