"""One-class scorers and decision thresholds."""

from ._knn import KNNAnomalyScorer

__all__ = ["KNNAnomalyScorer"]
