"""skcpcae: scikit-learn toolkit for semi-supervised visual anomaly detection.

Saeedi & Giusti (2023): registration and adaptive gamma, a conditional patch-based
convolutional autoencoder, deep-feature embedding of its residual maps, a k-NN one-class
scorer and a KDE-based decision threshold, each a scikit-learn estimator.

The estimators are re-exported here lazily (``skcpcae.CPCAEResidualMap`` imports torch only
when first used), so ``import skcpcae`` and the command line's ``--help`` stay fast.
"""

import importlib

from ._version import __version__

_LAZY = {
    "ECCRegistrar": "preprocessing",
    "AdaptiveGamma": "preprocessing",
    "CPCAEResidualMap": "residuals",
    "DeepPoolEmbedder": "embedding",
    "DeepPatchEmbedder": "embedding",
    "KNNAnomalyScorer": "outlier",
    "PatchKNNScorer": "outlier",
    "KDEThresholdClassifier": "outlier",
    "GMMAnomalyScorer": "outlier",
    "KDEAnomalyScorer": "outlier",
    "make_cpcae_pipeline": "_pipelines",
    "make_deep_feature_pipeline": "_pipelines",
    "make_preset": "_pipelines",
    "make_best_pipeline": "_pipelines",
    "make_union_pipeline": "_pipelines",
    "PRESETS": "_pipelines",
    "score_files": "_scoring",
    "anomaly_maps": "inspection",
    "inspect_images": "inspection",
    "location_summary": "inspection",
}
_SUBMODULES = {
    "baselines", "datasets", "embedding", "inspection", "metrics", "model_selection", "outlier",
    "export", "persistence", "plotting", "preprocessing", "residuals", "runtime", "scale", "utils",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'skcpcae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
