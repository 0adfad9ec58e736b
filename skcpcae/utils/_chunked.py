# SPDX-License-Identifier: BSD-3-Clause
"""Apply a fitted estimator's method to a large batch in chunks (bounded memory).

A :class:`~sklearn.pipeline.Pipeline` hands the *whole* batch to each step in turn: scoring
2,000 images of 300x300 keeps the registered, gamma-corrected and residual images of all
2,000 (720 MB each in float32) alive at once, so the peak memory grows with the batch.
Every sample's score depends on that sample only (the stages are per image and the scorers
compare each sample with the training set), so scoring a batch chunk by chunk gives the same
scores while holding the intermediate images of one chunk only.

``benchmarks/memory.py`` measures the difference.
"""

import numbers

import numpy as np

__all__ = ["chunked_apply", "chunked_score_samples"]


def _check_batch_size(batch_size):
    if (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def chunked_apply(method, X, batch_size=64):
    """Call ``method`` on consecutive chunks of ``X`` and stack the results.

    Parameters
    ----------
    method : callable
        A bound method of a fitted estimator that maps ``n`` samples to ``n`` results along
        the first axis, such as ``pipe.score_samples``, ``pipe.decision_function``,
        ``pipe.predict`` or ``pipe.transform``.
    X : array-like of shape (n_samples, ...)
        Samples; anything that supports ``len`` and slicing (an ndarray, a
        :func:`numpy.memmap` / :func:`numpy.lib.format.open_memmap` array that is read one
        chunk at a time, a list of images or of file paths).
    batch_size : int, default=64
        Number of samples per call of ``method``.

    Returns
    -------
    result : ndarray of shape (n_samples, ...)
        The chunk results, in order, in an array allocated once (no list of chunks is
        concatenated).

    Notes
    -----
    The result equals ``method(X)`` whenever the method treats samples independently, which
    every skcpcae stage does, up to floating-point noise where a stage sends batches through
    a network (:class:`~skcpcae.embedding.DeepPoolEmbedder` with ``batch_size`` > 1): the
    chunks cut its batches differently, and torch may pick another kernel for another batch
    size (a batch of a single image in particular). With ``DeepPoolEmbedder(batch_size=1)``
    the chunked scores are bit-identical. An empty ``X`` is passed to ``method`` as it is, so that
    the estimator raises its own error.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import LocalOutlierFactor
    >>> from skcpcae.utils._chunked import chunked_apply
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> lof = LocalOutlierFactor(novelty=True).fit(X)
    >>> bool(np.allclose(chunked_apply(lof.score_samples, X, batch_size=8),
    ...                  lof.score_samples(X)))
    True
    """
    batch_size = _check_batch_size(batch_size)
    if not callable(method):
        raise TypeError(
            f"method must be a callable such as pipe.score_samples, got {type(method).__name__}."
        )
    n = len(X)
    if n <= batch_size:
        return np.asarray(method(X))
    out = None
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        part = np.asarray(method(X[start:stop]))
        if part.ndim == 0 or part.shape[0] != stop - start:
            raise ValueError(
                f"{getattr(method, '__qualname__', method)!r} returned shape {part.shape} for "
                f"{stop - start} samples; chunked_apply needs one result per sample along "
                "the first axis."
            )
        if out is None:
            out = np.empty((n,) + part.shape[1:], dtype=part.dtype)
        elif part.shape[1:] != out.shape[1:]:
            raise ValueError(
                f"Chunks give results of different shapes {out.shape[1:]} and "
                f"{part.shape[1:]}; chunked_apply needs one shape per sample."
            )
        out[start:stop] = part
    return out


def chunked_score_samples(estimator, X, *, batch_size=64):
    """``estimator.score_samples(X)`` computed ``batch_size`` samples at a time.

    Peak memory is bounded by one chunk's intermediate results instead of the whole batch's.
    See :func:`chunked_apply` for when the result is bit-identical to
    ``estimator.score_samples(X)``.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        Must have ``score_samples``.
    X : array-like of shape (n_samples, ...)
        Samples, e.g. a memory-mapped image batch.
    batch_size : int, default=64
        Number of samples per ``score_samples`` call.

    Returns
    -------
    scores : ndarray of shape (n_samples,)
        Higher = more normal.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> from skcpcae.utils._chunked import chunked_score_samples
    >>> X = np.random.default_rng(0).normal(size=(100, 4))
    >>> knn = KNNAnomalyScorer(n_neighbors=5).fit(X)
    >>> bool(np.array_equal(chunked_score_samples(knn, X, batch_size=32), knn.score_samples(X)))
    True
    """
    if not hasattr(estimator, "score_samples"):
        raise TypeError(f"{type(estimator).__name__} has no score_samples method.")
    return chunked_apply(estimator.score_samples, X, batch_size)
