"""One-class scorers and decision thresholds."""

from ._calibration import best_threshold, fit_alpha_beta
from ._density import GMMAnomalyScorer, KDEAnomalyScorer
from ._kde_threshold import KDEThresholdClassifier
from ._knn import KNNAnomalyScorer

__all__ = [
    "GMMAnomalyScorer",
    "KDEAnomalyScorer",
    "KDEThresholdClassifier",
    "KNNAnomalyScorer",
    "best_threshold",
    "fit_alpha_beta",
]
