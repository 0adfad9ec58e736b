"""Cross-validation splitters for one-class models tuned on labelled data."""

from ._split import NormalOnlyKFold

__all__ = ["NormalOnlyKFold"]
