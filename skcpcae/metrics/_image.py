# SPDX-License-Identifier: BSD-3-Clause
"""Image-level and pixel-level metrics with anomalous = positive, and GridSearchCV scorers."""

import warnings

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "to_anomaly_labels",
    "anomaly_scores",
    "image_auroc",
    "image_average_precision",
    "auroc_scorer",
    "average_precision_scorer",
    "evaluate",
]


def to_anomaly_labels(y):
    """Labels as 0 (normal) / 1 (anomalous).

    ``y`` may use this package's convention (0 normal, 1 anomalous, also bool) or
    scikit-learn's outlier convention (+1 normal, -1 anomalous).

    Examples
    --------
    >>> to_anomaly_labels([1, -1, 1]).tolist()
    [0, 1, 0]
    >>> to_anomaly_labels([0, 1, 1]).tolist()
    [0, 1, 1]
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels, got shape {y.shape}.")
    values = set(np.unique(y).tolist())
    if values == {1} and y.dtype != bool:
        warnings.warn(
            "y holds only 1s, which is ambiguous: read as 0/1 labels it means 'all "
            "anomalous', as scikit-learn's +1/-1 it means 'all normal'. Read as all "
            "anomalous; pass y == -1 (bool) or 0/1 labels to be explicit.",
            UserWarning,
            stacklevel=2,
        )
    if values <= {0, 1} or y.dtype == bool:
        return y.astype(int)
    if values <= {-1, 1}:
        return (y == -1).astype(int)
    raise ValueError(
        "y must hold 0 (normal) / 1 (anomalous) or +1 (normal) / -1 (anomalous); "
        f"got values {sorted(values)[:6]}."
    )


def anomaly_scores(estimator, X):
    """Anomaly scores (higher = more anomalous) from any fitted outlier detector."""
    for method in ("score_samples", "decision_function"):
        if hasattr(estimator, method):
            return -np.asarray(getattr(estimator, method)(X), dtype=float)
    raise TypeError(
        f"{type(estimator).__name__} has neither score_samples nor decision_function."
    )


def _check_both_classes(y):
    if len(np.unique(y)) < 2:
        raise ValueError("AUROC / AP need both normal and anomalous samples in y.")


def image_auroc(y_true, anomaly_score):
    """Area under the ROC curve with anomalous = positive.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).
    anomaly_score : array-like of shape (n_samples,)
        Higher = more anomalous (e.g. ``-score_samples``).

    Examples
    --------
    >>> image_auroc([0, 0, 1], [0.1, 0.2, 0.9])
    1.0
    """
    y = to_anomaly_labels(y_true)
    _check_both_classes(y)
    return float(roc_auc_score(y, anomaly_score))


def image_average_precision(y_true, anomaly_score):
    """Average precision with anomalous = positive (see :func:`image_auroc`)."""
    y = to_anomaly_labels(y_true)
    _check_both_classes(y)
    return float(average_precision_score(y, anomaly_score))


def auroc_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV(scoring=auroc_scorer)``: AUROC, anomalous = positive."""
    return image_auroc(y, anomaly_scores(estimator, X))


def average_precision_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV``: average precision, anomalous = positive."""
    return image_average_precision(y, anomaly_scores(estimator, X))


def evaluate(estimator, X, y):
    """A small report of a fitted detector on labelled data.

    Parameters
    ----------
    estimator : fitted outlier detector or pipeline
        Must have ``score_samples`` or ``decision_function``; ``predict`` is used when present.
    X : array-like
        Samples (images for a pipeline).
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    report : dict
        ``auroc``, ``average_precision``, ``n_samples``, ``n_anomalous``, and, when the
        estimator predicts, ``tp``, ``fp``, ``tn``, ``fn``, ``false_alarm_rate``, ``recall``,
        ``precision``.
    """
    y = to_anomaly_labels(y)
    s = anomaly_scores(estimator, X)
    report = {
        "n_samples": int(len(y)),
        "n_anomalous": int(y.sum()),
        "auroc": image_auroc(y, s),
        "average_precision": image_average_precision(y, s),
    }
    if hasattr(estimator, "predict"):
        pred = (np.asarray(estimator.predict(X)) == -1).astype(int)
        tp = int(np.sum((pred == 1) & (y == 1)))
        fp = int(np.sum((pred == 1) & (y == 0)))
        tn = int(np.sum((pred == 0) & (y == 0)))
        fn = int(np.sum((pred == 0) & (y == 1)))
        report.update(
            tp=tp, fp=fp, tn=tn, fn=fn,
            false_alarm_rate=fp / max(1, fp + tn),
            recall=tp / max(1, tp + fn),
            precision=tp / max(1, tp + fp),
        )
    return report
