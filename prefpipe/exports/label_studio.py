"""Label Studio as a front end: tasks out, annotations back in.

Export writes Label Studio's JSON task format: a list of tasks, each
`{"data": {...}, "annotations": [...], "predictions": [...]}`. `data` holds the pair (prompt,
response_a, response_b, pair_id, batch_id); `predictions` hold the AI judge's verdicts (one per
judge, `model_version` = "<judge>@<judge prompt version>", `score` = confidence) so annotators can
see or hide them; `annotations` hold the human labels already made. `label_config()` is the
labelling interface to paste into the project: one single-choice `Choices` control named
`preference` whose values are the five scale points, and one `Rating` per rubric dimension.

Import reads Label Studio's JSON export (Export -> JSON), the same layout with each annotation's
`result` list, `completed_by`, `lead_time`, `created_at` and `was_cancelled`. Label Studio's export
gives `completed_by` as the user object (`id`, `email`, ...); its raw task format gives a user id.
The annotator id is the user's email when there is one, else "label-studio-user-<id>"; prefpipe's
own export writes the annotator id in `completed_by.email`, so a round trip keeps it.
`lead_time` (seconds the annotator spent, measured by the Label Studio front end) becomes
duration_s. Cancelled (skipped) annotations carry no label and are not imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from prefpipe.core.files import plain_records
from prefpipe.core.ingest import map_label
from prefpipe.core.labels import SCALE
from prefpipe.errors import PrefpipeError
from prefpipe.exports.common import annotations_frame, imported_annotation, judge_agent, kept_pairs

PREFERENCE = "preference"
"""Name of the Choices control that carries the five-point label."""

CHOICE_HINTS: dict[str, str] = {
    "A>>B": "A is much better",
    "A>B": "A is better",
    "A=B": "About the same",
    "B>A": "B is better",
    "B>>A": "B is much better",
}


class LabelStudioFormatError(PrefpipeError, ValueError):
    """A Label Studio file that does not have the expected layout; the message says where."""


def label_config(dimensions: Sequence[str] = (), *, max_rating: int = 5) -> str:
    """The labelling interface (XML) matching the exported tasks."""
    choices = "\n".join(
        f"    <Choice value={quoteattr(label)} hint={quoteattr(CHOICE_HINTS[label])}/>" for label in SCALE
    )
    ratings = "\n".join(
        f"  <Header value={quoteattr(name)}/>\n"
        f"  <Rating name={quoteattr(name)} toName=\"prompt\" maxRating=\"{int(max_rating)}\"/>"
        for name in dimensions
    )
    return (
        "<View>\n"
        '  <Header value="Prompt"/>\n'
        '  <Text name="prompt" value="$prompt"/>\n'
        '  <View style="display: grid; grid-template-columns: 1fr 1fr; column-gap: 1em">\n'
        '    <View><Header value="Response A"/><Text name="response_a" value="$response_a"/></View>\n'
        '    <View><Header value="Response B"/><Text name="response_b" value="$response_b"/></View>\n'
        "  </View>\n"
        '  <Header value="Which response is better?"/>\n'
        f'  <Choices name="{PREFERENCE}" toName="prompt" choice="single" required="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        + (ratings + "\n" if ratings else "")
        + "</View>\n"
    )


def _choice_result(label: str, result_id: str) -> dict[str, Any]:
    return {
        "id": result_id,
        "from_name": PREFERENCE,
        "to_name": "prompt",
        "type": "choices",
        "value": {"choices": [label]},
    }


def _rating_results(dimensions_json: str | None, result_id: str) -> list[dict[str, Any]]:
    dims = json.loads(dimensions_json) if dimensions_json else {}
    return [
        {"id": f"{result_id}-{name}", "from_name": name, "to_name": "prompt", "type": "rating", "value": {"rating": score}}
        for name, score in sorted(dims.items())
    ]


def export_tasks(
    response_pairs: pd.DataFrame,
    *,
    ai_labels: pd.DataFrame | None = None,
    human_annotations: pd.DataFrame | None = None,
    batch_id: str | None = None,
) -> list[dict[str, Any]]:
    """Label Studio tasks, one per pair not dropped, with predictions and annotations attached."""
    pairs = kept_pairs(response_pairs)
    predictions: dict[str, list] = {}
    if ai_labels is not None and not ai_labels.empty:
        usable = ai_labels[ai_labels["label"].notna()]
        for n, row in enumerate(plain_records(usable)):
            version = row.get("judge_prompt_version")
            predictions.setdefault(row["pair_id"], []).append(
                {
                    "model_version": judge_agent(row["judge"], version),
                    "score": row.get("confidence"),
                    "result": [_choice_result(row["label"], f"p{n}")],
                }
            )
    annotations: dict[str, list] = {}
    if human_annotations is not None and not human_annotations.empty:
        user_ids = {a: i for i, a in enumerate(sorted(human_annotations["annotator_id"].dropna().unique()), start=1)}
        for n, row in enumerate(plain_records(human_annotations)):
            cancelled = row["label"] is None
            result_id = f"a{n}"
            result = [] if cancelled else [_choice_result(row["label"], result_id)]
            result += _rating_results(row.get("dimensions"), result_id)
            annotations.setdefault(row["pair_id"], []).append(
                {
                    "result": result,
                    "completed_by": {
                        "id": user_ids[row["annotator_id"]],
                        "email": row["annotator_id"],
                        "first_name": "",
                        "last_name": "",
                    },
                    "was_cancelled": cancelled,
                    "ground_truth": False,
                    "created_at": row.get("created_at"),
                    "lead_time": row.get("duration_s"),
                }
            )
    tasks = []
    for row in plain_records(pairs[["pair_id", "prompt", "response_a", "response_b"]]):
        data = {**row, "batch_id": batch_id} if batch_id is not None else dict(row)
        tasks.append(
            {
                "data": data,
                "annotations": annotations.get(row["pair_id"], []),
                "predictions": predictions.get(row["pair_id"], []),
            }
        )
    return tasks


def read_export(path: Path) -> list[dict[str, Any]]:
    """Tasks from a Label Studio JSON export file (a list of tasks, or one task)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LabelStudioFormatError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise LabelStudioFormatError(f"{path}: expected a JSON list of tasks, got {type(content).__name__}")
    return content


