# SPDX-License-Identifier: BSD-3-Clause
"""AE (L2) baseline: summed squared residual of the CPCAE autoencoder (Sec. 4.4)."""

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, clone

from .._base import (
    CONTAMINATION_CONSTRAINT,
    ImageDetectorMixin,
    iter_batches,
    offset_from_scores,
    restore_layout,
    validate_images,
)
from ..utils.fixes import HasMethods
from ..utils.fixes import fit_context as _fit_context
from ._variation import _CHUNK

__all__ = ["AEL2Detector"]


class AEL2Detector(ImageDetectorMixin, OutlierMixin, BaseEstimator):
    """Outlier detector scoring an image by its summed squared autoencoder residual.

    The "AE (L2)" baseline of Saeedi & Giusti (2023, Sec. 4.4): the same conditional
    patch-based autoencoder as the full method
    (:class:`~skcpcae.residuals.CPCAEResidualMap`), but the anomaly of an image is simply
    ``sum_p (x_p - x_hat_p)**2`` over all pixels (and channels), without the deep-feature
    embedding and the one-class classifier. :meth:`score_samples` returns the opposite
    (higher = more normal) and :meth:`anomaly_map` the squared residual map, summed over
    channels.

    The training scores that set ``offset_`` come from the autoencoder's ``fit_transform``:
    *out of fold* when the autoencoder cross-fits (``CPCAEResidualMap(cv=k)``), otherwise
    in-sample, hence optimistically small (the default, as in the paper's baseline; a
    threshold from in-sample residuals flags more test images than ``contamination``
    suggests).

    Parameters
    ----------
    autoencoder : CPCAEResidualMap or None, default=None
        The residual-map transformer, cloned in :meth:`fit` into ``autoencoder_``. ``None``
        means ``CPCAEResidualMap(residual="squared", gain=None)`` (the paper's summed squared
        residual, unscaled) with its default architecture. Any
        transformer whose ``transform`` returns a per-pixel residual of the shape of its
        input can be used; a ``residual="absolute"`` map is squared before it is summed.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``. With a float, ``offset_`` is that quantile of the training scores.
        With ``"auto"``, Tukey's fence ``Q3 + 1.5 * IQR`` on the training anomaly scores
        (negated), as in :class:`~skcpcae.outlier.KNNAnomalyScorer`.
    random_state : int, RandomState instance or None, default=None
        When not None, set as the ``random_state`` of the cloned autoencoder (weights,
        shuffling, folds); None keeps the autoencoder's own.

    Attributes
    ----------
    autoencoder_ : CPCAEResidualMap
        The fitted autoencoder.
    negative_outlier_score_ : ndarray of shape (n_samples,)
        ``score_samples`` of the training images (out of fold when the autoencoder
        cross-fits).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    image_shape_ : tuple of int
        ``(height, width[, channels])`` of the training images.
    n_features_in_ : int
        Number of values per image.

    See Also
    --------
    skcpcae.residuals.CPCAEResidualMap : The autoencoder and its residual maps.
    VariationDetector : Per-pixel z-scores against the normal set.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> from skcpcae.baselines import AEL2Detector
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.residuals import CPCAEResidualMap
    >>> X, y = make_parts(12, n_anomalies=2, size=(32, 32), random_state=0)
    >>> ae = CPCAEResidualMap(input_size=None, patch_size=16, channels=(8, 16),
    ...                       max_epochs=2, residual="squared")
    >>> det = AEL2Detector(ae, random_state=0).fit(X[:12])
    >>> det.score_samples(X[12:]).shape, det.anomaly_map(X[12:]).shape
    ((2,), (2, 32, 32))
    """

    _parameter_constraints: dict = {
        "autoencoder": [None, HasMethods(["fit", "transform"])],
        "contamination": CONTAMINATION_CONSTRAINT,
        "random_state": ["random_state"],
    }

    def __init__(self, autoencoder=None, *, contamination="auto", random_state=None):
        self.autoencoder = autoencoder
        self.contamination = contamination
        self.random_state = random_state

    # The autoencoder's own parameters are validated by its fit.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Train the autoencoder on normal images and score them.

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
        if self.autoencoder is None:
            from ..residuals import CPCAEResidualMap

            autoencoder = CPCAEResidualMap(residual="squared", gain=None)
        else:
            autoencoder = clone(self.autoencoder)
        if self.random_state is not None and "random_state" in autoencoder.get_params():
            autoencoder.set_params(random_state=self.random_state)
        residuals = autoencoder.fit_transform(images)
        self.autoencoder_ = autoencoder
        self.negative_outlier_score_ = -self._summed(residuals)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the summed squared residual.

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
        scores = np.empty(images.shape[0])
        for sl in iter_batches(images.shape[0], _CHUNK):
            scores[sl] = -self._summed(self.autoencoder_.transform(images[sl]))
        return scores

    def anomaly_map(self, X):
        """Squared residual map, summed over channels (higher = worse).

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
            maps[sl] = self._squared_map(self.autoencoder_.transform(images[sl]))
        return restore_layout(maps, was_2d)

    def _squared_map(self, residuals):
        r = np.asarray(residuals, dtype=np.float32)
        if getattr(self.autoencoder_, "residual", "squared") != "squared":
            r = np.square(r)
        if r.ndim == 4:
            r = r.sum(axis=-1)
        return r

    def _summed(self, residuals):
        r = self._squared_map(residuals).astype(np.float64)
        return r.reshape(r.shape[0], -1).sum(axis=1)
