"""Where a batch's human labels come from: the batch folder's imported files and prefpipe's
annotation app. routing, human_queue and human_annotations all read them through here."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.ingest import annotation_files, import_human_annotations
from prefpipe.defs.resources import AnnotationStoreResource, BatchFolders


def imported_annotations(batch_id: str, known_pairs: Collection[str] | pd.Series, folders: BatchFolders) -> pd.DataFrame:
    """Human labels made elsewhere, from the batch folder."""
    return import_human_annotations(annotation_files(folders.folder(batch_id)), folders.config(batch_id), known_pairs=known_pairs)


def app_annotations(batch_id: str, store: AnnotationStoreResource) -> pd.DataFrame:
    """Labels made in prefpipe's annotation app, read from its store in one short transaction."""
    if not store.exists():
        return schemas.empty(schemas.HUMAN_ANNOTATIONS)
    with store.open() as opened:
        return opened.annotations(batch_id)


def all_annotations(batch_id: str, known_pairs: Collection[str] | pd.Series, folders: BatchFolders, store: AnnotationStoreResource) -> pd.DataFrame:
    frames = [f for f in (imported_annotations(batch_id, known_pairs, folders), app_annotations(batch_id, store)) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else schemas.empty(schemas.HUMAN_ANNOTATIONS)
