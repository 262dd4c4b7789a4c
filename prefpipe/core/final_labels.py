"""Final labels: one per pair, from whoever decides it. An expert's answer is final; else the
people's aggregate; else the AI label where routing let it stand. Nothing is invented.

Every frame's pair ids are hashed once, together, into positions in routing
(prefpipe.core.pair_codes): at a million pairs a pandas isin, map or Index per frame re-hashed the
same strings five times over."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import labels as lab
from prefpipe.core import pair_codes, schemas
from prefpipe.core.routing import unique_pairs

STANDING_ROUTES = ("accepted", "spot_check", "over_budget")
"""Routes whose AI label stands when nobody else decided the pair."""


def _versions_at(at: np.ndarray, versions: pd.Series, n: int) -> pa.Array:
    """Per routing row (n of them): the distinct guideline versions of the rows standing at
    positions `at` (-1: not in routing), sorted and "+"-joined; null where none says. Versions are
    encoded in Arrow, and only the pairs with several are joined in Python (almost none)."""
    text = pair_codes.text_array(versions)
    ok = (at >= 0) & pc.is_valid(text).to_numpy(zero_copy_only=False)
    encoded = pc.dictionary_encode(text.filter(pa.array(ok)))
    found = encoded.dictionary.to_pylist()
    names = sorted(found)
    width = max(len(names), 1)
    rank = np.array([names.index(v) for v in found] or [0], dtype=np.int64)  # a version's place in sorted order
    version = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    rows = at[ok]
    if len(names) > 1:
        rows, version = np.divmod(np.unique(rows * width + version), width)  # (row, version) once each, by row then version
    out = np.full(n, -1, dtype=np.int64)
    many = np.bincount(rows, minlength=n) > 1 if len(names) > 1 else np.zeros(n, dtype=bool)
    single = ~many[rows]
    out[rows[single]] = version[single]
    if many.any():
        several = pd.Series(version[~single]).groupby(rows[~single]).agg(lambda v: "+".join(names[i] for i in v))
        out[several.index.to_numpy()] = len(names) + np.arange(len(several))
        names += several.tolist()
    return pa.array(names, pa.large_string()).take(pa.array(out, mask=out < 0))


def _experts(ex: pd.DataFrame, at: np.ndarray, n: int) -> pd.DataFrame:
    """One row per pair the experts answered: the latest answer (by created_at), confidence the
    share of the pair's experts who agree with it, and their guideline versions."""
    if "created_at" in ex.columns:
        order = ex["created_at"].reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
        ex, at = ex.iloc[order], at[order]
    codes = pair_codes.label_codes(pair_codes.text_array(ex["label"]))
    pairs, last_reversed = np.unique(at[::-1], return_index=True)  # the last answer of each pair
    latest = np.full(n, -1, dtype=np.int64)
    latest[pairs] = codes[len(codes) - 1 - last_reversed]
    agree = codes == latest[at]
    n_labels = np.bincount(at, minlength=n)[pairs]
    versions = _versions_at(at, ex["guideline_version"], n).take(pa.array(pairs)) if "guideline_version" in ex.columns else None
    return _part(pairs, pa.array(lab.SCALE, pa.large_string()).take(pa.array(latest[pairs])),
                 np.bincount(at, weights=agree, minlength=n)[pairs] / n_labels, n_labels, "expert", "expert", versions)


def _part(at: np.ndarray, label: pa.Array, confidence, n_labels, method: str | pa.Array, source: str,
          versions: pa.Array | None) -> pd.DataFrame:
    """One source's final labels, text in Arrow, `_at` their rows in routing."""
    def text(value: str | pa.Array | None) -> pd.Series:
        if value is None:
            value = pa.nulls(len(at), pa.large_string())
        return pair_codes.text_series(pair_codes.constant(value, len(at)) if isinstance(value, str) else value)

    return pd.DataFrame({"_at": at, "label": text(label), "confidence": confidence, "n_labels": n_labels,
                         "method": text(method), "source": text(source), "guideline_version": text(versions)})


