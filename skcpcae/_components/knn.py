# SPDX-License-Identifier: BSD-3-Clause
"""The memory-bank k-NN kernel: exact, batched, bounded memory.

One kernel, ``knn_search``, serves every nearest-neighbour search over patch features:

* PatchCore's global memory bank (one bank, all training patches or a coreset), through
  :func:`mean_knn_distance`;
* the position-conditioned search of :class:`~skcpcae.outlier.PatchKNNScorer` (one small bank
  per grid position, searched for every position at once along the leading *batch* axis),
  through :func:`local_patch_distances`.

Leave-one-out scoring is expressed by *groups*: a query never matches a bank row of its own
group (the image it comes from).

Backends. :class:`ExactSearch` wraps the kernel behind the interface an approximate index
implements (faiss's ``index.search(queries, k) -> (distances, indices)``, here with Euclidean
rather than squared distances, ``inf`` / ``-1`` where a query has fewer than ``k``
candidates, and optional groups). An approximate backend registers in :data:`BACKENDS` and is
chosen with :func:`make_search`; the estimators build their search through it.
"""

import numpy as np

from .scale import floored_scale

__all__ = [
    "BACKENDS",
    "ExactSearch",
    "knn_search",
    "local_patch_distances",
    "loo_sq_distances",
    "make_search",
    "mean_knn_distance",
]

#: Bytes of one block of the query x bank squared-distance matrix (bounded memory).
BLOCK_BYTES = 64 * 2**20


