# SPDX-License-Identifier: BSD-3-Clause
"""Position-conditioned patch k-NN: each patch is compared with the same place on normal parts."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._base import (
    CONTAMINATION_CONSTRAINT,
    OutlierScoresMixin,
    image_tags,
    iter_batches,
    offset_from_scores,
    restore_layout,
    validate_images,
)

__all__ = ["PatchKNNScorer", "local_patch_distances"]

# Bytes of one block of the (positions x queries x training images) distance tensor.
_BLOCK_BYTES = 128 * 2**20


def local_patch_distances(queries, memory, *, n_neighbors=1, radius=0, exclude=None):
    """Distance of every query patch to its nearest patches at the same place in ``memory``.

    The patch of a query at position ``(i, j)`` is compared with the patches of every
    ``memory`` map at the positions ``(i + di, j + dj)``, ``|di|, |dj| <= radius`` (inside
    the grid); its distance is the mean Euclidean distance to the ``n_neighbors`` nearest.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, h, w, d)
        Patch features of the maps to score.
    memory : ndarray of shape (n_memory, h, w, d)
        Patch features of the normal maps.
    n_neighbors : int, default=1
        Nearest memory patches averaged (clipped to the number of candidates).
    radius : int, default=0
        Positions around the query's own one that count as "the same place".
    exclude : ndarray of shape (n_queries,) of int or None, default=None
        For each query, the index of a memory map it must not match (leave-one-out scores of
        the training maps); ``-1`` for none.

    Returns
    -------
    distances : ndarray of shape (n_queries, h, w), float32
    """
    import torch

    q, t = _tensor(queries), _tensor(memory)
    m, h, w, d = q.shape
    n = t.shape[0]
    n_cand = n * (2 * radius + 1) ** 2
    k = max(1, min(int(n_neighbors), n_cand - (1 if exclude is not None else 0)))
    qp = q.permute(1, 2, 0, 3)  # (h, w, m, d)
    tp = t.permute(1, 2, 0, 3)  # (h, w, n, d)
    q_sq = (qp * qp).sum(-1)
    t_sq = (tp * tp).sum(-1)
    rows = cols = None
    if exclude is not None:
        excl = torch.as_tensor(np.asarray(exclude), dtype=torch.long)
        rows = torch.nonzero(excl >= 0)[:, 0]
        cols = excl[rows]
    best = torch.full((h, w, m, k), float("inf"))
    for di in range(-radius, radius + 1):
        for dj in range(-radius, radius + 1):
            i0, i1 = max(0, -di), min(h, h - di)
            j0, j1 = max(0, -dj), min(w, w - dj)
            if i0 >= i1 or j0 >= j1:
                continue
            a = qp[i0:i1, j0:j1].reshape(-1, m, d)
            b = tp[i0 + di:i1 + di, j0 + dj:j1 + dj].reshape(-1, n, d)
            d2 = torch.baddbmm(
                q_sq[i0:i1, j0:j1].reshape(-1, m, 1)
                + t_sq[i0 + di:i1 + di, j0 + dj:j1 + dj].reshape(-1, 1, n),
                a, b.transpose(1, 2), alpha=-2.0,
            )
            if rows is not None:
                d2[:, rows, cols] = float("inf")
            cand = torch.topk(d2, min(k, n), dim=2, largest=False).values
            cur = best[i0:i1, j0:j1].reshape(-1, m, k)
            merged = torch.topk(torch.cat([cur, cand], dim=2), k, dim=2, largest=False).values
            best[i0:i1, j0:j1] = merged.reshape(i1 - i0, j1 - j0, m, k)
    dist = best.clamp_min_(0).sqrt_()
    # a border patch of a tiny training set can have fewer than k candidates: average those
    finite = torch.isfinite(dist)
    dist = torch.where(finite, dist, 0.0).sum(-1) / finite.sum(-1).clamp_min(1)
    return dist.permute(2, 0, 1).contiguous().numpy()


class PatchKNNScorer(OutlierScoresMixin, OutlierMixin, BaseEstimator):
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
    is not set from in-sample distances, which are zero.

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

    def anomaly_map(self, X):
        """Distance of every patch to the same place on normal parts (higher = worse).

        Parameters
        ----------
        X : array-like of shape (n_samples, h, w[, d]) or (n_samples, n_features)

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


def _tensor(a):
    """float32 torch view of ``a`` (a copy when ``a`` is read-only: torch needs writable)."""
    import torch

    a = np.ascontiguousarray(a, dtype=np.float32)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)
