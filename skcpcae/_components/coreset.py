# SPDX-License-Identifier: BSD-3-Clause
"""Coreset selection of memory-bank rows: greedy k-center (PatchCore) or uniform random.

As anomalib's ``models/components/sampling/k_center_greedy.py``: plain functions on arrays,
no estimator. Both return sorted row indices, so a memory bank keeps the order of its rows.
"""

import numpy as np
from sklearn.utils import check_random_state

from .surgery import torch_threads

__all__ = ["greedy_coreset", "greedy_kcenter", "random_coreset", "select_coreset"]

#: The greedy coreset runs on a random projection of the features to this many dimensions...
CORESET_DIM = 32
#: ...on random chunks of at most this many rows (one selection per chunk).
CORESET_CHUNK = 50_000


def greedy_kcenter(z, n_select, start):
    """Greedy k-center (farthest-point) selection on the rows of the tensor ``z``.

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, n_features)
        Rows to select from.
    n_select : int
        Number of rows to select, at most ``n_samples``.
    start : int
        Index of the first selected row.

    Returns
    -------
    indices : ndarray of shape (n_select,), int64
        In selection order: ``start`` first, then each time the row farthest from those
        already selected (Sener & Savarese 2018).
    """
    import torch

    n = z.shape[0]
    sqnorm = (z * z).sum(1)
    min_d2 = torch.full((n,), float("inf"), dtype=z.dtype)
    selected = np.empty(n_select, dtype=np.int64)
    idx = int(start)
    for i in range(n_select):
        selected[i] = idx
        d2 = torch.addmv(sqnorm + sqnorm[idx], z, z[idx], alpha=-2.0)
        torch.minimum(min_d2, d2, out=min_d2)
        min_d2[idx] = -1.0  # never pick a selected row again (guards against ties at 0)
        idx = int(torch.argmax(min_d2))
    return selected


def greedy_coreset(features, n_select, *, random_state=None, n_dims=CORESET_DIM,
                   chunk_size=CORESET_CHUNK):
    """Indices of a greedy k-center coreset of the rows of ``features``.

    The rows are projected to ``n_dims`` random Gaussian directions (as PatchCore does, to
    speed up the distance computations), randomly split into chunks of at most
    ``chunk_size`` rows, and each chunk contributes its share of ``n_select`` rows by greedy
    farthest-point selection (a composable coreset: the union of per-chunk greedy centres,
    Indyk et al. 2014); with at most ``chunk_size`` rows this is exactly PatchCore's greedy
    selection. The loop runs with one torch thread (it is made of thousands of small steps,
    see :func:`~skcpcae._components.surgery.torch_threads`).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Rows to select from (patch features).
    n_select : int
        Number of rows to keep (clipped to ``[1, n_samples]``).
    random_state : int, RandomState instance or None, default=None
        Projection, chunking and starting points.
    n_dims : int, default=32
        Dimension of the random projection (no projection when ``n_features`` is smaller).
    chunk_size : int, default=50000
        Largest number of rows handled by one greedy selection.

    Returns
    -------
    indices : ndarray of shape (n_select,), int64
        Sorted row indices.
    """
    import torch

    rng = check_random_state(random_state)
    features = np.asarray(features, dtype=np.float32)
    n, d = features.shape
    n_select = int(min(max(n_select, 1), n))
    if d > n_dims:
        proj = rng.normal(size=(d, n_dims)).astype(np.float32) / np.float32(np.sqrt(n_dims))
        z = features @ proj
    else:
        z = features
    z = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    n_chunks = -(-n // chunk_size)
    parts = np.array_split(rng.permutation(n), n_chunks)
    # Largest-remainder apportionment of n_select over the chunks.
    quota = np.array([n_select * len(p) / n for p in parts])
    counts = np.floor(quota).astype(int)
    for i in np.argsort(counts - quota)[: n_select - counts.sum()]:
        counts[i] += 1
    selected = []
    with torch_threads(1):
        for part, k in zip(parts, counts, strict=True):
            if k == 0:
                continue
            local = greedy_kcenter(z[torch.from_numpy(part)], int(k), rng.randint(len(part)))
            selected.append(part[local])
    return np.sort(np.concatenate(selected))


def random_coreset(n_samples, n_select, *, random_state=None):
    """Sorted indices of ``n_select`` rows out of ``n_samples``, uniformly without replacement.

    Parameters
    ----------
    n_samples : int
        Number of rows to select from.
    n_select : int
        Number of rows to keep, at most ``n_samples``.
    random_state : int, RandomState instance or None, default=None
        The draw.

    Returns
    -------
    indices : ndarray of shape (n_select,), int64
    """
    rng = check_random_state(random_state)
    return np.sort(rng.choice(n_samples, n_select, replace=False))


def select_coreset(features, ratio, *, method="greedy", random_state=None):
    """Rows of a memory bank to keep: ``round(ratio * n_samples)`` of them (at least 1).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        The full memory bank.
    ratio : float in (0, 1]
        Fraction of the rows kept.
    method : {"greedy", "random"} or None, default="greedy"
        :func:`greedy_coreset`, :func:`random_coreset`, or ``None`` to keep every row.
    random_state : int, RandomState instance or None, default=None
        Passed to the selection.

    Returns
    -------
    indices : ndarray of shape (n_keep,), int64
        Sorted row indices (all rows when ``method`` is None or ``ratio`` keeps them all).
    """
    n_total = len(features)
    n_keep = max(1, int(round(ratio * n_total)))
    if method is None or n_keep >= n_total:
        return np.arange(n_total)
    if method == "random":
        return random_coreset(n_total, n_keep, random_state=random_state)
    if method == "greedy":
        return greedy_coreset(features, n_keep, random_state=random_state)
    raise ValueError(f"method must be 'greedy', 'random' or None, got {method!r}.")