def knn_search(queries, bank, n_neighbors=1, *, query_groups=None, bank_groups=None,
               block_bytes=BLOCK_BYTES):
    """Exact ``n_neighbors`` nearest bank rows of every query row, block by block.

    Candidates are ranked by ``||b||^2 - 2 q.b`` (a matrix product; ``||q||^2`` is constant
    per query), computed for at most ``block_bytes`` of the query x bank matrix at a time,
    in float32, on the device of ``bank``. The distances of the selected rows are then
    recomputed exactly as ``||q - b||`` (the expansion loses precision when distances are
    small compared with the feature norms) and sorted.

    Parameters
    ----------
    queries : torch.Tensor of shape (n_queries, n_features) or (n_batch, n_queries, n_features)
        Query rows. With a leading batch axis, problem ``i`` searches ``queries[i]`` in
        ``bank[i]`` (e.g. one problem per grid position).
    bank : torch.Tensor of shape (n_bank, n_features) or (n_batch, n_bank, n_features)
        Memory bank rows, with the same number of axes as ``queries``.
    n_neighbors : int, default=1
        Number of neighbours returned.
    query_groups, bank_groups : torch.Tensor of shape (n_queries,) and (n_bank,) or None
        Integer group labels, shared by every problem of the batch; a query never matches a
        bank row of its own group (leave-one-out). Fastest when ``bank_groups`` is sorted
        and equal query groups are consecutive.
    block_bytes : int, default=64 MiB
        Largest block of the squared-distance matrix held at once.

    Returns
    -------
    distances : torch.Tensor of shape (..., n_queries, n_neighbors), float32
        Euclidean distances, ascending; ``inf`` where a query has fewer candidates.
    indices : torch.Tensor of shape (..., n_queries, n_neighbors), int64
        Bank rows of the neighbours; ``-1`` where ``distances`` is ``inf``.
    """
    import torch

    if (query_groups is None) != (bank_groups is None):
        raise ValueError("query_groups and bank_groups must be given together.")
    if queries.ndim != bank.ndim or queries.ndim not in (2, 3):
        raise ValueError(
            f"queries and bank must both be 2-D (rows, features) or 3-D (batch, rows, "
            f"features); got shapes {tuple(queries.shape)} and {tuple(bank.shape)}."
        )
    squeeze = queries.ndim == 2
    if squeeze:
        queries, bank = queries[None], bank[None]
    if queries.shape[0] != bank.shape[0] or queries.shape[2] != bank.shape[2]:
        raise ValueError(
            f"queries {tuple(queries.shape)} and bank {tuple(bank.shape)} differ in batch "
            "size or number of features."
        )
    n_batch, m, _ = queries.shape
    n = bank.shape[1]
    k = int(n_neighbors)
    if k < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors!r}.")
    kk = min(k, n)
    device = bank.device
    dist = torch.full((n_batch, m, k), float("inf"), dtype=torch.float32, device=device)
    index = torch.full((n_batch, m, k), -1, dtype=torch.long, device=device)
    if kk > 0 and m > 0:
        bank_sq = (bank * bank).sum(-1)
        sorted_bank = bank_groups is not None and bool(
            torch.all(bank_groups[1:] >= bank_groups[:-1])
        )
        rows = max(1, min(m, block_bytes // (4 * n)))
        probs = max(1, min(n_batch, block_bytes // (4 * n * rows)))
        for p0 in range(0, n_batch, probs):
            b = bank[p0 : p0 + probs]
            for r0 in range(0, m, rows):
                q = queries[p0 : p0 + probs, r0 : r0 + rows]
                if q.shape[0] == 1:  # one problem: a plain matrix product
                    d2 = torch.addmm(bank_sq[p0][None, :], q[0], b[0].T, alpha=-2.0)[None]
                else:
                    d2 = torch.baddbmm(bank_sq[p0 : p0 + probs, None, :], q,
                                       b.transpose(1, 2), alpha=-2.0)
                if query_groups is not None:
                    _mask_own_groups(d2, query_groups[r0 : r0 + rows], bank_groups,
                                     sorted_bank)
                if kk == 1:
                    idx = d2.argmin(-1, keepdim=True)
                    valid = torch.isfinite(torch.gather(d2, -1, idx))
                else:
                    cand, idx = torch.topk(d2, kk, dim=-1, largest=False)
                    valid = torch.isfinite(cand)
                rows_of = torch.arange(b.shape[0], device=device)[:, None, None]
                diff = q[:, :, None, :] - b[rows_of, idx]
                exact = (diff * diff).sum(-1).sqrt_()
                exact = torch.where(valid, exact, float("inf"))
                exact, order = exact.sort(-1)
                idx = torch.where(torch.isfinite(exact), torch.gather(idx, -1, order), -1)
                dist[p0 : p0 + probs, r0 : r0 + rows, :kk] = exact
                index[p0 : p0 + probs, r0 : r0 + rows, :kk] = idx
    if squeeze:
        return dist[0], index[0]
    return dist, index


def _mask_own_groups(d2, query_groups, bank_groups, sorted_bank):
    """Set to ``inf`` the squared distances of each query to the bank rows of its group."""
    import torch

    if sorted_bank:  # blank out each run of equal query groups' own bank rows
        values, counts = torch.unique_consecutive(query_groups, return_counts=True)
        lo = torch.searchsorted(bank_groups, values, right=False).tolist()
        hi = torch.searchsorted(bank_groups, values, right=True).tolist()
        r0 = 0
        for c, a, b in zip(counts.tolist(), lo, hi, strict=True):
            d2[:, r0 : r0 + c, a:b] = float("inf")
            r0 += c
    else:
        d2.masked_fill_((query_groups[:, None] == bank_groups[None, :])[None], float("inf"))


def mean_knn_distance(queries, bank, n_neighbors=1, *, query_groups=None, bank_groups=None,
                      block_bytes=BLOCK_BYTES):
    """Mean Euclidean distance of each query row to its ``n_neighbors`` nearest bank rows.

    ``knn_search``, averaged over the neighbours (PatchCore's patch score).

    Parameters
    ----------
    queries : torch.Tensor of shape (n_queries, n_features)
        Query rows (patch features of the images to score).
    bank : torch.Tensor of shape (n_bank, n_features)
        Memory bank rows.
    n_neighbors : int, default=1
        Number of nearest bank rows whose distances are averaged.
    query_groups, bank_groups : torch.Tensor of shape (n_queries,) and (n_bank,) or None
        Leave-one-out groups, as in ``knn_search``.
    block_bytes : int, default=64 MiB
        Largest block of the distance matrix held at once.

    Returns
    -------
    distances : torch.Tensor of shape (n_queries,)
        ``inf`` for a query with fewer than ``n_neighbors`` candidates.
    """
    dist, _ = knn_search(queries, bank, n_neighbors, query_groups=query_groups,
                         bank_groups=bank_groups, block_bytes=block_bytes)
    return dist.mean(-1)


class ExactSearch:
    """Exact k-NN search over a fixed memory bank (the default backend).

    The interface of an approximate index (faiss-like): built once on the bank, then
    :meth:`search` answers batches of queries.

    Parameters
    ----------
    bank : torch.Tensor of shape (n_bank, n_features)
        Memory bank rows (kept by reference, not copied).
    groups : torch.Tensor of shape (n_bank,) or None, default=None
        Group labels of the bank rows, for leave-one-out searches.
    block_bytes : int, default=64 MiB
        Largest block of the distance matrix held at once.
    """

    exact = True

    def __init__(self, bank, *, groups=None, block_bytes=BLOCK_BYTES):
        self.bank = bank
        self.groups = groups
        self.block_bytes = block_bytes

    def search(self, queries, n_neighbors, *, groups=None):
        """Nearest bank rows of ``queries``: ``(distances, indices)`` as ``knn_search``.

        ``groups`` (of the queries) needs the bank's ``groups``; without them no row is
        excluded.
        """
        if groups is not None and self.groups is None:
            raise ValueError("Query groups need a bank built with groups.")
        bank_groups = self.groups if groups is not None else None
        return knn_search(queries, self.bank, n_neighbors, query_groups=groups,
                          bank_groups=bank_groups, block_bytes=self.block_bytes)


#: Search backends by name: ``name -> class(bank, *, groups=None)`` with a ``search`` method.
BACKENDS = {"exact": ExactSearch}


def make_search(bank, *, backend="exact", groups=None):
    """A search index over ``bank`` from the backend named ``backend`` (see :data:`BACKENDS`)."""
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"Unknown k-NN backend {backend!r}; available: {sorted(BACKENDS)}."
        ) from None
    return cls(bank, groups=groups)


def local_patch_distances(queries, memory, *, n_neighbors=1, radius=0, exclude=None,
                          block_bytes=BLOCK_BYTES):
    """Distance of every query patch to its nearest patches at the same place in ``memory``.

    The patch of a query at position ``(i, j)`` is compared with the patches of every
    ``memory`` map at the positions ``(i + di, j + dj)``, ``|di|, |dj| <= radius`` (inside
    the grid); its distance is the mean Euclidean distance to the ``n_neighbors`` nearest.
    Each offset ``(di, dj)`` is one batched call of ``knn_search`` (one problem per grid
    position), merged into the best ``n_neighbors`` so far.

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
    block_bytes : int, default=64 MiB
        Largest block of the distance matrix held at once.

    Returns
    -------
    distances : ndarray of shape (n_queries, h, w), float32
        Distance of each query patch to its nearest memory patch in the neighbourhood.
    """
    import torch

    q, t = _tensor(queries), _tensor(memory)
    m, h, w, d = q.shape
    n = t.shape[0]
    n_cand = n * (2 * radius + 1) ** 2
    k = max(1, min(int(n_neighbors), n_cand - (1 if exclude is not None else 0)))
    if not (torch.isfinite((q * q).sum(-1)).all() and torch.isfinite((t * t).sum(-1)).all()):
        # an overflowed distance would be dropped below as "no candidate" and read as normal
        raise ValueError(
            "Patch features too large: their squared norms overflow float32 (largest |value| "
            f"{max(float(q.abs().max()), float(t.abs().max())):.3g}). Scale the features "
            "(e.g. StandardScaler) before PatchKNNScorer."
        )
    qp = q.permute(1, 2, 0, 3)  # (h, w, m, d)
    tp = t.permute(1, 2, 0, 3)  # (h, w, n, d)
    groups = {}
    if exclude is not None:
        groups = {"query_groups": torch.as_tensor(np.asarray(exclude), dtype=torch.long),
                  "bank_groups": torch.arange(n)}
    best = torch.full((h, w, m, k), float("inf"))
    for di in range(-radius, radius + 1):
        for dj in range(-radius, radius + 1):
            i0, i1 = max(0, -di), min(h, h - di)
            j0, j1 = max(0, -dj), min(w, w - dj)
            if i0 >= i1 or j0 >= j1:
                continue
            a = qp[i0:i1, j0:j1].reshape(-1, m, d)
            b = tp[i0 + di:i1 + di, j0 + dj:j1 + dj].reshape(-1, n, d)
            cand, _ = knn_search(a, b, min(k, n), block_bytes=block_bytes, **groups)
            cur = best[i0:i1, j0:j1].reshape(-1, m, k)
            merged = torch.topk(torch.cat([cur, cand], dim=2), k, dim=2, largest=False).values
            best[i0:i1, j0:j1] = merged.reshape(i1 - i0, j1 - j0, m, k)
    dist = best
    # every position has at least n (n - 1 when leaving one out) real candidates
    has_candidate = n - (1 if exclude is not None else 0) >= 1
    if torch.isnan(dist).any() or (has_candidate and not torch.isfinite(dist[..., 0]).all()):
        raise ValueError(
            "Patch distances overflow float32: the features are too large; scale them "
            "(e.g. StandardScaler) before PatchKNNScorer."
        )
    # a border patch of a tiny training set can have fewer than k candidates: average those
    finite = torch.isfinite(dist)
    dist = torch.where(finite, dist, 0.0).sum(-1) / finite.sum(-1).clamp_min(1)
    return dist.permute(2, 0, 1).contiguous().numpy()


def loo_sq_distances(X, n_neighbors=1, *, standardize=False, min_scale=0.0,
                     block_bytes=BLOCK_BYTES):
    """Squared Euclidean distances of each row of ``X`` to its nearest *other* rows.

    The leave-one-out search of :class:`~skcpcae.outlier.KNNAnomalyScorer`: row ``i`` is
    compared with the ``n - 1`` other rows, exactly as a new sample is compared with the
    memory bank of a scorer fitted without row ``i``.

    With ``standardize``, row ``i`` is also compared *in the units of a*
    :class:`~sklearn.preprocessing.StandardScaler` *fitted without it*: feature ``j`` is
    divided by the standard deviation (``ddof=0``) of the other rows, ``s_{-i, j}``, so

        ``d2(i, l) = sum_j (X[i, j] - X[l, j])**2 / s_{-i, j}**2``.

    This is the leave-one-out score of ``make_pipeline(StandardScaler(), k-NN)``, computed
    from the data once standardized (standardization is affine per feature, so it does not
    matter whether ``X`` is raw or already standardized on all rows; the mean cancels in
    the differences). A feature that is constant over the other rows keeps the units of
    ``X`` (scale 1, as ``StandardScaler`` does for a zero variance). With ``min_scale``, the
    scales of the other rows are floored as :class:`~skcpcae.preprocessing.FlooredStandardScaler`
    floors them (the floor then also replaces the scale 1 of a constant feature).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training rows (``n_samples >= 2``).
    n_neighbors : int, default=1
        Neighbours returned (clipped to ``n_samples - 1``).
    standardize : bool, default=False
        Re-standardize without each row, as above.
    min_scale : float, default=0.0
        Floor of the leave-one-out scales, a fraction of their median (with ``standardize``).
    block_bytes : int, default=64 MiB
        Largest block of the (rows x rows) distance matrix held at once.

    Returns
    -------
    sq_distances : ndarray of shape (n_samples, min(n_neighbors, n_samples - 1)), float64
        Ascending squared distances.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"Leave-one-out distances need at least 2 rows, got {n}.")
    k = max(1, min(int(n_neighbors), n - 1))
    sq = X * X
    if standardize:
        s1, s2 = X.sum(axis=0), sq.sum(axis=0)
    rows = max(1, min(n, block_bytes // (8 * max(n, k * X.shape[1]))))
    out = np.empty((n, k))
    for r0 in range(0, n, rows):
        xi = X[r0 : r0 + rows]
        if standardize:
            mean = (s1 - xi) / (n - 1)
            var = (s2 - xi * xi) / (n - 1) - mean * mean
            # StandardScaler's rule for a zero variance (scale 1), or the floor
            constant = var <= 10 * np.finfo(np.float64).eps * (s2 / n + 1.0)
            if min_scale:
                scale = floored_scale(np.sqrt(np.maximum(var, 0.0)), constant, min_scale)
                weight = 1.0 / (scale * scale)
            else:
                weight = np.where(constant, 1.0,
                                  1.0 / np.maximum(var, np.finfo(np.float64).tiny))
        else:
            weight = np.ones_like(xi)
        # candidates ranked by the expansion (a matrix product), then recomputed exactly
        wx = weight * xi
        d2 = (wx * xi).sum(axis=1)[:, None] - 2.0 * (wx @ X.T) + weight @ sq.T
        own = np.arange(len(xi))
        d2[own, own + r0] = np.inf
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(d2, 1)[:, :k]
        diff = xi[:, None, :] - X[idx]
        exact = np.einsum("rkd,rkd->rk", diff * weight[:, None, :], diff)
        out[r0 : r0 + len(xi)] = np.sort(exact, axis=1)
    return out


def _tensor(a):
    """float32 torch view of ``a`` (a copy when ``a`` is read-only: torch needs writable)."""
    import torch

    a = np.ascontiguousarray(a, dtype=np.float32)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)
