# SPDX-License-Identifier: BSD-3-Clause
"""Pooling heads: turn a CNN feature map ``(n, C, h, w)`` into a vector ``(n, d)``.

Pure torch functions, no scikit-learn. :class:`~skcpcae.embedding.DeepPoolEmbedder` picks one
by name with its ``pooling`` parameter:

=====================  ===========  =====================================================
name                   ``d``        what it is
=====================  ===========  =====================================================
``"max"``              ``C``        global max pooling (the paper's baseline, Sec. 4.4)
``"avg"``              ``C``        global average pooling
``"gem"``              ``C``        generalised mean, ``p = 3``
``"max+avg"``          ``2 C``      global max and global average, concatenated
``"parallel_cascade"`` ``6 C``      the paper's pooling head (Fig. 6), as read below
=====================  ===========  =====================================================

**Reading of the paper's "parallel and cascade pooling with concatenation" (ours).** Fig. 6 of
Saeedi & Giusti (2023) is not described in the text; the text says only that global max
pooling gives too few features for a high-resolution map, and that the head "consists of
parallel and cascade pooling, along with concatenation". This module reads it as

* *parallel*: global max pooling and global average pooling of the same map, side by side
  (``C`` values each);
* *cascade*: max pooling to a ``2g x 2g`` grid of regions (the strongest response in each
  region), *then* 2x2 average pooling of that grid down to ``g x g`` (``g = grid_size``,
  default 2), flattened channel-major (``C * g * g`` values). The second pooling averages local
  maxima, which neither global operator measures, and the ``g x g`` grid keeps coarse
  position — the part of a high-resolution map where a defect responds;
* *concatenation*: ``[global max | global average | cascade]``, ``(2 + g**2) * C`` values
  (``6 C`` for ``g = 2``; 7680 for EfficientNet-Lite0's 1280 channels).

Feature maps smaller than ``2g`` cells are handled by adaptive pooling (cells are repeated).
"""

import torch
import torch.nn.functional as F

__all__ = [
    "POOLINGS",
    "global_max_pool",
    "global_avg_pool",
    "gem_pool",
    "max_avg_pool",
    "parallel_cascade_pool",
    "pool_features",
    "pooled_n_features",
]

#: Names of the pooling heads that :func:`pool_features` and ``DeepPoolEmbedder(pooling=...)``
#: accept.
POOLINGS = ("max", "avg", "gem", "max+avg", "parallel_cascade")


def _check_map(x):
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"expected a feature map tensor of shape (n, C, h, w); got {shape}.")


def global_max_pool(x):
    """Global max pooling: the largest value of each channel.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, h, w)
        Feature map.

    Returns
    -------
    torch.Tensor of shape (n, C)
        One pooled value per channel.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import global_max_pool
    >>> global_max_pool(torch.arange(8.0).reshape(1, 2, 2, 2))
    tensor([[3., 7.]])
    """
    _check_map(x)
    return torch.amax(x, dim=(2, 3))


def global_avg_pool(x):
    """Global average pooling: the mean value of each channel.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, h, w)
        Feature map.

    Returns
    -------
    torch.Tensor of shape (n, C)
        One pooled value per channel.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import global_avg_pool
    >>> global_avg_pool(torch.arange(8.0).reshape(1, 2, 2, 2))
    tensor([[1.5000, 5.5000]])
    """
    _check_map(x)
    return torch.mean(x, dim=(2, 3))


