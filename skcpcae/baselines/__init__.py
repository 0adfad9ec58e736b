"""The paper's comparators and a PatchCore-style detector, as image outlier detectors.

Every detector takes image batches ``(n_samples, height, width[, channels])``, follows
scikit-learn's outlier conventions (``score_samples`` higher = more normal,
``decision_function = score_samples - offset_``, ``predict`` in {-1, +1}) and offers
``anomaly_map(X)``, a per-pixel anomaly map (higher = worse) at the input size.
"""

from ._ae_l2 import AEL2Detector
from ._nearest import NearestImageDetector
from ._patchcore import PatchCoreDetector
from ._variation import VariationDetector

__all__ = [
    "AEL2Detector",
    "NearestImageDetector",
    "PatchCoreDetector",
    "VariationDetector",
]
