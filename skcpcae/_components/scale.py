# SPDX-License-Identifier: BSD-3-Clause
"""Per-feature scales with a floor: no feature weighs more than ``1 / min_scale`` typical ones.

A feature that is (nearly) constant on the training samples gets a tiny standard deviation,
and dividing by it turns any later difference in that feature, a rare activation or float32
noise, into the largest share of a distance. ``StandardScaler`` only guards against an exact
zero (scale 1, in the feature's own units, however those compare with the others). The floor
here is relative: ``min_scale`` times the median standard deviation of the non-constant
features. Used by :class:`~skcpcae.preprocessing.FlooredStandardScaler` and by the
leave-one-out search of :func:`~skcpcae._components.knn.loo_sq_distances` (the exact
leave-one-out scores of that scaler followed by a k-NN), so that the two agree.
"""

import warnings

import numpy as np

__all__ = ["MIN_SCALE", "floored_scale"]

#: Default ``min_scale``: one feature weighs at most 100 typical ones in a squared distance.
MIN_SCALE = 0.1


def floored_scale(std, constant, min_scale):
    """``max(std, floor)`` per feature, with ``floor = min_scale * median(non-constant std)``.

    Parameters
    ----------
    std : ndarray of shape (..., n_features)
        Standard deviations (``ddof=0``); one row of features per leading index.
    constant : ndarray of bool, same shape
        Features to treat as constant (their ``std`` is rounding noise).
    min_scale : float
        Floor as a fraction of the median non-constant standard deviation of the same row.
        0 gives ``StandardScaler``'s scales: the standard deviation, 1 for a constant feature.

    Returns
    -------
    scale : ndarray of shape (..., n_features)
        Positive scales; 1 for a constant feature when there is no floor (``min_scale`` is 0
        or every feature of the row is constant).
    """
    std = np.asarray(std, dtype=np.float64)
    constant = np.asarray(constant, dtype=bool)
    scale = np.where(constant, 0.0, std)
    if min_scale:
        with warnings.catch_warnings():  # a row of constant features: no floor (NaN median)
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(np.where(constant, np.nan, std), axis=-1, keepdims=True)
        scale = np.maximum(scale, np.nan_to_num(min_scale * median, nan=0.0))
    return np.where(scale > 0, scale, 1.0)
