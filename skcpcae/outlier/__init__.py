"""One-class scorers and decision thresholds."""

from ._calibration import (
    best_threshold,
    conformal_threshold,
    fit_alpha_beta,
    fit_calibrated,
    set_operating_point,
    threshold_step,
)
from ._density import GMMAnomalyScorer, KDEAnomalyScorer
from ._fused import FusedKNNScorer
from ._kde_threshold import KDEThresholdClassifier
from ._knn import KNNAnomalyScorer
from ._patch_knn import PatchKNNScorer, local_patch_distances
from ._tuned_threshold import TunedThresholdDetectorCV

__all__ = [
    "FusedKNNScorer",
    "GMMAnomalyScorer",
    "KDEAnomalyScorer",
    "KDEThresholdClassifier",
    "KNNAnomalyScorer",
    "PatchKNNScorer",
    "TunedThresholdDetectorCV",
    "best_threshold",
    "conformal_threshold",
    "fit_alpha_beta",
    "fit_calibrated",
    "local_patch_distances",
    "set_operating_point",
    "threshold_step",
]
