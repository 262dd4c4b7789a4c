"""The errors the quality core raises, so callers can tell bad input from an undefined statistic.

All are ValueError subclasses: a caller that only wants "this input is wrong" can catch ValueError;
the asset layer catches AgreementUndefinedError to report a metric as undefined instead of failing.
"""

from __future__ import annotations

from prefpipe.errors import PrefpipeError


class QualityInputError(PrefpipeError, ValueError):
    """Annotations that cannot be used as given (the message names the column and the value)."""


class EmptyAnnotationsError(QualityInputError):
    """No rows, or no row with a present label."""


class UnknownLabelError(QualityInputError):
    """A label outside the categories the caller declared (or outside the scale)."""


class DuplicateLabelError(QualityInputError):
    """One annotator labelled the same item more than once."""


class AgreementUndefinedError(PrefpipeError, ValueError):
    """The statistic is undefined for this input (for example no item holds two or more labels, or
    every label is the same value so expected disagreement is 0). Never reported as 0 or 1."""
