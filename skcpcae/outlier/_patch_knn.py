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
from .._components.knn import BLOCK_BYTES, local_patch_distances
from .._components.scale import MIN_SCALE, floored_scale
from ..utils.fixes import Interval, StrOptions
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

    Three options refine the image score (all off by default; the ``best`` preset sets
    them, chosen on validation data by ``benchmarks/select_patch_ideas.py``):

    * ``n_retrieve`` (CPR-style retrieval): each map is compared only with the
      ``n_retrieve`` training maps whose mean patch feature is nearest to its own, so a
      patch is judged against the normal parts that look most like this one as a whole
      (on ELPV, poly cells of similar grain), and scoring gets faster;
    * ``global_weight``: the image score becomes
      ``(1 - w) * z(patch score) + w * z(global score)``, the global score being the mean
      distance of the map's mean patch feature to its ``n_neighbors`` nearest training ones
      and ``z`` the standardisation by the leave-one-out scores of the training maps;
    * ``position_norm="zscore"``: every patch distance is standardised by the mean and
      standard deviation of the training maps' leave-one-out distances *at its position*,
      so that places where normal parts vary a lot (on ELPV, busbars and cell edges) do not
      outweigh quiet ones in the image score, and the anomaly map is in units of that
      place's normal spread.

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
    n_retrieve : int or None, default=None
        Training maps each map is compared with: those whose mean patch feature is nearest
        to its own. ``None``: all of them.
    global_weight : float in [0, 1], default=0.0
        Weight of the global score in the image score (see above); 0 keeps the patch score
        as it is (not standardised).
    position_norm : {"zscore"} or None, default=None
        Standardise each patch distance by its position's leave-one-out training
        distances (see above; the standard deviation is floored at a tenth of its median
        over the positions that vary, as in ``FlooredStandardScaler``); ``None``: raw distances.
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
    global_features_ : ndarray of shape (n_samples, d), float32
        Mean patch feature of every training map (retrieval and global score).
    position_center_, position_scale_ : ndarray of shape (h, w), float32
        Mean and (floored) standard deviation of the training maps' leave-one-out patch
        distances at each position, used by ``position_norm`` (zeros and ones when it is
        None).
    score_center_, score_scale_ : ndarray of shape (2,)
        Mean and standard deviation of the leave-one-out patch and global scores of the
        training maps, used by ``global_weight`` (``[0, 0]`` and ``[1, 1]`` when it is 0).
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
        "n_retrieve": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "global_weight": [Interval(numbers.Real, 0, 1, closed="both")],
        "position_norm": [StrOptions({"zscore"}), None],
        "contamination": CONTAMINATION_CONSTRAINT,
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=1, *, radius=0, top_k=10, n_retrieve=None,
                 global_weight=0.0, position_norm=None, contamination="auto", batch_size=32):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.top_k = top_k
        self.n_retrieve = n_retrieve
        self.global_weight = global_weight
        self.position_norm = position_norm
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
        self.global_features_ = _mean_features(self.memory_)
        n = self.memory_.shape[0]
        n_maps = n - 1 if self.n_retrieve is None else min(n - 1, int(self.n_retrieve))
        n_cand = n_maps * (2 * self.radius + 1) ** 2
        k = max(1, min(self.n_neighbors, n_cand))
        if k < self.n_neighbors:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is larger than the {n_cand} candidate "
                f"patches of the other training maps (n_retrieve={self.n_retrieve}); "
                f"using n_neighbors={k}.",
                UserWarning,
                stacklevel=2,
            )
        self.n_neighbors_ = k
        self.score_center_, self.score_scale_ = np.zeros(2), np.ones(2)
        grid = self.memory_.shape[1:3]
        self.position_center_ = np.zeros(grid, np.float32)
        self.position_scale_ = np.ones(grid, np.float32)
        if n > 1:
            loo = np.empty(self.memory_.shape[:3], np.float32)
            for sl in iter_batches(n, self.batch_size):
                loo[sl] = self._distances(self.memory_[sl], self.global_features_[sl], own=sl)
            if self.position_norm == "zscore":
                self._fit_positions(loo)
            patch = self._reduce(self._normalize(loo))
            if self.global_weight > 0:
                glob = self._global_scores(self.global_features_, own=slice(0, n))
                for i, s in enumerate((patch, glob)):
                    self.score_center_[i] = s.mean()
                    self.score_scale_[i] = s.std() if s.std() > 0 else 1.0
                patch = self._fuse(patch, glob)
            self.negative_outlier_score_ = -patch
        else:
            self.negative_outlier_score_ = np.zeros(1)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the mean of the ``top_k`` largest patch distances.

        The distances are standardised per position with ``position_norm``, and the result
        is fused with the global score with ``global_weight``.

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w[, d]) or (n_samples, n_features)
            Maps of the fitted shape.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        patch, _, features = self._patch_distances(X)
        score = self._reduce(patch)
        if self.global_weight > 0:
            score = self._fuse(score, self._global_scores(features))
        return -score

    def loo_score_samples(self, *, standardize=False):
        """Leave-one-out ``score_samples`` of the training maps.

        Each training map is scored against all the other maps (a memory of
        ``n_samples - 1`` maps, exactly what a scorer refitted without it would use; with
        ``position_norm``, the position statistics are those of all training maps, one of
        which is the map itself): ``negative_outlier_score_``. These are the out-of-sample training scores that
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

        With ``position_norm="zscore"``, in units of that place's spread on normal parts
        (0: a typical normal patch there).

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w[, d]) or (n_samples, n_features)
            Patch features (a table is read as one-pixel-high maps).

        Returns
        -------
        maps : ndarray of shape (n_samples, h, w), float32
            ``(n_samples, n_features)`` when ``X`` is a table.
        """
        patch, was_2d, _ = self._patch_distances(X)
        return restore_layout(patch, was_2d)

    def map_threshold(self, threshold):
        """An image threshold expressed in the units of :meth:`anomaly_map`.

        With ``global_weight=0`` the image score is the mean of the worst patch distances,
        in the map's units, so the threshold is returned as it is. With a global score, the
        image score is ``(1 - w) * z(patch score) + w * z(global score)``: the returned value
        is the patch score that reaches ``threshold`` for a part whose global score is the
        training parts' average (``z(global) = 0``), the level at which a patch alone makes
        a typical part defective. ``skcpcae.inspect_images`` uses it as the
        maps' threshold (defect areas and boxes of ``skcpcae score --locations``).

        Parameters
        ----------
        threshold : float
            Threshold on the anomaly score (``-score_samples``; higher = worse).

        Returns
        -------
        map_threshold : float or None
            None when ``global_weight=1`` (the patches do not enter the image score).
        """
        check_is_fitted(self)
        w = float(self.global_weight)
        if w == 0:
            return float(threshold)
        if w >= 1:
            return None
        return float(self.score_center_[0] + self.score_scale_[0] * threshold / (1 - w))

    def __sklearn_tags__(self):
        return image_tags(super().__sklearn_tags__())

    # -- private helpers --------------------------------------------------------------------

    def _fit_positions(self, loo):
        """``position_center_`` / ``position_scale_`` from the ``(n, h, w)`` LOO distances."""
        center = loo.mean(axis=0, dtype=np.float64)
        std = loo.std(axis=0, dtype=np.float64).reshape(1, -1)
        # the presets' scaler floor: a tenth of the median spread of the places that vary
        scale = floored_scale(std, std == 0, MIN_SCALE).reshape(center.shape)
        self.position_center_ = center.astype(np.float32)
        self.position_scale_ = scale.astype(np.float32)

    def _normalize(self, patch):
        """Patch distances ``(n, h, w)`` standardised per position (in place; float32)."""
        if getattr(self, "position_norm", None) is None:
            return patch
        patch -= self.position_center_
        patch /= self.position_scale_
        return patch

    def _loo_supported(self, standardize):
        """Whether :meth:`loo_score_samples` can give these scores."""
        return not standardize

    def _patch_distances(self, X):
        """``(n, h, w)`` patch distances of ``X`` (standardised per position with
        ``position_norm``), whether it was a table, and the maps' mean patch features
        (float32, as ``global_features_``)."""
        check_is_fitted(self)
        maps, was_2d = validate_images(self, X, reset=False)
        queries = _as_4d(maps)
        out = np.empty(queries.shape[:3], np.float32)
        features = np.empty((len(queries), queries.shape[-1]), np.float32)
        for sl in iter_batches(len(queries), self.batch_size):
            features[sl] = _mean_features(queries[sl])
            out[sl] = self._normalize(self._distances(queries[sl], features[sl]))
        return out, was_2d, features

    def _distances(self, queries, features, own=None):
        """Patch distances of ``queries`` (mean patch features ``features``); ``own``: the
        slice of the memory they are (leave-one-out)."""
        exclude = None if own is None else np.arange(own.start, own.stop)
        kwargs = dict(n_neighbors=self.n_neighbors_, radius=int(self.radius))
        n = len(self.memory_)
        if self.n_retrieve is None or int(self.n_retrieve) >= n - (own is not None):
            return local_patch_distances(queries, self.memory_, exclude=exclude, **kwargs)
        near = self._retrieve(features, exclude)
        out = np.empty(queries.shape[:3], np.float32)
        direct = int(self.radius) == 0 and self.memory_[0].nbytes * near.shape[1] <= BLOCK_BYTES
        for i, idx in enumerate(near):
            maps = self.memory_[idx]
            got = _same_place_distances(queries[i], maps, self.n_neighbors_) if direct else None
            if got is None:  # radius > 0, a large block, or an overflow the kernel reports
                got = local_patch_distances(queries[i:i + 1], maps, **kwargs)[0]
            out[i] = got
        return out

    def _global_sq_distances(self, features, exclude=None, train=None):
        """Squared distances of mean patch features to the training ones, own map at inf.

        ``||f||^2 - 2 f.g + ||g||^2`` in float64 (no ``(n, n_train, d)`` difference array);
        ``train``: ``global_features_`` in float64 when the caller has it already.
        """
        f = np.asarray(features, np.float64)
        g = self.global_features_.astype(np.float64) if train is None else train
        d2 = (f * f).sum(1)[:, None] - 2.0 * (f @ g.T) + (g * g).sum(1)[None]
        np.maximum(d2, 0.0, out=d2)
        if exclude is not None:
            d2[np.arange(len(d2)), exclude] = np.inf
        return d2

    def _retrieve(self, features, exclude=None):
        """Indices (sorted) of the ``n_retrieve`` training maps nearest to each query."""
        d2 = self._global_sq_distances(features, exclude)
        near = np.argpartition(d2, int(self.n_retrieve) - 1, axis=1)[:, :int(self.n_retrieve)]
        return np.sort(near, axis=1)

    def _global_scores(self, features, own=None):
        """Mean distance of each mean patch feature to its ``n_neighbors_`` nearest."""
        out = np.empty(len(features))
        train = self.global_features_.astype(np.float64)
        for sl in iter_batches(len(features), max(self.batch_size, 256)):
            exclude = None if own is None else np.arange(own.start + sl.start,
                                                         own.start + sl.stop)
            d2 = self._global_sq_distances(features[sl], exclude, train)
            k = min(self.n_neighbors_, d2.shape[1] - (exclude is not None))
            out[sl] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k]).mean(axis=1)
        return out

    def _fuse(self, patch, glob):
        """``(1 - w) * z(patch) + w * z(global)``, standardised by the training scores."""
        w = float(self.global_weight)
        z = [(s - c) / sc for s, c, sc in zip((patch, glob), self.score_center_,
                                                self.score_scale_, strict=True)]
        return (1 - w) * z[0] + w * z[1]

    def _reduce(self, patch):
        flat = patch.reshape(patch.shape[0], -1).astype(np.float64)
        k = min(int(self.top_k), flat.shape[1])
        return np.sort(flat, axis=1)[:, -k:].mean(axis=1)


def _same_place_distances(query, maps, n_neighbors):
    """``(h, w)`` mean distance of each patch of ``query`` to its nearest at the same place.

    ``radius=0`` against a few retrieved maps: one direct ``||q - m||`` per map and place
    (exact, no ranking by the expanded product), three to four times faster than a call of
    the general kernel per query. ``None`` when a distance overflows.
    """
    import torch

    with torch.inference_mode():
        d = (torch.from_numpy(np.ascontiguousarray(maps))
             - torch.from_numpy(np.ascontiguousarray(query))).square_().sum(-1).sqrt_()
        out = torch.topk(d, n_neighbors, dim=0, largest=False).values.mean(0)
        if not bool(torch.isfinite(out).all()):
            return None
        return out.numpy().astype(np.float32, copy=False)


def _mean_features(maps):
    """Mean patch feature of each ``(n, h, w, d)`` map, summed in float64, kept in float32."""
    return maps.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)


def _as_4d(maps):
    """``(n, h, w)`` or ``(n, h, w, d)`` -> ``(n, h, w, d)`` (a table is one row of pixels)."""
    if maps.ndim == 3:
        return maps[..., None]
    return maps

