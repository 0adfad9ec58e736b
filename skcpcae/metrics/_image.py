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
    "balanced_accuracy_scorer",
    "evaluate",
    "f1_scorer",
    "get_scorer",
    "get_scorer_names",
    "precision_scorer",
    "recall_scorer",
]


def to_anomaly_labels(y):
    """Convert labels to 0 (normal) / 1 (anomalous).

    ``y`` may use this package's convention (0 normal, 1 anomalous, also bool) or
    scikit-learn's outlier convention (+1 normal, -1 anomalous).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        0/1 or bool (1 anomalous), or +1/-1 (-1 anomalous).

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        1 for the anomalous samples, 0 for the normal ones.

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
    """Compute anomaly scores (higher = more anomalous) with any fitted outlier detector.

    Parameters
    ----------
    estimator : estimator instance
        A fitted detector or pipeline with ``score_samples`` or ``decision_function``.
    X : array-like
        Input of the detector.

    Returns
    -------
    anomaly_score : ndarray of shape (n_samples,)
        ``-score_samples(X)``, or ``-decision_function(X)`` without ``score_samples``.
    """
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

    Returns
    -------
    auroc : float
        Area under the ROC curve of the anomalous class.

    Examples
    --------
    >>> image_auroc([0, 0, 1], [0.1, 0.2, 0.9])
    1.0
    """
    y = to_anomaly_labels(y_true)
    _check_both_classes(y)
    return float(roc_auc_score(y, anomaly_score))


def image_average_precision(y_true, anomaly_score):
    """Average precision with anomalous = positive (see :func:`image_auroc`).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).
    anomaly_score : array-like of shape (n_samples,)
        Higher = more anomalous (e.g. ``-score_samples``).

    Returns
    -------
    average_precision : float
        Average precision of the anomalous class.
    """
    y = to_anomaly_labels(y_true)
    _check_both_classes(y)
    return float(average_precision_score(y, anomaly_score))


def auroc_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV(scoring=auroc_scorer)``: AUROC, anomalous = positive.

    Parameters
    ----------
    estimator : estimator instance
        A fitted outlier detector or pipeline (``predict`` +1 / -1, or scores).
    X : array-like
        Input of the detector.
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    score : float
        AUROC of the anomalous class (higher is better).
    """
    return image_auroc(y, anomaly_scores(estimator, X))


def average_precision_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV``: average precision, anomalous = positive.

    Parameters
    ----------
    estimator : estimator instance
        A fitted outlier detector or pipeline (``predict`` +1 / -1, or scores).
    X : array-like
        Input of the detector.
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    score : float
        Average precision of the anomalous class (higher is better).
    """
    return image_average_precision(y, anomaly_scores(estimator, X))


def _anomaly_predictions(estimator, X):
    """1 where a fitted detector predicts an anomaly (``predict == -1``), else 0."""
    if not hasattr(estimator, "predict"):
        raise TypeError(f"{type(estimator).__name__} has no predict method.")
    pred = np.asarray(estimator.predict(X))
    values = set(np.unique(pred).tolist())
    if not values <= {-1, 1}:
        raise ValueError(
            "The detector's predict must return +1 (normal) / -1 (anomalous), scikit-learn's "
            f"outlier convention; got values {sorted(values)[:6]}."
        )
    return (pred == -1).astype(int)


def f1_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV``: F1 of the anomalous class at the model's threshold.

    Parameters
    ----------
    estimator : estimator instance
        A fitted outlier detector or pipeline (``predict`` +1 / -1).
    X : array-like
        Input of the detector.
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    score : float
        F1 of the anomalous class (higher is better).
    """
    from sklearn.metrics import f1_score

    return float(f1_score(to_anomaly_labels(y), _anomaly_predictions(estimator, X),
                          zero_division=0.0))


def precision_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV``: precision of the anomaly alarms at the model's threshold.

    Parameters
    ----------
    estimator : estimator instance
        A fitted outlier detector or pipeline (``predict`` +1 / -1).
    X : array-like
        Input of the detector.
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    score : float
        Precision of the anomaly alarms (higher is better).
    """
    from sklearn.metrics import precision_score

    return float(precision_score(to_anomaly_labels(y), _anomaly_predictions(estimator, X),
                                 zero_division=0.0))