def gem_pool(x, p=3.0, eps=1e-6):
    """Generalised-mean (GeM) pooling: ``mean(clamp(x, eps) ** p) ** (1 / p)`` per channel.

    ``p = 1`` is the average of the clamped map, large ``p`` tends to the maximum (Radenović,
    Tolias & Chum, 2018). Values below ``eps`` are clamped to ``eps`` (GeM needs a positive
    map; post-ReLU features are non-negative).

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, h, w)
        Feature map.
    p : float, default=3.0
        Exponent, ``p > 0``.
    eps : float, default=1e-6
        Lower clamp.

    Returns
    -------
    torch.Tensor of shape (n, C)
        One pooled value per channel.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import gem_pool
    >>> x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> gem_pool(x, p=1.0)
    tensor([[2.5000]])
    """
    _check_map(x)
    if not p > 0:
        raise ValueError(f"p must be positive, got {p!r}.")
    p = float(p)
    return x.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def max_avg_pool(x):
    """Global max and global average pooling, concatenated: ``(n, 2 C)``.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, h, w)
        Feature map.

    Returns
    -------
    torch.Tensor of shape (n, 2 * C)
        ``[max | average]``.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import max_avg_pool
    >>> max_avg_pool(torch.arange(4.0).reshape(1, 1, 2, 2))
    tensor([[3.0000, 1.5000]])
    """
    return torch.cat([global_max_pool(x), global_avg_pool(x)], dim=1)


def parallel_cascade_pool(x, grid_size=2):
    """The paper's pooling head (Fig. 6), as this project reads it: ``(n, (2 + g**2) C)``.

    Concatenates, per channel, the global max, the global average and a cascade branch: max
    pooling to a ``2g x 2g`` grid, then 2x2 average pooling to ``g x g``, flattened
    channel-major. See the module docstring for the reading and its reasons.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, h, w)
        Feature map.
    grid_size : int, default=2
        ``g``, the side of the cascade branch's output grid.

    Returns
    -------
    torch.Tensor of shape (n, (2 + grid_size**2) * C)
        ``[max (C) | average (C) | cascade (C * g * g)]``.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import parallel_cascade_pool
    >>> parallel_cascade_pool(torch.rand(2, 8, 10, 10)).shape
    torch.Size([2, 48])
    """
    _check_map(x)
    g = int(grid_size)
    if g < 1:
        raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}.")
    local_max = F.adaptive_max_pool2d(x, (2 * g, 2 * g))
    cascade = F.avg_pool2d(local_max, kernel_size=2, stride=2)
    return torch.cat([global_max_pool(x), global_avg_pool(x), cascade.flatten(1)], dim=1)


_POOL_FUNCS = {
    "max": global_max_pool,
    "avg": global_avg_pool,
    "gem": gem_pool,
    "max+avg": max_avg_pool,
    "parallel_cascade": parallel_cascade_pool,
}

_WIDTH = {"max": 1, "avg": 1, "gem": 1, "max+avg": 2, "parallel_cascade": 6}


def pool_features(x, pooling="max"):
    """Apply the pooling head named ``pooling`` (one of :data:`POOLINGS`).

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, h, w)
        Feature map.
    pooling : {"max", "avg", "gem", "max+avg", "parallel_cascade"}, default="max"
        Head; ``"gem"`` uses ``p=3`` and ``"parallel_cascade"`` ``grid_size=2``.

    Returns
    -------
    torch.Tensor of shape (n, pooled_n_features(pooling, C))
        The pooled features.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import pool_features
    >>> pool_features(torch.rand(3, 4, 5, 5), "max+avg").shape
    torch.Size([3, 8])
    """
    try:
        func = _POOL_FUNCS[pooling]
    except (KeyError, TypeError):
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.") from None
    return func(x)


def pooled_n_features(pooling, n_channels):
    """Length of the vector :func:`pool_features` returns for a map with ``n_channels``.

    Parameters
    ----------
    pooling : str
        One of :data:`POOLINGS`.
    n_channels : int
        ``C``.

    Returns
    -------
    int
        Length of the pooled vector.

    Examples
    --------
    >>> from skcpcae.embedding import pooled_n_features
    >>> pooled_n_features("parallel_cascade", 1280)
    7680
    """
    if pooling not in _WIDTH:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    return _WIDTH[pooling] * int(n_channels)
