# SPDX-License-Identifier: BSD-3-Clause
"""Variation baseline: per-pixel mean and standard deviation of the normal set (Sec. 4.4).
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from .._base import (
    CONTAMINATION_CONSTRAINT,
    ImageDetectorMixin,
    OutOfSampleFitPredictMixin,
    iter_batches,
    offset_from_scores,
    restore_layout,
    validate_images,
)
from ..utils.fixes import Interval
from ..utils.fixes import fit_context as _fit_context

__all__ = ["VariationDetector"]

# Images processed at once by the numpy baselines (bounded memory).
_CHUNK = 64

class VariationDetector(
    OutOfSampleFitPredictMixin, ImageDetectorMixin, OutlierMixin, BaseEstimator
):
    """Outlier detector scoring an image by its squared per-pixel z-scores.

    The "Variation" baseline of Saeedi & Giusti (2023, Sec. 4.4): the normal training set
    gives a per-pixel mean ``mu`` and standard deviation ``sigma``; the anomaly of an image
    ``x`` is ``sum_p ((x_p - mu_p) / (sigma_p + eps))**2`` over all pixels (and channels).
    It assumes aligned images (register them first, e.g. with
    :class:`~skcpcae.preprocessing.ECCRegistrar`). :meth:`score_samples` returns the opposite
    (higher = more normal) and :meth:`anomaly_map` the per-pixel squared z-scores.

    Training images are scored *leave-one-out*: image ``i`` is compared with the mean and
    standard deviation of the other ``n - 1`` images (closed form, no refit), so ``offset_``
    is not set from optimistic in-sample scores. (``predict`` on the training set itself uses
    the full statistics, as :class:`~sklearn.neighbors.LocalOutlierFactor` with
    ``novelty=True`` does.)

    Parameters
    ----------
    eps : float, default=0.01
        Added to the per-pixel standard deviation, so that pixels that never vary in the
        training set (a constant background) do not divide by zero. In units of pixel
        intensity (images in ``[0, 1]``: 0.01 is about 2.5 grey levels of an 8-bit image).
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``. With a float, ``offset_`` is that quantile of the leave-one-out
        training scores. With ``"auto"``, Tukey's fence ``Q3 + 1.5 * IQR`` on the
        leave-one-out training anomaly scores (negated), as in
        :class:`~skcpcae.outlier.KNNAnomalyScorer`.

    Attributes
    ----------
    mean_ : ndarray of shape (height, width[, channels])
        Per-pixel mean of the training images.
    std_ : ndarray of shape (height, width[, channels])
        Per-pixel (population) standard deviation of the training images.
    negative_outlier_score_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training images.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    image_shape_ : tuple of int
        ``(height, width[, channels])`` of the training images (``(1, n_features)`` for a
        table).
    n_features_in_ : int
        Number of values per image (``height * width * channels``).

    See Also
    --------
    NearestImageDetector : Distance to the most similar training image.
    AEL2Detector : Summed squared autoencoder residual.
    PatchCoreDetector : Nearest-neighbour distance of mid-level CNN patch features.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> from skcpcae.baselines import VariationDetector
    >>> from skcpcae.datasets import make_parts
    >>> X, y = make_parts(20, n_anomalies=3, size=(32, 32), random_state=0)
    >>> det = VariationDetector().fit(X[:20])
    >>> bool(det.score_samples(X[20:]).max() < det.score_samples(X[:20]).min())
    True
    >>> det.anomaly_map(X[20:]).shape
    (3, 32, 32)
    """

    _parameter_constraints: dict = {
        "eps": [Interval(numbers.Real, 0, None, closed="left")],
        "contamination": CONTAMINATION_CONSTRAINT,
    }

    def __init__(self, eps=0.01, *, contamination="auto"):
        self.eps = eps
        self.contamination = contamination

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the per-pixel mean and standard deviation of normal images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Normal images, floats in [0, 1] (uint8 is scaled).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted detector.
        """
        images, _ = validate_images(self, X, reset=True)
        n = images.shape[0]
        x = images.astype(np.float64)
        mean = x.mean(axis=0)
        m2 = np.square(x - mean).sum(axis=0)
        self.mean_ = mean.astype(np.float32)
        self.std_ = np.sqrt(m2 / n).astype(np.float32)
        if n > 1:
            # Leave-one-out statistics in closed form (Welford's removal update).
            scores = np.empty(n)
            for sl in iter_batches(n, _CHUNK):
                d = x[sl] - mean
                mean_loo = mean - d / (n - 1)
                m2_loo = np.maximum(m2 - np.square(d) * (n / (n - 1)), 0.0)
                std_loo = np.sqrt(m2_loo / (n - 1))
                z2 = np.square((x[sl] - mean_loo) / (std_loo + self.eps))
                scores[sl] = -z2.reshape(z2.shape[0], -1).sum(axis=1)
        else:
            scores = self._score_images(images)
        self.negative_outlier_score_ = scores
        self.offset_ = offset_from_scores(scores, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the sum of squared per-pixel z-scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the fitted size.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        images, _ = validate_images(self, X, reset=False)
        return self._score_images(images)

    def anomaly_map(self, X):
        """Per-pixel squared z-scores, summed over channels (higher = worse).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the fitted size.

        Returns
        -------
        maps : ndarray of shape (n_samples, height, width), float32
            ``(n_samples, n_features)`` when ``X`` is a table.
        """
        images, was_2d = validate_images(self, X, reset=False)
        maps = np.empty(images.shape[:3], np.float32)
        for sl in iter_batches(images.shape[0], _CHUNK):
            maps[sl] = self._z2(images[sl])
        return restore_layout(maps, was_2d)

    def _z2(self, images):
        z2 = np.square((images.astype(np.float64) - self.mean_) / (self.std_ + self.eps))
        if z2.ndim == 4:
            z2 = z2.sum(axis=-1)
        return z2

    def _score_images(self, images):
        scores = np.empty(images.shape[0])
        for sl in iter_batches(images.shape[0], _CHUNK):
            z2 = self._z2(images[sl])
            scores[sl] = -z2.reshape(z2.shape[0], -1).sum(axis=1)
        return scores
