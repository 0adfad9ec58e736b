# SPDX-License-Identifier: BSD-3-Clause
"""Two of the package's one-rule-per-concept helpers (``docs/conventions.md``).

* :func:`warn_outside_unit_range`: float pixels outside [0, 1] warn (never raise), with one
  message that says what the stage does with them;
* :class:`OutOfSampleFitPredictMixin`: ``fit_predict`` of a novelty detector labels the
  training set by the out-of-sample scores ``offset_`` was set from.

Re-exported from ``skcpcae._base``, where the estimators import their plumbing.
"""

import warnings

import numpy as np

__all__ = ["OutOfSampleFitPredictMixin", "warn_outside_unit_range"]


def warn_outside_unit_range(estimator, images, consequence, *, stacklevel=3):
    """The one rule for float pixels outside [0, 1]: warn, say what happens, go on.

    No image stage raises on them (``docs/conventions.md``, "Image batches"). A stage whose
    computation is defined on intensities in [0, 1] (``AdaptiveGamma``'s gamma curve,
    ``CPCAEResidualMap``'s sigmoid decoder) calls this in ``fit`` and after it, with what it
    does with such values; the others read them as they are, silently.

    Parameters
    ----------
    estimator : estimator instance
        The stage, named in the message.
    images : ndarray
        The validated float images.
    consequence : str
        What the stage does with them, e.g. ``"it clips them to [0, 1] first"``.
    stacklevel : int, default=3
        Passed to :func:`warnings.warn`.

    Returns
    -------
    warned : bool
        Whether values outside [0, 1] were found.
    """
    if not images.size:
        return False
    lo, hi = float(images.min()), float(images.max())
    if lo >= -1e-6 and hi <= 1 + 1e-6:
        return False
    warnings.warn(
        f"{type(estimator).__name__} expects pixel values in [0, 1]; got values in "
        f"[{lo:.4g}, {hi:.4g}], and {consequence}. Scale the images, e.g. X / 255 for 8-bit "
        "values stored as floats.",
        UserWarning,
        stacklevel=stacklevel,
    )
    return True


class OutOfSampleFitPredictMixin:
    """``fit_predict`` that labels the training set by its out-of-sample training scores.

    For the novelty detectors whose ``fit`` scores each training sample without itself
    (leave-one-out, kept in ``negative_outlier_score_``) and sets ``offset_`` from those
    scores. scikit-learn's inherited ``fit(X).predict(X)`` scores the training samples *in
    sample* (a k-NN scorer finds each one among its own neighbours), so it flags almost
    nothing; ``fit_predict`` instead flags the training samples whose out-of-sample score
    falls below ``offset_``: a fraction ``contamination`` of them when it is a float, as
    ``LocalOutlierFactor(novelty=False).fit_predict`` reads ``negative_outlier_factor_``.
    Place it left of ``OutlierMixin``.
    """

    def fit_predict(self, X, y=None):
        """Fit on ``X`` and label its samples by their out-of-sample training scores.

        ``fit_predict(X)`` differs from ``fit(X).predict(X)``: the first uses the scores each
        training sample gets without itself (``negative_outlier_score_``), from which
        ``offset_`` is set, so that with a float ``contamination`` that fraction of ``X`` is
        flagged; the second scores ``X`` against a model that contains it, which flags
        fewer.

        Parameters
        ----------
        X : array-like
            Training input of :meth:`fit`.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers of the training set.
        """
        self.fit(X, y)
        return self._training_labels()

    def _training_labels(self):
        # not a property: computed from the stored scores, never stored itself
        scores = np.asarray(self.negative_outlier_score_, dtype=np.float64)
        return np.where(scores - self.offset_ < 0, -1, 1)
