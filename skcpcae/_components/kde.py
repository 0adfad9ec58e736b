# SPDX-License-Identifier: BSD-3-Clause
"""The 1-D Gaussian kernel density estimate with a CDF and its inverse.

Used by :class:`~skcpcae.outlier.KDEThresholdClassifier` (the threshold at a KDE quantile of
out-of-sample training scores), by the calibration helpers of ``skcpcae.outlier`` and, through
its ``pdf``, by the threshold plot of ``skcpcae.plotting``.
"""

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

__all__ = ["GaussianKDE1D"]


def _bandwidth_factor(bandwidth, n):
    """Kernel standard deviation as a multiple of the sample's spread.

    The factors of :class:`scipy.stats.gaussian_kde` in one dimension.
    """
    if bandwidth == "scott":
        return float(n ** (-1.0 / 5.0))
    if bandwidth == "silverman":
        return float((n * 3.0 / 4.0) ** (-1.0 / 5.0))
    return float(bandwidth)


def _robust_spread(data):
    """``min(std, IQR / 1.349)`` (Silverman 1986, eq. 3.31); the std when the IQR is 0."""
    if data.size < 2:
        return 0.0
    std = float(np.std(data, ddof=1))
    q1, q3 = np.percentile(data, [25, 75])
    iqr = float(q3 - q1) / 1.349
    return min(std, iqr) if iqr > 0 else std


class GaussianKDE1D:
    """Gaussian kernel density estimate of a 1-D sample, with ``pdf``, ``cdf`` and ``ppf``.

    ``bandwidth`` ("scott", "silverman" or a positive float) sets the kernel's standard
    deviation as ``factor * spread``, with scipy's factors (:class:`scipy.stats.gaussian_kde`)
    and the robust spread ``min(std, IQR / 1.349)`` of Silverman (1986) instead of the
    standard deviation alone: anomaly scores are heavy-tailed (a few held-out training samples
    can score orders of magnitude above the rest), and a standard deviation inflated by them
    over-smooths the estimate. The estimate is scale-aware: multiplying the data by ``c``
    multiplies every quantile by ``c``. A sample with zero spread (constant values, or a
    single value) gives a zero bandwidth: the estimate is then the empirical distribution
    (point masses).

    Parameters
    ----------
    dataset : array-like of shape (n,)
        The sample (flattened), finite and non-empty.
    bandwidth : {"scott", "silverman"} or float, default="scott"
        Bandwidth factor rule, or the factor itself.

    Attributes
    ----------
    dataset : ndarray of shape (n,)
        The sorted sample.
    factor : float
        Bandwidth factor.
    bandwidth : float
        Kernel standard deviation, in the sample's units (0 for a degenerate sample).
    """

    def __init__(self, dataset, bandwidth="scott"):
        data = np.sort(np.asarray(dataset, dtype=np.float64).ravel())
        if data.size == 0:
            raise ValueError("Cannot fit a kernel density estimate on an empty sample.")
        if not np.all(np.isfinite(data)):
            raise ValueError("The sample holds NaN or infinite values.")
        self.dataset = data
        self.factor = _bandwidth_factor(bandwidth, data.size)
        self.bandwidth = self.factor * _robust_spread(data)

    @property
    def n(self):
        return self.dataset.size

    def _chunks(self, x):
        step = max(1, 2**20 // self.n)
        for start in range(0, x.size, step):
            yield slice(start, start + step)

    def pdf(self, x):
        """Density at ``x`` (``inf`` at the atoms of a degenerate estimate)."""
        x = np.asarray(x, dtype=np.float64)
        flat = x.ravel()
        out = np.empty_like(flat)
        h = self.bandwidth
        for sl in self._chunks(flat):
            if h > 0:
                z = (flat[sl, None] - self.dataset[None, :]) / h
                out[sl] = np.exp(-0.5 * z**2).sum(axis=1) / (self.n * h * np.sqrt(2 * np.pi))
            else:
                hit = (flat[sl, None] == self.dataset[None, :]).any(axis=1)
                out[sl] = np.where(hit, np.inf, 0.0)
        return out.reshape(x.shape)

    def cdf(self, x):
        """``P(S <= x)`` under the estimate."""
        x = np.asarray(x, dtype=np.float64)
        flat = x.ravel()
        out = np.empty_like(flat)
        h = self.bandwidth
        for sl in self._chunks(flat):
            if h > 0:
                out[sl] = ndtr((flat[sl, None] - self.dataset[None, :]) / h).mean(axis=1)
            else:
                out[sl] = np.searchsorted(self.dataset, flat[sl], side="right") / self.n
        return out.reshape(x.shape)

    def ppf(self, q):
        """Inverse of :meth:`cdf`: the smallest ``x`` with ``cdf(x) >= q``, for ``q`` in (0, 1)."""
        q = np.asarray(q, dtype=np.float64)
        if np.any((q <= 0) | (q >= 1)):
            raise ValueError("Quantile levels must lie in the open interval (0, 1).")
        out = np.array([self._ppf_scalar(float(v)) for v in q.ravel()])
        return out.reshape(q.shape)

    def _ppf_scalar(self, q):
        data, h = self.dataset, self.bandwidth
        if h <= 0:
            return float(np.quantile(data, q, method="inverted_cdf"))

        def f(t):
            return float(self.cdf(t)) - q

        lo, hi = data[0] - 10.0 * h, data[-1] + 10.0 * h
        while f(lo) > 0:
            lo -= 10.0 * h
        while f(hi) < 0:
            hi += 10.0 * h
        # The tolerance is tied to the bandwidth, not to the bracket: one held-out score
        # orders of magnitude above the rest widens the bracket, and a tolerance scaled by it
        # let the root land thousands of bandwidths past the quantile (benchmarks/threshold.py).
        return float(brentq(f, lo, hi, xtol=1e-9 * h, rtol=1e-14, maxiter=1000))

    def __repr__(self):
        return f"GaussianKDE1D(n={self.n}, factor={self.factor:.4g}, bandwidth={self.bandwidth:.4g})"
