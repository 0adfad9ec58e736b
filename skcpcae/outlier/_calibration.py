# SPDX-License-Identifier: BSD-3-Clause
"""Calibration of the threshold's ``alpha`` and ``beta`` from labelled validation sets.

Saeedi & Giusti (2023), Sec. 3.4, fit the two constants of eq. 7 "by solving linear
equations" from the best thresholds found on several labelled datasets; this module does it
by least squares under this project's reading of eq. 7 (see
:class:`~skcpcae.outlier.KDEThresholdClassifier`).
"""

import math
import numbers

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._components.kde import GaussianKDE1D
from ..metrics import to_anomaly_labels
from ..utils.fixes import safe_indexing as _safe_indexing
from ._kde_threshold import KDEThresholdClassifier

__all__ = [
    "best_threshold",
    "conformal_threshold",
    "fit_alpha_beta",
    "fit_calibrated",
    "set_operating_point",
    "threshold_step",
]


def conformal_threshold(anomaly_scores, alpha):
    """Split-conformal threshold: the ``ceil((n + 1)(1 - alpha))``-th smallest score.

    If the ``n`` scores and the score of a new normal sample are exchangeable (the scores
    of held-out normal samples, not of the samples the model was fitted on), the new
    sample's score exceeds this threshold with probability at most ``alpha`` (and more
    than ``alpha - 1 / (n + 1)``). With ``n < 1 / alpha - 1`` no order statistic is high
    enough: the threshold is ``inf`` (nothing is flagged).

    Parameters
    ----------
    anomaly_scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous) of held-out normal samples.
    alpha : float in (0, 1)
        Target false-alarm rate.

    Returns
    -------
    threshold : float
        Anomaly-score threshold.

    Examples
    --------
    >>> from skcpcae.outlier import conformal_threshold
    >>> conformal_threshold(range(1, 100), 0.05)
    95.0
    """
    s = np.sort(np.asarray(anomaly_scores, dtype=np.float64).ravel())
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("anomaly_scores must be a non-empty array of finite values.")
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a float in the open interval (0, 1); got {alpha!r}.")
    rank = math.ceil((s.size + 1) * (1.0 - alpha) - 1e-9)
    return float(s[rank - 1]) if rank <= s.size else math.inf


def threshold_step(model):
    """The :class:`~skcpcae.outlier.KDEThresholdClassifier` of a model: itself or its last step.

    Parameters
    ----------
    model : KDEThresholdClassifier or Pipeline ending in one
        The model to look into.

    Returns
    -------
    step : KDEThresholdClassifier
        The threshold step of the model.
    """
    last = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if not isinstance(last, KDEThresholdClassifier):
        raise TypeError(
            "Expected a KDEThresholdClassifier or a pipeline ending in one (a preset built "
            f"with threshold=True); got a model ending in {type(last).__name__}."
        )
    return last


def set_operating_point(model, *, alpha=None, beta=None, threshold=None):
    """Move the decision threshold of a fitted model without refitting it.

    The threshold step stores the KDE of its training scores, so a new ``alpha`` (and
    ``beta``) is read off it at once; a ``threshold`` on the raw anomaly score
    (``-score_samples``) overrides both. The model is changed in place, as ``set_params``
    does; the command line's ``skcpcae score --alpha A / --threshold T`` calls this.

    Parameters
    ----------
    model : fitted KDEThresholdClassifier or Pipeline ending in one
        The model whose threshold is moved, in place.
    alpha : float in (0, 1), default=None
        New target false-alarm rate (clears a fixed ``threshold``). None keeps it.
    beta : float, default=None
        New offset of the threshold. None keeps it.
    threshold : float, default=None
        Fixed threshold on the anomaly score. Cannot be combined with ``alpha``.

    Returns
    -------
    model : estimator instance
        The same object, with its threshold moved.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer
    >>> from skcpcae.outlier import set_operating_point
    >>> X = np.random.RandomState(0).normal(size=(200, 2))
    >>> clf = KDEThresholdClassifier(KNNAnomalyScorer(5), random_state=0).fit(X)
    >>> t05 = clf.threshold_
    >>> t01 = set_operating_point(clf, alpha=0.01).threshold_
    >>> bool(t01 > t05)
    True
    >>> set_operating_point(clf, threshold=2.5).threshold_
    2.5
    """
    step = threshold_step(model)
    check_is_fitted(step)
    if alpha is not None and threshold is not None:
        raise ValueError("Give alpha or threshold, not both: a threshold overrides alpha.")
    params = {}
    if alpha is not None:
        params.update(alpha=alpha, threshold=None)
    if beta is not None:
        params["beta"] = beta
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
        params["threshold"] = threshold
    step.set_params(**params)
    step._validate_params()
    step.threshold_  # noqa: B018  (compute now: a bad alpha fails here, not at predict)
    return model