def _standing_ai(routing: pd.DataFrame, ai_labels: pd.DataFrame | None, ai_at: np.ndarray | None, decided: np.ndarray) -> pd.DataFrame:
    """The AI labels that stand on the routing rows nobody else decided: ai_labels' (rows at
    routing positions `ai_at`) when given, else routing's own copy (which carries no version)."""
    n = len(routing)
    if ai_labels is not None:
        if not pair_codes.all_distinct(ai_at[ai_at >= 0]):
            unique_pairs(ai_labels, "ai_labels")
        row = np.full(n, -1, dtype=np.int64)
        row[ai_at[ai_at >= 0]] = np.flatnonzero(ai_at >= 0)
        rows = pa.array(row, mask=row < 0)
        label = pair_codes.text_array(ai_labels["label"]).take(rows)
        conf = pd.to_numeric(ai_labels["confidence"]).to_numpy(dtype="float64", na_value=np.nan)
        confidence = conf[np.maximum(row, 0)] if len(conf) else np.full(n, np.nan)
        versions = (pair_codes.text_array(ai_labels["guideline_version"]).take(rows) if "guideline_version" in ai_labels.columns
                    else pa.nulls(n, pa.large_string()))
    else:
        label = pair_codes.text_array(routing["ai_label"])
        confidence = pd.to_numeric(routing["ai_confidence"]).to_numpy(dtype="float64", na_value=np.nan)
        versions = pa.nulls(n, pa.large_string())
    route = pair_codes.text_array(routing["route"])
    stands = pc.fill_null(pc.is_in(route, value_set=pa.array(STANDING_ROUTES, pa.large_string())), False).to_numpy(zero_copy_only=False)
    stands &= pc.is_valid(label).to_numpy(zero_copy_only=False) & ~decided
    at = np.flatnonzero(stands)
    taken = pa.array(at)
    return _part(at, label.take(taken), confidence[at], np.ones(len(at), dtype=np.int64), "ai", "ai", versions.take(taken))


def wanted_labels(routing: pd.DataFrame) -> np.ndarray:
    """Per routing row, the people's labels its pair needs before their aggregate is final:
    routing's labels_wanted (0 where it records none: people's labels on a pair nobody asked them
    about decide it as they come); an expert-routed pair waits for its expert, whatever people gave.
    A routing frame without the column (older tables) asks for one label, as before it existed."""
    n = len(routing)
    if "labels_wanted" in routing.columns:
        wanted = routing["labels_wanted"].astype("Int64").fillna(0).to_numpy(dtype="int64")
    else:
        wanted = np.ones(n, dtype="int64")
    expert = pc.fill_null(pc.equal(pair_codes.text_array(routing["route"]), "expert"), False).to_numpy(zero_copy_only=False)
    return np.where(expert, np.iinfo(np.int64).max, wanted)


