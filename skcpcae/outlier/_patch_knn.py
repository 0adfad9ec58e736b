# SPDX-License-Identifier: BSD-3-Clause
"""Position-conditioned patch k-NN: each patch is compared with the same place on normal parts."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from .._base import (
    CONTAMINATION_CONSTRAINT,
    OutlierScoresMixin,
    OutOfSampleFitPredictMixin,
    image_tags,
    iter_batches,
    offset_from_scores,
    restore_layout,
    validate_images,
)
from .._components.knn import local_patch_distances
from ..utils.fixes import Interval
from ..utils.fixes import fit_context as _fit_context

__all__ = ["PatchKNNScorer", "local_patch_distances"]

class PatchKNNScorer(
    OutOfSampleFitPredictMixin, OutlierScoresMixin, OutlierMixin, BaseEstimator
):
    """Outlier detector comparing each patch with the same place on normal parts.

    Input: batches of patch-feature maps ``(n, h, w, d)`` (e.g. from
    :class:`~skcpcae.embedding.DeepPatchEmbedder`; plain images work too, one pixel being
    one patch). ``fit`` keeps the maps of the normal parts. A patch at position ``(i, j)``
    of a new map scores its mean distance to the ``n_neighbors`` nearest training patches
    at the positions within ``radius`` of ``(i, j)``: the patch is compared with *what is
    normal at that place*, the conditioning on position that the CPCAE of Saeedi & Giusti
    (2023) gives its autoencoder, here applied to the nearest-neighbour search. The image
    score is the mean of its ``top_k`` largest patch distances (``top_k=1``: the largest,
    as PatchCore); :meth:`score_samples` returns its opposite (higher = more normal) and
    :meth:`anomaly_map` the patch distances.

    This assumes aligned parts (register them first, e.g. with
    :class:`~skcpcae.preprocessing.ECCRegistrar`, or raise ``radius`` to tolerate small
    shifts). Compared with a global patch memory (:class:`~skcpcae.baselines.PatchCoreDetector`)
    each patch is searched among ``n_train * (2 * radius + 1)**2`` candidates instead of
    every training patch, so no coreset is needed and scoring is fast.

    Training maps are scored *leave-one-out* (a map never matches itself), so ``offset_``
    is not set from in-sample distances, which are zero; :meth:`loo_score_samples` returns
    these scores.

    Parameters
    ----------
    n_neighbors : int, default=1
        Nearest training patches whose distances are averaged.
    radius : int, default=0
        Neighbourhood, in grid cells, searched around each patch's own position.
    top_k : int, default=10
        The image score is the mean of this many largest patch distances (clipped to the
        number of patches); 1 gives the largest.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``: with a float, that quantile of the leave-one-out training scores;
        with ``"auto"``, Tukey's fence ``Q3 + 1.5 * IQR`` on the leave-one-out training
        anomaly scores (negated), as in :class:`KNNAnomalyScorer`.
    batch_size : int, default=32
        Maps scored at once (bounded memory).

    Attributes
    ----------
    memory_ : ndarray of shape (n_samples, h, w, d), float32
        The training maps.
    n_neighbors_ : int
        Neighbours actually used.
    negative_outlier_score_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training maps.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    image_shape_ : tuple of int
        ``(h, w[, d])`` of the training maps.
    n_features_in_ : int
        Values per map.

    See Also
    --------
    KNNAnomalyScorer : k-NN on one vector per image (eq. 6 of the paper).
    skcpcae.baselines.PatchCoreDetector : Global patch memory with a coreset.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import PatchKNNScorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 6, 6, 4)).astype(np.float32)
    >>> bad = X[:2] + 0
    >>> bad[:, 2, 3] += 8.0   # one odd patch each
    >>> scorer = PatchKNNScorer(top_k=1).fit(X)
    >>> scorer.predict(np.concatenate([X[:2], bad]))
    array([ 1,  1, -1, -1])
    >>> scorer.anomaly_map(bad).shape
    (2, 6, 6)
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "radius": [Interval(numbers.Integral, 0, None, closed="left")],
        "top_k": [Interval(numbers.Integral, 1, None, closed="left")],
        "contamination": CONTAMINATION_CONSTRAINT,
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=1, *, radius=0, top_k=10, contamination="auto",
                 batch_size=32):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.top_k = top_k
        self.contamination = contamination
        self.batch_size = batch_size

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Keep the normal maps and score them leave-one-out.

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w[, d]) or (n_samples, n_features)
            Patch-feature maps (or images) of normal parts.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted scorer.
        """
        maps, _ = validate_images(self, X, reset=True)
        self.memory_ = _as_4d(maps)
        n = self.memory_.shape[0]
        n_cand = (n - 1) * (2 * self.radius + 1) ** 2
        k = max(1, min(self.n_neighbors, n_cand))
        if k < self.n_neighbors:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is larger than the {n_cand} candidate "
                f"patches of the other training maps; using n_neighbors={k}.",
                UserWarning,
                stacklevel=2,
            )
        self.n_neighbors_ = k
        if n > 1:
            scores = np.empty(n)
            for sl in iter_batches(n, self.batch_size):
                exclude = np.arange(sl.start, sl.stop)
                scores[sl] = self._reduce(self._distances(self.memory_[sl], exclude=exclude))
            self.negative_outlier_score_ = -scores
        else:
            self.negative_outlier_score_ = np.zeros(1)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the mean of the ``top_k`` largest patch distances.

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w[, d]) or (n_samples, n_features)
            Maps of the fitted shape.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        return -self._reduce(self._patch_distances(X)[0])

    def loo_score_samples(self, *, standardize=False):
        """Leave-one-out ``score_samples`` of the training maps.

        Each training map is scored against all the other maps (a memory of
        ``n_samples - 1`` maps, exactly what a scorer refitted without it would use):
        ``negative_outlier_score_``. These are the out-of-sample training scores that
        :class:`~skcpcae.outlier.KDEThresholdClassifier` fits its KDE on (``cv="auto"``),
        in one pass instead of ``cv`` refits.

        Parameters
        ----------
        standardize : bool, default=False
            Not supported (``True`` raises a ``ValueError``): a
            :class:`~sklearn.preprocessing.StandardScaler` in front of this scorer is
            cross-fitted by the wrapper's ``cv`` folds instead.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        check_is_fitted(self)
        if not self._loo_supported(standardize):
            raise ValueError("PatchKNNScorer.loo_score_samples does not support standardize=True.")
        return self.negative_outlier_score_.copy()

    def anomaly_map(self, X):
        """Distance of every patch to the same place on normal parts (higher = worse).

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w[, d]) or (n_samples, n_features)
            Patch features (a table is read as one-pixel-high maps).

        Returns
        -------
        maps : ndarray of shape (n_samples, h, w), float32
            ``(n_samples, n_features)`` when ``X`` is a table.
        """
        patch, was_2d = self._patch_distances(X)
        return restore_layout(patch, was_2d)

    def __sklearn_tags__(self):
        return image_tags(super().__sklearn_tags__())

    # -- private helpers --------------------------------------------------------------------

    def _loo_supported(self, standardize):
        """Whether :meth:`loo_score_samples` can give these scores."""
        return not standardize

    def _patch_distances(self, X):
        """``(n, h, w)`` patch distances of ``X`` and whether it was a table."""
        check_is_fitted(self)
        maps, was_2d = validate_images(self, X, reset=False)
        queries = _as_4d(maps)
        out = np.empty(queries.shape[:3], np.float32)
        for sl in iter_batches(len(queries), self.batch_size):
            out[sl] = self._distances(queries[sl])
        return out, was_2d

    def _distances(self, queries, exclude=None):
        return local_patch_distances(queries, self.memory_, n_neighbors=self.n_neighbors_,
                                     radius=int(self.radius), exclude=exclude)

    def _reduce(self, patch):
        flat = patch.reshape(patch.shape[0], -1).astype(np.float64)
        k = min(int(self.top_k), flat.shape[1])
        return np.sort(flat, axis=1)[:, -k:].mean(axis=1)


def _as_4d(maps):
    """``(n, h, w)`` or ``(n, h, w, d)`` -> ``(n, h, w, d)`` (a table is one row of pixels)."""
    if maps.ndim == 3:
        return maps[..., None]
    return maps