def recall_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV``: recall of the anomalies at the model's threshold.

    Parameters
    ----------
    estimator : estimator instance
        A fitted outlier detector or pipeline (``predict`` +1 / -1).
    X : array-like
        Input of the detector.
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    score : float
        Recall of the anomalies (higher is better).
    """
    from sklearn.metrics import recall_score

    return float(recall_score(to_anomaly_labels(y), _anomaly_predictions(estimator, X),
                              zero_division=0.0))


def balanced_accuracy_scorer(estimator, X, y):
    """Scorer for ``GridSearchCV``: mean of recall and 1 - false-alarm rate at the threshold.

    Parameters
    ----------
    estimator : estimator instance
        A fitted outlier detector or pipeline (``predict`` +1 / -1).
    X : array-like
        Input of the detector.
    y : array-like of shape (n_samples,)
        0/1 (1 anomalous) or +1/-1 (-1 anomalous).

    Returns
    -------
    score : float
        Balanced accuracy (higher is better).
    """
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(to_anomaly_labels(y),
                                         _anomaly_predictions(estimator, X)))


_SCORERS = {
    "roc_auc": auroc_scorer,
    "average_precision": average_precision_scorer,
    "f1": f1_scorer,
    "precision": precision_scorer,
    "recall": recall_scorer,
    "balanced_accuracy": balanced_accuracy_scorer,
}


def get_scorer_names():
    """List the names :func:`get_scorer` accepts (scikit-learn's names for the metrics).

    Returns
    -------
    names : list of str
        Sorted scorer names.
    """
    return sorted(_SCORERS)


def get_scorer(scoring):
    """A scorer for one-class pipelines, by scikit-learn's metric name; anomalous = positive.

    scikit-learn's string scorers (``GridSearchCV(scoring="roc_auc")``) read an outlier
    detector's ``decision_function`` (higher = more normal) and ``predict`` (+1 / -1)
    against ``y`` as given: with this package's labels (0 normal, 1 anomalous) ``"roc_auc"``
    would return 1 - AUROC and ``"average_precision"`` the AP of the wrong class, so the
    package's detectors refuse them with a ``ValueError`` that names this function
    (``GridSearchCV`` turns it into NaN scores and a warning, or raises with
    ``error_score="raise"``); ``"f1"`` fails ("Target is multiclass"). With labels +1 normal
    / -1 anomalous the string scorers read the scores the right way. The scorers returned here read ``y`` as 0/1 or +1/-1
    (:func:`to_anomaly_labels`) and score the anomalous class. A list or tuple of names
    gives a dict, for multi-metric search (``refit="roc_auc"``).

    Parameters
    ----------
    scoring : str or list of str
        One of :func:`get_scorer_names`: ``"roc_auc"``, ``"average_precision"``
        (from the scores), ``"f1"``, ``"precision"``, ``"recall"``,
        ``"balanced_accuracy"`` (from ``predict``, at the model's threshold).

    Returns
    -------
    scorer : callable ``scorer(estimator, X, y)``, or dict of them
        Higher is better; a dict ``{name: scorer}`` for a list of names.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.metrics import get_scorer
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> rng = np.random.RandomState(0)
    >>> det = KNNAnomalyScorer(n_neighbors=5).fit(rng.normal(size=(100, 2)))
    >>> X = np.r_[rng.normal(size=(50, 2)), rng.normal(5, 1, size=(10, 2))]
    >>> y = np.r_[np.zeros(50), np.ones(10)]
    >>> get_scorer("roc_auc")(det, X, y)
    1.0
    """
    if isinstance(scoring, (list, tuple, set)):
        return {name: get_scorer(name) for name in scoring}
    if scoring not in _SCORERS:
        raise ValueError(
            f"Unknown scorer {scoring!r} for one-class pipelines; choose one of "
            f"{get_scorer_names()} (skcpcae.metrics.get_scorer), or pass a callable "
            "scorer(estimator, X, y) that scores the anomalous class."
        )
    return _SCORERS[scoring]


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
