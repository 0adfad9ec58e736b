# SPDX-License-Identifier: BSD-3-Clause
"""A ``StandardScaler`` whose scales have a floor, for embeddings with near-dead channels."""

import numbers

import numpy as np
from sklearn.preprocessing import StandardScaler

from .._components.scale import MIN_SCALE, floored_scale
from ..utils.fixes import Interval

__all__ = ["FlooredStandardScaler"]


class FlooredStandardScaler(StandardScaler):
    """Standardize features, never dividing by less than a fraction of the typical spread.

    :class:`~sklearn.preprocessing.StandardScaler` divides each feature by its standard
    deviation. Pooled CNN activations after a ReLU hold channels that are zero on nearly every
    normal image (on ELPV's EfficientNet-Lite0 head, 8 of 1280 channels fire on exactly one of
    294 training cells): their standard deviation is a thousandth of the others', so any later
    activation in them, a faint rare pattern or float32 noise, becomes the largest part of a
    k-NN distance. One training sample then decides its own leave-one-out score, and an
    exported model's scores drift from the Python model's by 1e-3. Here the scale of every
    feature is at least ``min_scale`` times the median standard deviation of the non-constant
    features, constant features included; the features above the floor are scaled exactly as
    ``StandardScaler`` scales them.

    Parameters
    ----------
    min_scale : float, default=0.1
        Floor of the scales, as a fraction of the median non-constant standard deviation: a
        feature weighs at most ``1 / min_scale**2`` typical features in a squared distance.
        0 gives :class:`~sklearn.preprocessing.StandardScaler` exactly.
    copy : bool, default=True
        As in :class:`~sklearn.preprocessing.StandardScaler`.
    with_mean : bool, default=True
        As in :class:`~sklearn.preprocessing.StandardScaler`.
    with_std : bool, default=True
        As in :class:`~sklearn.preprocessing.StandardScaler`; without it nothing is divided
        and there is no floor.

    Attributes
    ----------
    scale_ : ndarray of shape (n_features,) or None
        The floored scales.
    n_floored_ : int
        Features whose scale is the floor (constant ones included).
    mean_, var_, n_features_in_, feature_names_in_, n_samples_seen_ :
        As in :class:`~sklearn.preprocessing.StandardScaler`; ``var_`` is the unfloored
        variance.

    See Also
    --------
    sklearn.preprocessing.StandardScaler : the scaler without a floor.
    skcpcae.outlier.KDEThresholdClassifier : exact leave-one-out scores with this scaler inside.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.preprocessing import FlooredStandardScaler
    >>> X = np.array([[0.0, 1.0], [0.0, 3.0], [1e-3, 5.0]])
    >>> FlooredStandardScaler(min_scale=0.1).fit(X).scale_.round(4)
    array([0.0817, 1.633 ])
    """

    _parameter_constraints: dict = {
        **StandardScaler._parameter_constraints,
        "min_scale": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(self, *, min_scale=MIN_SCALE, copy=True, with_mean=True, with_std=True):
        super().__init__(copy=copy, with_mean=with_mean, with_std=with_std)
        self.min_scale = min_scale

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the running mean and variance, then floor the scales.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training samples.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples.

        Returns
        -------
        self : FlooredStandardScaler
            The fitted scaler.
        """
        super().partial_fit(X, y, sample_weight=sample_weight)
        self.n_floored_ = 0
        if self.scale_ is not None:
            std = np.sqrt(self.var_)
            # StandardScaler set a scale of 1 exactly where it judged the variance to be zero
            constant = (self.scale_ == 1.0) & (std != 1.0)
            floored = floored_scale(std, constant, self.min_scale)
            self.n_floored_ = int(np.sum(np.where(constant, floored != 1.0, floored > std)))
            self.scale_ = floored.astype(self.scale_.dtype, copy=False)
        return self
