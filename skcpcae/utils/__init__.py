"""Utilities: device handling, chunked scoring, estimator checks."""

from ._chunked import chunked_apply, chunked_score_samples

__all__ = ["chunked_apply", "chunked_score_samples"]
