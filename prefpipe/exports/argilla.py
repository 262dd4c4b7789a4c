"""Argilla (2.x) as a front end: records out, responses back in.

Records are written the way Argilla 2.x writes them itself (`Dataset.records.to_json`, i.e.
`Record.to_dict()`), so `rg.Record.from_dict` reads them and `dataset.records.log` uploads them:

    {"id": <pair_id>, "fields": {"prompt", "response_a", "response_b"},
     "metadata": {"pair_id", "batch_id"},
     "suggestions": {"preference": {"value": "A>B", "score": 0.9, "agent": "<judge>@<prompt version>"}},
     "responses": {"preference": [{"value": "A>B", "user_id": "<uuid>"}],
                   "<dimension>": [{"value": 4, "user_id": "<uuid>"}]},
     "vectors": {}, "status": "completed" | "pending", "_server_id": null}

The dataset they fit has three TextFields (prompt, response_a, response_b), a LabelQuestion
`preference` whose labels are the five scale points, and a RatingQuestion (values 1..5) per rubric
dimension:

    rg.Settings(fields=[rg.TextField("prompt"), rg.TextField("response_a"), rg.TextField("response_b")],
                questions=[rg.LabelQuestion("preference", labels=list(SCALE)),
                           *[rg.RatingQuestion(d, values=[1, 2, 3, 4, 5]) for d in dimensions]],
                allow_extra_metadata=True)

Argilla allows one suggestion per question, so a pair judged by several judges suggests the most
confident verdict. Argilla identifies annotators by user UUID: prefpipe's export writes
uuid5(ANNOTATOR_NAMESPACE, annotator_id), and import maps a user id back through `user_names`
(user id -> name, e.g. from `client.users`) or, failing that, through the `known_annotators` whose
uuid5 it is; an id it cannot resolve is kept as "argilla-user-<uuid>". A response carries a value
and a user only (no time on task, no timestamp), so those come back unknown. Skipped annotations
are not exported (Argilla requires a value).

Import also reads the flattened layout (`to_list(flatten=True)`, the Hugging Face export):
`preference.responses`, `preference.responses.users`, `preference.responses.status`, where only
submitted responses are taken, and a RankingQuestion answer (a list of the two field names, best
first, or the server's `[{"value", "rank"}]`) maps to A>B, B>A or, for equal ranks, A=B.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prefpipe.core.files import plain_records
from prefpipe.core.ingest import map_label
from prefpipe.core.labels import SCALE
from prefpipe.errors import PrefpipeError
from prefpipe.exports.common import annotations_frame, imported_annotation, judge_agent, kept_pairs

PREFERENCE = "preference"
ANNOTATOR_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "annotators.prefpipe.invalid")
"""Namespace of the uuid5 user ids prefpipe gives annotators in Argilla records."""
RESPONSE_FIELDS = ("response_a", "response_b")


class ArgillaFormatError(PrefpipeError, ValueError):
    """An Argilla records file that does not have the expected layout; the message says where."""


def user_id_for(annotator_id: str) -> str:
    return str(uuid.uuid5(ANNOTATOR_NAMESPACE, str(annotator_id)))


def export_records(
    response_pairs: pd.DataFrame,
    *,
    ai_labels: pd.DataFrame | None = None,
    human_annotations: pd.DataFrame | None = None,
    batch_id: str | None = None,
) -> list[dict[str, Any]]:
    """Argilla 2.x record dicts (Record.to_dict layout), one per pair not dropped."""
    pairs = kept_pairs(response_pairs)
    suggestions: dict[str, dict] = {}
    if ai_labels is not None and not ai_labels.empty:
        usable = ai_labels[ai_labels["label"].notna()].sort_values(["pair_id", "confidence", "judge"], ascending=[True, False, True])
        for row in plain_records(usable.drop_duplicates("pair_id")):
            version = row.get("judge_prompt_version")
            suggestions[row["pair_id"]] = {
                PREFERENCE: {
                    "value": row["label"],
                    "score": row.get("confidence"),
                    "agent": judge_agent(row["judge"], version),
                }
            }
    responses: dict[str, dict[str, list]] = {}
    if human_annotations is not None and not human_annotations.empty:
        for row in plain_records(human_annotations[human_annotations["label"].notna()]):
            user = user_id_for(row["annotator_id"])
            per_question = responses.setdefault(row["pair_id"], {})
            per_question.setdefault(PREFERENCE, []).append({"value": row["label"], "user_id": user})
            dims = json.loads(row["dimensions"]) if row.get("dimensions") else {}
            for name, score in sorted(dims.items()):
                per_question.setdefault(name, []).append({"value": score, "user_id": user})
    records = []
    for row in plain_records(pairs[["pair_id", "prompt", "response_a", "response_b"]]):
        pair_id = row["pair_id"]
        metadata = {"pair_id": pair_id, **({"batch_id": batch_id} if batch_id is not None else {})}
        record_responses = responses.get(pair_id, {})
        records.append(
            {
                "id": pair_id,
                "fields": {"prompt": row["prompt"], "response_a": row["response_a"], "response_b": row["response_b"]},
                "metadata": metadata,
                "suggestions": suggestions.get(pair_id, {}),
                "responses": record_responses,
                "vectors": {},
                "status": "completed" if record_responses else "pending",
                "_server_id": None,
            }
        )
    return records


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records from a JSON list (to_json) or JSON Lines file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        content = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                content.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ArgillaFormatError(f"{path}: line {n}: not valid JSON ({exc.msg})") from exc
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise ArgillaFormatError(f"{path}: expected a JSON list of records, got {type(content).__name__}")
    return content


def _ranking_label(value: Any, where: str) -> str:
    """A two-item ranking answer -> A>B / B>A / A=B."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        ranks = {str(v.get("value")): v.get("rank") for v in value}
        if set(ranks) == set(RESPONSE_FIELDS) and None not in ranks.values():
            a, b = ranks["response_a"], ranks["response_b"]
            return "A=B" if a == b else ("A>B" if a < b else "B>A")
    elif isinstance(value, list) and sorted(map(str, value)) == sorted(RESPONSE_FIELDS):
        return "A>B" if str(value[0]) == "response_a" else "B>A"
    raise ArgillaFormatError(f"{where}: ranking answer {value!r} does not rank response_a and response_b")