def combine_final_labels(
    routing: pd.DataFrame,
    ai_labels: pd.DataFrame | None,
    human_final: pd.DataFrame,
    expert_annotations: pd.DataFrame,
    *,
    human_annotations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """FINAL_LABELS rows: an expert's answer is final; else the people's aggregate once the pair
    has the labels routing wants of them (`labels_wanted`; see wanted_labels); else the AI label
    where it stands (accepted, a spot check not complete yet, or over budget). A pair with none of
    these gets no row, and is waiting (prefpipe.core.batch_status counts them): nothing is invented, and a pair one person of
    the three asked has labelled is not final.

    human_final: one row per pair (pair_id, label, confidence, n_labels, method) from the quality
    library's aggregators. expert_annotations: HUMAN_ANNOTATIONS rows (role "expert" kept; with
    several, the latest created_at wins and confidence is the share of experts who agree).
    ai_labels: AI_LABELS rows; when None the AI label and confidence recorded in routing are used.
    guideline_version: the version(s) the deciding labels were made under, "+"-joined: the
    experts' for expert rows; human_final's own column if it has one, else the annotators' labels
    in `human_annotations` for human rows; ai_labels' for AI rows. Null when not known.
    Rows come in routing's order.
    """
    schemas.require_columns(routing, ("pair_id", "route", "ai_label", "ai_confidence"), "routing")
    schemas.require_columns(human_final, ("pair_id", "label", "confidence", "n_labels", "method"), "human_final")
    schemas.require_columns(expert_annotations, ("pair_id", "label"), "expert_annotations")
    batch = pair_codes.id_array(routing["pair_id"])
    n = len(batch)

    ex = expert_annotations[expert_annotations["label"].notna().to_numpy(dtype=bool)]
    if "role" in ex.columns:
        ex = ex[(ex["role"] == "expert").to_numpy(dtype=bool, na_value=False)]
    hf = human_final[human_final["label"].notna().to_numpy(dtype=bool)]
    people = None
    if "guideline_version" not in hf.columns and human_annotations is not None:
        schemas.require_columns(human_annotations, ("pair_id", "label"), "human_annotations")
        people = human_annotations[human_annotations["label"].notna().to_numpy(dtype=bool)]
        if "role" in people.columns:
            people = people[(people["role"] != "expert").to_numpy(dtype=bool, na_value=False)]
    if ai_labels is not None:
        schemas.require_columns(ai_labels, ("pair_id", "label", "confidence"), "ai_labels")
    frames = {"ex": ex, "hf": hf, "people": people, "ai": ai_labels}
    frames = {name: frame for name, frame in frames.items() if frame is not None}
    codes = pair_codes.encode(batch, *(pair_codes.id_array(frame["pair_id"]) for frame in frames.values()))
    if not pair_codes.unique_prefix(codes[0]):
        unique_pairs(routing, "routing")
    at = {name: np.where(c < n, c, -1) for name, c in zip(frames, codes[1:], strict=True)}  # routing's codes are its row numbers

    ex_at = at["ex"]
    ex = ex[ex_at >= 0]
    ex_at = ex_at[ex_at >= 0]
    pair_codes.check_labels(ex["label"], field="expert_annotations.label")
    expert = _experts(ex, ex_at, n)
    decided = np.zeros(n, dtype=bool)
    decided[expert["_at"].to_numpy()] = True

    hf_at = at["hf"]
    wanted = wanted_labels(routing)
    mine = (hf_at >= 0) & ~decided[np.maximum(hf_at, 0)]
    hf, hf_at = hf[mine], hf_at[mine]
    complete = hf["n_labels"].astype("Int64").fillna(0).to_numpy(dtype="int64") >= wanted[hf_at]
    hf, hf_at = hf[complete], hf_at[complete]
    if not pair_codes.all_distinct(hf_at):
        unique_pairs(hf, "human_final")
    pair_codes.check_labels(hf["label"], field="human_final.label")
    human_version = None
    if "guideline_version" in hf.columns:
        human_version = pair_codes.text_array(hf["guideline_version"])
    elif people is not None and "guideline_version" in people.columns:
        human_version = _versions_at(at["people"], people["guideline_version"], n).take(pa.array(hf_at))
    human = _part(hf_at, pair_codes.text_array(hf["label"]), hf["confidence"].astype("float64").to_numpy(),
                  hf["n_labels"].astype("Int64").array, pair_codes.text_array(hf["method"]), "human", human_version)
    decided[hf_at] = True

    ai = _standing_ai(routing, ai_labels, at.get("ai"), decided)
    out = pd.concat([expert, human, ai], ignore_index=True)
    out = out.iloc[np.argsort(out["_at"].to_numpy(), kind="stable")]
    return schemas.conform(out.assign(pair_id=pair_codes.text_series(batch.take(pa.array(out["_at"].to_numpy())), out.index)),
                           schemas.FINAL_LABELS, name="final_labels")
