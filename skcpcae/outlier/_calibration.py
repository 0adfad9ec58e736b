# SPDX-License-Identifier: BSD-3-Clause
"""Calibration of the threshold's ``alpha`` and ``beta`` from labelled validation sets.

Saeedi & Giusti (2023), Sec. 3.4, fit the two constants of eq. 7 "by solving linear
equations" from the best thresholds found on several labelled datasets; this module does it
by least squares under this project's reading of eq. 7 (see
:class:`~skcpcae.outlier.KDEThresholdClassifier`).
"""

import numpy as np
from scipy.optimize import minimize_scalar

from ..metrics import to_anomaly_labels
from ._kde_threshold import _GaussianKDE1D

__all__ = ["best_threshold", "fit_alpha_beta"]


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
    """Least-squares ``alpha`` and ``beta`` of the KDE threshold from labelled validation sets.

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
    kdes = [_GaussianKDE1D(s, bandwidth=bandwidth) for s in score_sets]
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