def _to_label(value: Any, label_map: Mapping[str, str], where: str) -> str:
    if isinstance(value, list):
        return _ranking_label(value, where)
    label = map_label(value, label_map)
    if label is None:
        raise ArgillaFormatError(f"{where}: answer {str(value)!r} is neither on the scale ({', '.join(SCALE)}) nor in the label map")
    return label


def _responses_of(record: Mapping[str, Any], where: str) -> dict[str, list[dict[str, Any]]]:
    """question -> [{"value", "user_id", "status"?}], from the nested or the flattened layout."""
    nested = record.get("responses")
    if isinstance(nested, Mapping):
        return {str(q): list(answers or []) for q, answers in nested.items()}
    out: dict[str, list[dict[str, Any]]] = {}
    for key, values in record.items():
        if not key.endswith(".responses") or values is None:
            continue
        question = key[: -len(".responses")]
        users = record.get(f"{key}.users") or []
        statuses = record.get(f"{key}.status") or [None] * len(values)
        if len(users) != len(values) or len(statuses) != len(values):
            raise ArgillaFormatError(f"{where}: {key} has {len(values)} values but {len(users)} users / {len(statuses)} statuses")
        out[question] = [{"value": v, "user_id": u, "status": s} for v, u, s in zip(values, users, statuses)]
    return out


def import_records(
    records: Iterable[Mapping[str, Any]],
    *,
    source: str,
    user_names: Mapping[str, str] | None = None,
    known_annotators: Iterable[str] = (),
    label_map: Mapping[str, str] | None = None,
    guideline_version: str | None = None,
) -> pd.DataFrame:
    """human_annotations rows (schemas.HUMAN_ANNOTATIONS) from Argilla records.

    Only submitted answers count: in the flattened layout a response whose status is draft or
    discarded is skipped; the nested layout (to_json) has no status and every response counts.
    """
    names = {str(k): str(v) for k, v in (user_names or {}).items()}
    for annotator in known_annotators:
        names.setdefault(user_id_for(annotator), str(annotator))
    label_map = dict(label_map or {})
    rows: list[dict[str, Any]] = []
    for r, record in enumerate(records):
        where_record = f"{source}: record {r}"
        if not isinstance(record, Mapping):
            raise ArgillaFormatError(f"{where_record}: expected an object, got {type(record).__name__}")
        metadata = record.get("metadata") if isinstance(record.get("metadata"), Mapping) else {}
        pair_id = metadata.get("pair_id") or record.get("pair_id") or record.get("id")
        if not pair_id:
            raise ArgillaFormatError(f"{where_record}: neither metadata.pair_id nor id names the pair")
        where = f"{where_record} (pair {pair_id})"
        by_question = _responses_of(record, where)
        per_user: dict[str, dict[str, Any]] = {}
        for question, answers in by_question.items():
            for answer in answers:
                if answer.get("status") not in (None, "submitted"):
                    continue
                user = answer.get("user_id")
                if user is None:
                    raise ArgillaFormatError(f"{where}: a '{question}' response has no user_id")
                per_user.setdefault(str(user), {})[question] = answer.get("value")
        for user, answers in per_user.items():
            if answers.get(PREFERENCE) is None:
                continue
            label = _to_label(answers.pop(PREFERENCE), label_map, f"{where}, user {user}")
            dims = {q: v for q, v in answers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            rows.append(
                imported_annotation(pair_id, names.get(user, f"argilla-user-{user}"), label, source=source,
                                    dimensions=dims, guideline_version=guideline_version)
            )
    return annotations_frame(rows, name=f"argilla import {source}")


def dimension_names(human_annotations: pd.DataFrame) -> Sequence[str]:
    """Rubric dimensions that appear in the annotations' JSON, sorted."""
    names: set[str] = set()
    for text in human_annotations.get("dimensions", pd.Series(dtype="object")).dropna():
        names.update(json.loads(text))
    return sorted(names)
