"""Final labels: one per pair, from whoever decides it. An expert's answer is final; else the
people's aggregate; else the AI label where routing let it stand. Nothing is invented."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.core import labels as lab
from prefpipe.core import schemas
from prefpipe.core.routing import unique_pairs

def _joined_versions(df: pd.DataFrame) -> pd.Series:
    """pair_id -> the distinct guideline versions of its rows, sorted and "+"-joined."""
    if "guideline_version" not in df.columns or df.empty:
        return pd.Series(dtype="object")
    v = df[["pair_id", "guideline_version"]].dropna().drop_duplicates()
    several = v["pair_id"].duplicated(keep=False).to_numpy()  # most pairs were labelled under one version: no join to make
    one = v[~several].set_index("pair_id")["guideline_version"].astype(str)
    joined = v[several].groupby("pair_id")["guideline_version"].agg(lambda s: "+".join(sorted(set(map(str, s)))))
    return pd.concat([one, joined.astype(str)]) if len(joined) else one


def combine_final_labels(
    routing: pd.DataFrame,
    ai_labels: pd.DataFrame | None,
    human_final: pd.DataFrame,
    expert_annotations: pd.DataFrame,
    *,
    human_annotations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """FINAL_LABELS rows: an expert's answer is final; else the people's aggregate where people
    labelled; else the AI label where it stands (accepted, a spot check not yet labelled, or over
    budget). A pair with none of these gets no row: nothing is invented.

    human_final: one row per pair (pair_id, label, confidence, n_labels, method) from the quality
    library's aggregators. expert_annotations: HUMAN_ANNOTATIONS rows (role "expert" kept; with
    several, the latest created_at wins and confidence is the share of experts who agree).
    ai_labels: AI_LABELS rows; when None the AI label and confidence recorded in routing are used.
    guideline_version: the version(s) the deciding labels were made under, "+"-joined: the
    experts' for expert rows; human_final's own column if it has one, else the annotators' labels
    in `human_annotations` for human rows; ai_labels' for AI rows. Null when not known.
    """
    schemas.require_columns(routing, ("pair_id", "route", "ai_label", "ai_confidence"), "routing")
    schemas.require_columns(human_final, ("pair_id", "label", "confidence", "n_labels", "method"), "human_final")
    schemas.require_columns(expert_annotations, ("pair_id", "label"), "expert_annotations")
    routing = routing.assign(pair_id=routing["pair_id"].astype(str))
    unique_pairs(routing, "routing")
    batch = routing["pair_id"].to_numpy()

    ex = expert_annotations[expert_annotations["label"].notna()]
    if "role" in ex.columns:
        ex = ex[ex["role"] == "expert"]
    ex = ex.assign(pair_id=ex["pair_id"].astype(str))
    ex = ex[ex["pair_id"].isin(batch)]
    lab.to_codes(ex["label"], field="expert_annotations.label")
    if "created_at" in ex.columns:
        ex = ex.sort_values("created_at", kind="stable")
    latest = ex.groupby("pair_id", sort=False).tail(1).set_index("pair_id")["label"]
    agree = ex["label"].to_numpy() == ex["pair_id"].map(latest).to_numpy()
    expert = pd.DataFrame({"pair_id": ex["pair_id"].to_numpy(), "agree": agree}).groupby("pair_id").agg(
        confidence=("agree", "mean"), n_labels=("agree", "size")
    )
    expert = expert.assign(
        label=latest.reindex(expert.index), method="expert", source="expert",
        guideline_version=_joined_versions(ex).reindex(expert.index),
    ).reset_index()

    hf = human_final[human_final["label"].notna()].assign(pair_id=lambda d: d["pair_id"].astype(str))
    hf = hf[hf["pair_id"].isin(batch) & ~hf["pair_id"].isin(expert["pair_id"].to_numpy())]
    unique_pairs(hf, "human_final")
    lab.to_codes(hf["label"], field="human_final.label")
    human = hf[["pair_id", "label", "confidence", "n_labels", "method"]].assign(source="human")
    if "guideline_version" in hf.columns:
        human["guideline_version"] = hf["guideline_version"].to_numpy()
    elif human_annotations is not None:
        schemas.require_columns(human_annotations, ("pair_id", "label"), "human_annotations")
        people = human_annotations[human_annotations["label"].notna()]
        if "role" in people.columns:
            people = people[people["role"] != "expert"]
        people = people.assign(pair_id=people["pair_id"].astype(str))
        human["guideline_version"] = human["pair_id"].map(_joined_versions(people)).to_numpy()
    else:
        human["guideline_version"] = None

    if ai_labels is not None:
        schemas.require_columns(ai_labels, ("pair_id", "label", "confidence"), "ai_labels")
        ai_src = ai_labels.assign(pair_id=ai_labels["pair_id"].astype(str)).set_index("pair_id")
        ai_label = routing["pair_id"].map(ai_src["label"])
        ai_conf = routing["pair_id"].map(ai_src["confidence"])
        ai_version = (
            routing["pair_id"].map(ai_src["guideline_version"]) if "guideline_version" in ai_src.columns
            else pd.Series(None, index=routing.index, dtype="object")
        )
    else:
        ai_label, ai_conf = routing["ai_label"], routing["ai_confidence"]
        ai_version = pd.Series(None, index=routing.index, dtype="object")
    stands = routing["route"].isin(["accepted", "spot_check", "over_budget"]) & ai_label.notna()
    taken = np.concatenate([expert["pair_id"].to_numpy(dtype=object), human["pair_id"].to_numpy(dtype=object)])
    stands &= ~routing["pair_id"].isin(taken)
    ai = pd.DataFrame(
        {
            "pair_id": routing.loc[stands, "pair_id"],
            "label": ai_label[stands],
            "confidence": ai_conf[stands].astype("float64"),
            "n_labels": 1,
            "method": "ai",
            "source": "ai",
            "guideline_version": ai_version[stands],
        }
    )
    # typed before the concat: all-missing object columns make pandas inspect every value
    parts = [part.astype({"guideline_version": "string", "label": "string", "pair_id": "string"}) for part in (expert, human, ai)]
    out = pd.concat(parts, ignore_index=True)
    out = out.assign(_o=pd.Index(routing["pair_id"]).get_indexer(out["pair_id"])).sort_values("_o", kind="stable")
    return schemas.conform(out, schemas.FINAL_LABELS, name="final_labels")
