"""skcpcae: scikit-learn toolkit for semi-supervised visual anomaly detection.

Saeedi & Giusti (2023): registration and adaptive gamma, a conditional patch-based
convolutional autoencoder, deep-feature embedding of its residual maps, a k-NN one-class
scorer and a KDE-based decision threshold, each a scikit-learn estimator.
"""

from ._version import __version__
from .outlier import KNNAnomalyScorer

__all__ = ["__version__", "KNNAnomalyScorer"]
