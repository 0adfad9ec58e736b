"""One-class scorers and decision thresholds."""

from ._calibration import best_threshold, fit_alpha_beta
from ._density import GMMAnomalyScorer, KDEAnomalyScorer
from ._kde_threshold import KDEThresholdClassifier
from ._knn import KNNAnomalyScorer
from ._patch_knn import PatchKNNScorer, local_patch_distances

__all__ = [
    "GMMAnomalyScorer",
    "KDEAnomalyScorer",
    "KDEThresholdClassifier",
    "KNNAnomalyScorer",
    "PatchKNNScorer",
    "best_threshold",
    "fit_alpha_beta",
    "local_patch_distances",
]
