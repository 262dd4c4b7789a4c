"""prefpipe's quality core: agreement, label aggregation and annotator reliability as plain,
vectorized functions over long-format annotations (one row per label). Dagster assets call these;
nothing here knows about Dagster.

Every function takes a DataFrame plus the names of its item, annotator and label columns (defaults
pair_id, annotator_id, label), or an `Annotations` encoded once with `Annotations.from_frame` and
reused across calls. See prefpipe/quality/_frames.py for category order and missing labels.
"""

from prefpipe.quality._frames import Annotations, as_annotations, infer_categories
from prefpipe.quality.agreement import pairwise_agreement, pairwise_agreement_estimate
from prefpipe.quality.aggregation import label_counts, majority_vote, weighted_vote
from prefpipe.quality.bootstrap import Estimate
from prefpipe.quality.dawid_skene import DawidSkeneFit, dawid_skene, fit_dawid_skene
from prefpipe.quality.final_labels import final_labels
from prefpipe.quality.errors import (
    AgreementUndefinedError,
    DuplicateLabelError,
    EmptyAnnotationsError,
    QualityInputError,
    UnknownLabelError,
)
from prefpipe.quality.interpretation import band, interpret
from prefpipe.quality.kappa import cohens_kappa, cohens_kappa_table, fleiss_kappa, fleiss_kappa_estimate
from prefpipe.quality.krippendorff import krippendorff_alpha, krippendorff_alpha_estimate
from prefpipe.quality.reliability import annotator_reliability, filter_annotations, gold_labels
from prefpipe.quality.report import agreement_report

__all__ = [
    "agreement_report",
    "annotator_reliability",
    "filter_annotations",
    "AgreementUndefinedError",
    "Annotations",
    "DawidSkeneFit",
    "DuplicateLabelError",
    "EmptyAnnotationsError",
    "Estimate",
    "QualityInputError",
    "UnknownLabelError",
    "as_annotations",
    "band",
    "cohens_kappa",
    "cohens_kappa_table",
    "dawid_skene",
    "final_labels",
    "fit_dawid_skene",
    "fleiss_kappa",
    "fleiss_kappa_estimate",
    "gold_labels",
    "infer_categories",
    "interpret",
    "krippendorff_alpha",
    "krippendorff_alpha_estimate",
    "label_counts",
    "majority_vote",
    "pairwise_agreement",
    "pairwise_agreement_estimate",
    "weighted_vote",
]