def _annotator_id(completed_by: Any, where: str) -> str:
    if isinstance(completed_by, Mapping):
        if completed_by.get("email"):
            return str(completed_by["email"])
        if completed_by.get("id") is not None:
            return f"label-studio-user-{completed_by['id']}"
    elif isinstance(completed_by, (int, str)) and not isinstance(completed_by, bool) and str(completed_by).strip():
        return f"label-studio-user-{completed_by}"
    raise LabelStudioFormatError(f"{where}: 'completed_by' names no user ({completed_by!r})")


def _label_from(result: Iterable[Mapping[str, Any]], label_map: Mapping[str, str], where: str) -> str | None:
    for item in result:
        if item.get("from_name") == PREFERENCE and item.get("type") == "choices":
            choices = (item.get("value") or {}).get("choices") or []
            if len(choices) != 1:
                raise LabelStudioFormatError(f"{where}: '{PREFERENCE}' needs exactly one choice, got {choices!r}")
            label = map_label(choices[0], label_map)
            if label is None:
                raise LabelStudioFormatError(
                    f"{where}: choice {str(choices[0])!r} is neither on the scale ({', '.join(SCALE)}) nor in the label map"
                )
            return label
    return None


def import_annotations(
    tasks: list[dict[str, Any]],
    *,
    source: str,
    label_map: Mapping[str, str] | None = None,
    guideline_version: str | None = None,
) -> pd.DataFrame:
    """human_annotations rows (schemas.HUMAN_ANNOTATIONS) from exported Label Studio tasks.

    `source` names the file ("import:<file name>" is stored). Cancelled annotations and
    annotations without a `preference` choice are skipped (they hold no label); gold and
    flag columns are left unknown for the pipeline to fill; `guideline_version` is the version
    the annotators worked under when the caller knows it.
    """
    label_map = dict(label_map or {})
    rows: list[dict[str, Any]] = []
    for t, task in enumerate(tasks):
        where_task = f"{source}: task {t}"
        if not isinstance(task, Mapping):
            raise LabelStudioFormatError(f"{where_task}: expected an object, got {type(task).__name__}")
        pair_id = (task.get("data") or {}).get("pair_id")
        if not pair_id:
            raise LabelStudioFormatError(f"{where_task}: data.pair_id is missing (tasks must come from prefpipe's export)")
        for a, ann in enumerate(task.get("annotations") or []):
            where = f"{where_task} (pair {pair_id}), annotation {a}"
            if ann.get("was_cancelled"):
                continue
            result = ann.get("result") or []
            label = _label_from(result, label_map, where)
            if label is None:
                continue
            dims = {
                item["from_name"]: (item.get("value") or {}).get("rating")
                for item in result
                if item.get("type") == "rating" and (item.get("value") or {}).get("rating") is not None
            }
            lead_time = ann.get("lead_time")
            rows.append(
                imported_annotation(
                    pair_id, _annotator_id(ann.get("completed_by"), where), label, source=source, dimensions=dims,
                    duration_s=float(lead_time) if isinstance(lead_time, (int, float)) else np.nan,
                    created_at=ann.get("created_at"), guideline_version=guideline_version,
                )
            )
    return annotations_frame(rows, name=f"label studio import {source}")