def fit_calibrated(model, X, y=None, *, calibration_size=1 / 3, random_state=None):
    """Fit a whole pipeline on part of the normal samples, calibrate its threshold on the rest.

    Split-conformal calibration at the pipeline level: ``model`` is fitted on the first
    part, every step included (a scaler, an autoencoder, a registration reference); the
    held-out normal samples are passed through the fitted steps and their anomaly scores
    replace the threshold step's KDE (:meth:`KDEThresholdClassifier.recalibrate`). Those
    scores come from a model that never saw the samples, so the false-alarm rate on new
    normal samples is ``alpha`` for any steps before the threshold, at the price of fitting
    on fewer samples. At small ``alpha`` the calibration set must be large: the KDE's
    ``1 - alpha`` quantile of ``n`` scores is set by its ``n * alpha`` largest values.

    Parameters
    ----------
    model : KDEThresholdClassifier or Pipeline ending in one (unfitted)
        Fitted in place.
    X : array-like of shape (n_samples, ...)
        Normal samples, in the form ``model`` accepts.
    y : Ignored
        Not used, present for API consistency.
    calibration_size : float in (0, 1) or int, default=1/3
        Fraction (or number) of samples held out for calibration
        (:func:`~sklearn.model_selection.train_test_split`'s ``test_size``).
    random_state : int, RandomState instance or None, default=None
        Shuffles the samples before the split.

    Returns
    -------
    model : estimator instance
        The same object, fitted and calibrated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer, fit_calibrated
    >>> X = np.random.RandomState(0).normal(size=(300, 4))
    >>> pipe = make_pipeline(StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer()))
    >>> pipe = fit_calibrated(pipe, X, random_state=0)
    >>> pipe[-1].train_scores_.shape
    (100,)
    """
    step = threshold_step(model)
    n = len(X)
    index_fit, index_cal = train_test_split(
        np.arange(n), test_size=calibration_size, random_state=random_state
    )
    model.fit(_safe_indexing(X, index_fit))
    X_cal = _safe_indexing(X, index_cal)
    if isinstance(model, Pipeline):
        X_cal = model[:-1].transform(X_cal)
    step.recalibrate(X_cal)
    return model


def best_threshold(y_true, anomaly_score, *, criterion="f1"):
    """Threshold on the anomaly score that maximises F1 or Youden's J on labelled data.

    A sample is predicted anomalous when its anomaly score is strictly above the threshold
    (the rule of :class:`~skcpcae.outlier.KDEThresholdClassifier`). Candidates are the
    midpoints between consecutive distinct scores, plus "flag everything" (just below the
    lowest score) and "flag nothing" (the highest score); ties go to the lowest candidate.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 normal / 1 anomalous, or +1 normal / -1 anomalous.
    anomaly_score : array-like of shape (n_samples,)
        Higher = more anomalous (e.g. ``-score_samples``).
    criterion : {"f1", "youden"}, default="f1"
        ``"f1"``: F1 score of the anomalous class; ``"youden"``: true-positive rate minus
        false-positive rate.

    Returns
    -------
    threshold : float
        Anomaly-score threshold that maximises the metric.

    Examples
    --------
    >>> from skcpcae.outlier import best_threshold
    >>> best_threshold([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9])
    0.55
    """
    if criterion not in ("f1", "youden"):
        raise ValueError(f"criterion must be 'f1' or 'youden', got {criterion!r}.")
    y = to_anomaly_labels(y_true)
    s = np.asarray(anomaly_score, dtype=np.float64).ravel()
    if s.shape != y.shape:
        raise ValueError(f"y_true has {y.size} labels but anomaly_score has {s.size} values.")
    if not np.all(np.isfinite(s)):
        raise ValueError("anomaly_score holds NaN or infinite values.")
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("best_threshold needs both normal and anomalous samples in y_true.")

    values = np.unique(s)
    candidates = np.concatenate(
        [[np.nextafter(values[0], -np.inf)], (values[:-1] + values[1:]) / 2.0, [values[-1]]]
    )
    order = np.argsort(s)
    s_sorted, y_sorted = s[order], y[order]
    # Number of samples (and anomalies) with score <= candidate, for every candidate.
    below = np.searchsorted(s_sorted, candidates, side="right")
    pos_below = np.concatenate([[0], np.cumsum(y_sorted)])[below]
    tp = n_pos - pos_below
    fp = (s.size - below) - tp
    if criterion == "f1":
        fn = n_pos - tp
        objective = 2.0 * tp / np.maximum(1, 2 * tp + fp + fn)
    else:
        objective = tp / n_pos - fp / n_neg
    return float(candidates[int(np.argmax(objective))])


