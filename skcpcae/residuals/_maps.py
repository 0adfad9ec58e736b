# SPDX-License-Identifier: BSD-3-Clause
"""Two readings of a signed residual map: exposed for a CNN, and its peak as an image score."""

import numbers

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._base import ImageOutputMixin, image_tags, restore_layout, validate_images
from ..utils._cv import cross_fit_splits, is_int_cv
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context
from ._cpcae import _GAIN_SAMPLE, exposure_gain  # one exposure rule for both steps

__all__ = ["ResidualExposure", "ResidualPeak"]


def _part(maps, polarity):
    """The part of a signed map that ``polarity`` keeps, as non-negative float32."""
    if polarity == "dark":
        return np.maximum(-maps, 0, dtype=np.float32)
    if polarity == "bright":
        return np.maximum(maps, 0, dtype=np.float32)
    return np.abs(maps, dtype=np.float32)


class ResidualExposure(ImageOutputMixin, TransformerMixin, BaseEstimator):
    """Expose a signed residual map for a pretrained CNN: ``clip(gain * part, 0, 1)``.

    A residual map is mostly near zero, a nearly black image; the CNN that embeds it next
    (:class:`~skcpcae.embedding.DeepPoolEmbedder`) then sees almost no contrast. This step
    keeps the part of a signed map that ``polarity`` asks for (``|r|``, its dark part
    ``max(-r, 0)`` or its bright part ``max(r, 0)``) and multiplies it by ``gain_``, fitted
    so that the 99th percentile of the training maps maps to 1, as
    ``CPCAEResidualMap(gain="auto")`` does for its own, unsigned maps. With
    ``CPCAEResidualMap(signed=True, gain=None)`` in front, ``polarity="both"`` gives the
    same maps as ``CPCAEResidualMap(gain="auto")`` (the quantile is read on the same sample).

    Parameters
    ----------
    polarity : {"both", "dark", "bright"}, default="both"
        The part of the map kept: ``|r|``, ``max(-r, 0)`` or ``max(r, 0)``.
    gain : "auto", float or None, default="auto"
        The factor: fitted (``"auto"``), as given, or ``None`` (1, no clipping above).

    Attributes
    ----------
    gain_ : float
        The factor applied.
    image_shape_ : tuple of int
        Shape of one training map.
    n_features_in_ : int
        Number of values per map seen during fit.

    See Also
    --------
    ResidualPeak : the other reading of the same map, an image score.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.residuals import ResidualExposure
    >>> maps = np.random.RandomState(0).normal(scale=0.05, size=(4, 16, 16))
    >>> exposed = ResidualExposure().fit_transform(maps)
    >>> float(exposed.min()) >= 0.0, float(exposed.max()) <= 1.0
    (True, True)
    """

    _parameter_constraints: dict = {
        "polarity": [StrOptions({"both", "dark", "bright"})],
        "gain": [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="neither"), None],
    }

    def __init__(self, polarity="both", *, gain="auto"):
        self.polarity = polarity
        self.gain = gain

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit ``gain_`` on signed training maps.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Signed residual maps of normal images.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        maps, _ = validate_images(self, X, reset=True)  # refuses NaN and infinities
        if self.gain is None:
            self.gain_ = 1.0
        elif self.gain != "auto":
            self.gain_ = float(self.gain)
        else:
            flat = maps.reshape(len(maps), -1)
            step = max(1, flat.shape[1] // _GAIN_SAMPLE)
            self.gain_ = exposure_gain(_part(flat[:, ::step], self.polarity))
        return self

    def transform(self, X):
        """The kept part of each map, times ``gain_``, clipped to [0, 1].

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Signed maps of the fitted shape.

        Returns
        -------
        exposed : ndarray of the shape of ``X``, float32
            Values in [0, 1] (``gain=None``: not clipped above).
        """
        check_is_fitted(self)
        maps, was_2d = validate_images(self, X, reset=False)
        out = _part(maps, self.polarity)
        out *= np.float32(self.gain_)
        if self.gain is not None:
            np.clip(out, 0, 1, out=out)
        return restore_layout(out, was_2d)

    def __sklearn_tags__(self):
        return image_tags(super().__sklearn_tags__())


class ResidualPeak(TransformerMixin, BaseEstimator):
    """Image score read off a residual map: its peak, in units of each place's normal spread.

    Each map's ``polarity`` part (by default the *dark* part ``max(-r, 0)`` of a signed
    residual: where the image is darker than its reconstruction, as cracks and dead areas
    are in electroluminescence images) is smoothed with a Gaussian of ``sigma`` pixels,
    standardized per pixel position by the mean and standard deviation of the training
    maps at that position (floored at ``min_std``), and the largest value is the image's
    score: one column, larger is more anomalous.

    This is the autoencoder's conditioning on position carried to the score. A pooled CNN
    embedding of the residual map (the paper's reading) averages a small defect away; its
    peak does not, and a place where good parts always differ from their reconstruction
    (an edge, a busbar) does not raise it, since it is divided by that place's spread. The
    CPCAE presets fuse this score with the embedding's k-NN score
    (:class:`~skcpcae.outlier.FusedKNNScorer`), chosen on validation data
    (``benchmarks/select_cpcae.py --phase peak``).

    **Cross-fitting.** A training map's peak against statistics that include the map itself
    is optimistically small. With ``cv=k``, :meth:`fit_transform` returns each training
    map's peak against the statistics of the other folds, while :meth:`transform` uses the
    statistics of all training maps, as :class:`~sklearn.preprocessing.TargetEncoder` does;
    ``fit(X).transform(X)`` then differs from ``fit_transform(X)``.

    Parameters
    ----------
    polarity : {"dark", "bright", "both"}, default="dark"
        The part of a signed map scored: ``max(-r, 0)``, ``max(r, 0)`` or ``|r|``.
    sigma : float, default=2.0
        Standard deviation of the Gaussian smoothing, in pixels of the map (0: none).
    cv : int, cross-validation generator, iterable or None, default=5
        Folds of the cross-fitted :meth:`fit_transform` (``None``: in-sample peaks).
    min_std : float, default=1e-3
        Floor of the per-position standard deviation.
    random_state : int, RandomState instance or None, default=None
        Seeds the folds of an int ``cv``.

    Attributes
    ----------
    mean_ : ndarray of shape (height, width[, channels])
        Mean of the smoothed training maps, per position.
    scale_ : ndarray of shape (height, width[, channels])
        Their standard deviation, floored at ``min_std``.
    image_shape_ : tuple of int
        Shape of one training map.
    n_features_in_ : int
        Number of values per map seen during fit.

    See Also
    --------
    ResidualExposure : the map exposed for a CNN, the other reading of the same map.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.residuals import ResidualPeak
    >>> rng = np.random.RandomState(0)
    >>> maps = rng.normal(scale=0.01, size=(20, 16, 16)).astype(np.float32)
    >>> peak = ResidualPeak(sigma=1.0).fit(maps)
    >>> dented = maps[:2].copy()
    >>> dented[1, 6:9, 6:9] -= 0.5  # much darker than its reconstruction
    >>> scores = peak.transform(dented)
    >>> scores.shape, bool(scores[1, 0] > scores[0, 0])
    ((2, 1), True)
    """

    _parameter_constraints: dict = {
        "polarity": [StrOptions({"dark", "bright", "both"})],
        "sigma": [Interval(numbers.Real, 0, None, closed="left")],
        "cv": ["cv_object"],
        "min_std": [Interval(numbers.Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, polarity="dark", *, sigma=2.0, cv=5, min_std=1e-3, random_state=None):
        self.polarity = polarity
        self.sigma = sigma
        self.cv = cv
        self.min_std = min_std
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the per-position statistics of the smoothed training maps.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Signed residual maps of normal images.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        self._fit_statistics(self._smoothed(X, reset=True))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit on ``X`` and return its peaks, out of fold when ``cv`` is set.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Signed residual maps of normal images.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        peaks : ndarray of shape (n_samples, 1)
            Each map's peak; with ``cv``, against the other folds' statistics.
        """
        smooth = self._smoothed(X, reset=True)
        if self.cv is None or len(smooth) < 2:
            self._fit_statistics(smooth)
            return self._peaks(smooth)
        seed = (check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
                if is_int_cv(self.cv) else None)
        # each fold's statistics from the sums over all maps less the fold's own (one pass
        # over the maps instead of one per fold), unless a splitter trains on fewer
        total = _moments(smooth)
        out = np.empty((len(smooth), 1))
        for train, test in cross_fit_splits(self.cv, smooth, random_state=seed):
            if len(train) + len(test) == len(smooth):
                moments = (t - f for t, f in zip(total, _moments(smooth[test]), strict=True))
            else:
                moments = _moments(smooth[train])
            self._set_statistics(*moments)
            out[test] = self._peaks(smooth[test])
        self._set_statistics(*total)
        return out

    def transform(self, X):
        """Each map's peak against the statistics of all training maps.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Signed maps of the fitted shape.

        Returns
        -------
        peaks : ndarray of shape (n_samples, 1)
            Larger is more anomalous.
        """
        check_is_fitted(self)
        return self._peaks(self._smoothed(X, reset=False))

    def get_feature_names_out(self, input_features=None):
        """``["residualpeak"]``, the one output column.

        Parameters
        ----------
        input_features : Ignored
            Not used, present for API consistency.

        Returns
        -------
        names : ndarray of str objects
            The name of the peak column.
        """
        check_is_fitted(self)
        return np.asarray(["residualpeak"], dtype=object)

    def __sklearn_tags__(self):
        tags = image_tags(super().__sklearn_tags__())
        tags.transformer_tags.preserves_dtype = []  # one float64 column, whatever comes in
        return tags

    def _smoothed(self, X, *, reset):
        maps, _ = validate_images(self, X, reset=reset)  # refuses NaN and infinities
        part = _part(maps, self.polarity)
        if self.sigma > 0:
            # spatial axes only: not across images, nor across channels
            sigma = (0, self.sigma, self.sigma) + (0,) * (part.ndim - 3)
            part = gaussian_filter(part, sigma, output=np.float32)
        return part

    def _fit_statistics(self, smooth):
        self._set_statistics(*_moments(smooth))

    def _set_statistics(self, n, s1, s2):
        """``mean_`` and ``scale_`` from the count, sum and sum of squares of the maps."""
        mean = s1 / n
        # float64 sums of values in [0, 1]: E[x^2] - E[x]^2 keeps ~1e-12 relative accuracy
        # down to the floor's spread (min_std = 1e-3 by default)
        std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.maximum(std, self.min_std).astype(np.float32)

    def _standardized(self, smooth):
        return (smooth - self.mean_) / self.scale_

    def _peaks(self, smooth):
        z = self._standardized(smooth)
        return z.reshape(len(z), -1).max(axis=1, initial=-np.inf).astype(np.float64)[:, None]


def _moments(maps):
    """Count, per-position sum and sum of squares (float64) of a stack of maps."""
    s1 = np.zeros(maps.shape[1:])
    s2 = np.zeros(maps.shape[1:])
    for start in range(0, len(maps), 64):  # bounded float64 temporaries
        chunk = maps[start:start + 64].astype(np.float64)
        s1 += chunk.sum(axis=0)
        s2 += np.einsum("i...,i...->...", chunk, chunk)
    return len(maps), s1, s2
