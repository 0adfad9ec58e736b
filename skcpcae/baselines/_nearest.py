# SPDX-License-Identifier: BSD-3-Clause
"""Nearest-image baseline: squared L2 distance to the most similar normal image (Sec. 4.4)."""

import numbers

import cv2
import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.neighbors import NearestNeighbors

from .._base import (
    CONTAMINATION_CONSTRAINT,
    ImageDetectorMixin,
    OutOfSampleFitPredictMixin,
    iter_batches,
    offset_from_scores,
    restore_layout,
    validate_images,
)
from ..utils._deprecation import rename_in_state, resolve_renamed
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context
from ._variation import _CHUNK

__all__ = ["NearestImageDetector"]


def _check_input_size(input_size):
    """``None``, an int (square) or ``(height, width)`` → ``None`` or a tuple of two ints."""
    if input_size is None:
        return None
    if isinstance(input_size, numbers.Integral):
        return int(input_size), int(input_size)
    size = tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size):
        raise ValueError(
            f"input_size must be None, a positive int or a (height, width) pair of positive "
            f"ints; got {input_size!r}."
        )
    return int(size[0]), int(size[1])


def _resize(images, size):
    """Resize a batch ``(n, H, W[, C])`` to ``size = (height, width)`` (area averaging)."""
    h, w = size
    if images.shape[1:3] == (h, w):
        return images
    out = np.empty((images.shape[0], h, w) + images.shape[3:], np.float32)
    for i, img in enumerate(images):
        r = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        out[i] = r.reshape(out.shape[1:])
    return out


class NearestImageDetector(
    OutOfSampleFitPredictMixin, ImageDetectorMixin, OutlierMixin, BaseEstimator
):
    """Outlier detector scoring an image by its squared L2 distance to the nearest normal image.

    The "NN" baseline of Saeedi & Giusti (2023, Sec. 4.4): the anomaly of ``x`` is
    ``min_t ||x - t||^2`` over the normal training images ``t`` (pixel by pixel, so the images
    must be aligned). :meth:`score_samples` returns the opposite (higher = more normal) and
    :meth:`anomaly_map` the per-pixel squared difference to that nearest image. The search
    runs on images downsized to ``input_size`` when it is set (faster, and less sensitive to
    noise and small misalignment).

    Training images are scored *leave-one-out* (each against its nearest *other* training
    image), so ``offset_`` is not set from in-sample distances, which are all zero.

    Parameters
    ----------
    input_size : int or tuple of (int, int), default=None
        ``(height, width)`` (or one int for a square) to which images are downsized (area
        averaging) before the search (the name every estimator uses for the size it resizes
        images to); ``None`` keeps the input size. Distances, and the map
        before it is upsampled to the input size, are computed at this size.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``. With a float, ``offset_`` is that quantile of the leave-one-out
        training scores. With ``"auto"``, Tukey's fence ``Q3 + 1.5 * IQR`` on the
        leave-one-out training anomaly scores (negated), as in
        :class:`~skcpcae.outlier.KNNAnomalyScorer`.
    n_jobs : int, default=None
        Parallel jobs for the neighbour search (:class:`~sklearn.neighbors.NearestNeighbors`).
    image_size : int or tuple of (int, int), default="deprecated"
        Former name of ``input_size``.

        .. deprecated:: 0.1
           ``image_size`` is renamed ``input_size`` and will be removed in 0.2.

    Attributes
    ----------
    references_ : ndarray of shape (n_samples, n_values)
        The (downsized) training images, flattened; the search space of ``nn_``.
    nn_ : sklearn.neighbors.NearestNeighbors
        Fitted on ``references_``.
    search_shape_ : tuple of int
        Shape of one (downsized) image, ``(height, width[, channels])``.
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
    VariationDetector : Per-pixel z-scores against the normal set.
    PatchCoreDetector : Nearest neighbour of local CNN features instead of whole images.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> from skcpcae.baselines import NearestImageDetector
    >>> from skcpcae.datasets import make_parts
    >>> X, y = make_parts(20, n_anomalies=3, size=(32, 32), random_state=0)
    >>> det = NearestImageDetector().fit(X[:20])
    >>> det.predict(X[20:])
    array([-1, -1, -1])
    >>> det.anomaly_map(X[20:]).shape
    (3, 32, 32)
    """

    _parameter_constraints: dict = {
        "input_size": [None, Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "image_size": [
            None, Interval(numbers.Integral, 1, None, closed="left"), tuple, list,
            StrOptions({"deprecated"}),
        ],
        "contamination": CONTAMINATION_CONSTRAINT,
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(
        self, input_size=None, *, contamination="auto", n_jobs=None, image_size="deprecated"
    ):
        self.input_size = input_size
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.image_size = image_size

    def __setstate__(self, state):
        # model files written before image_size was renamed input_size
        super().__setstate__(rename_in_state(state, "image_size", "input_size"))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Store the (downsized) normal images and score them leave-one-out.

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
        # warn_deprecated < resolve_renamed < fit < _fit_context < caller
        size = _check_input_size(
            resolve_renamed(self, "image_size", "input_size", default=None, stacklevel=5)
        )
        images, _ = validate_images(self, X, reset=True)
        small = images if size is None else _resize(images, size)
        self.search_shape_ = tuple(small.shape[1:])
        self.references_ = np.ascontiguousarray(small.reshape(small.shape[0], -1))
        self.nn_ = NearestNeighbors(n_neighbors=1, n_jobs=self.n_jobs).fit(self.references_)
        if images.shape[0] > 1:
            dist, _ = self.nn_.kneighbors(None)  # excludes each image itself
            self.negative_outlier_score_ = -np.square(dist[:, 0].astype(np.float64))
        else:
            self.negative_outlier_score_ = np.zeros(1)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the squared L2 distance to the nearest training image.

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
        dist, _ = self.nn_.kneighbors(self._flat(images))
        return -np.square(dist[:, 0].astype(np.float64))

    def anomaly_map(self, X):
        """Per-pixel squared difference to the nearest training image (higher = worse).

        Summed over channels; computed at ``input_size`` and upsampled (bilinear) to the input
        size when ``input_size`` is set.

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
        h, w = images.shape[1:3]
        maps = np.empty(images.shape[:3], np.float32)
        for sl in iter_batches(images.shape[0], _CHUNK):
            flat = self._flat(images[sl])
            _, idx = self.nn_.kneighbors(flat)
            diff = np.square(flat - self.references_[idx[:, 0]])
            diff = diff.reshape((diff.shape[0],) + self.search_shape_)
            if diff.ndim == 4:
                diff = diff.sum(axis=-1)
            if diff.shape[1:] != (h, w):
                diff = np.stack(
                    [cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) for d in diff]
                )
            maps[sl] = diff
        return restore_layout(maps, was_2d)

    def _flat(self, images):
        small = _resize(images, self.search_shape_[:2])
        return small.reshape(small.shape[0], -1)