def fit_alpha_beta(score_sets, best_thresholds, *, bandwidth="scott", alpha_bounds=(1e-4, 0.5)):
    """Fit ``alpha`` and ``beta`` of the KDE threshold to labelled validation sets (least squares).

    For each validation set ``i``, ``F_i`` is the Gaussian KDE of its (out-of-sample) normal
    anomaly scores and ``t_i`` the best threshold found on its labelled data (e.g. by
    :func:`best_threshold`). The threshold rule of
    :class:`~skcpcae.outlier.KDEThresholdClassifier` predicts
    ``t_i = F_i^{-1}(1 - alpha) - beta``; this function minimises
    ``sum_i (F_i^{-1}(1 - alpha) - beta - t_i)^2``. For a fixed ``alpha`` the best ``beta``
    is closed-form (the mean of ``F_i^{-1}(1 - alpha) - t_i``), so the search is
    one-dimensional in ``alpha``: a log-spaced grid over ``alpha_bounds``, refined by a
    bounded scalar minimisation around the best grid point.

    With identical score distributions ``alpha`` and ``beta`` are not identifiable (any
    ``alpha`` fits with its own ``beta``); the sets should differ (products, lots, cameras).

    Parameters
    ----------
    score_sets : sequence of array-like of shape (n_normal_i,)
        For each validation set, the anomaly scores (higher = more anomalous) of its normal
        samples, out-of-sample with respect to the detector (e.g. ``train_scores_`` of a
        fitted :class:`~skcpcae.outlier.KDEThresholdClassifier`). At least 2 sets.
    best_thresholds : array-like of shape (n_sets,)
        The best threshold on the anomaly score found on each labelled validation set.
    bandwidth : {"scott", "silverman"} or float, default="scott"
        KDE bandwidth, as in :class:`~skcpcae.outlier.KDEThresholdClassifier`.
    alpha_bounds : tuple of float, default=(1e-4, 0.5)
        Search interval for ``alpha``, inside (0, 1).

    Returns
    -------
    alpha : float
        Significance level of the KDE threshold.
    beta : float
        Use them as ``KDEThresholdClassifier(..., alpha=alpha, beta=beta)``.

    Examples
    --------
    Three labelled validation sets whose anomaly scores have different scales:

    >>> import numpy as np
    >>> from skcpcae.outlier import best_threshold, fit_alpha_beta
    >>> rng = np.random.RandomState(0)
    >>> score_sets, thresholds = [], []
    >>> for scale in (1.0, 2.0, 4.0):
    ...     score_sets.append(rng.normal(0, scale, 500))  # out-of-sample normal scores
    ...     y = np.r_[np.zeros(300), np.ones(60)]
    ...     s = np.r_[rng.normal(0, scale, 300), rng.normal(3 * scale, scale, 60)]
    ...     thresholds.append(best_threshold(y, s))
    >>> alpha, beta = fit_alpha_beta(score_sets, thresholds)
    >>> print(round(alpha, 3), round(beta, 3))
    0.026 0.015
    """
    kdes = [GaussianKDE1D(s, bandwidth=bandwidth) for s in score_sets]
    t = np.asarray(best_thresholds, dtype=np.float64).ravel()
    if len(kdes) != t.size:
        raise ValueError(f"Got {len(kdes)} score sets but {t.size} best thresholds.")
    if len(kdes) < 2:
        raise ValueError(
            "fit_alpha_beta needs at least 2 validation sets to fit both alpha and beta; "
            "with one set, alpha = 1 - F(t) for beta = 0."
        )
    lo, hi = (float(b) for b in alpha_bounds)
    if not 0 < lo < hi < 1:
        raise ValueError(f"alpha_bounds must satisfy 0 < low < high < 1, got {alpha_bounds}.")

    def quantiles(alpha):
        return np.array([k.ppf(1.0 - alpha) for k in kdes])

    def loss(alpha):
        r = quantiles(alpha) - t
        return float(np.sum((r - r.mean()) ** 2))

    grid = np.geomspace(lo, hi, 60)
    losses = np.array([loss(a) for a in grid])
    i = int(np.argmin(losses))
    a_lo, a_hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(loss, bounds=(a_lo, a_hi), method="bounded", options={"xatol": 1e-8})
    alpha = float(res.x) if res.fun <= losses[i] else float(grid[i])
    beta = float(np.mean(quantiles(alpha) - t))
    return alpha, beta
