# SPDX-License-Identifier: BSD-3-Clause
"""Image registration onto a reference part with OpenCV's ECC (Evangelidis & Psarakis 2008)."""

import math
import numbers
import warnings

import cv2
import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from .._base import (
    ImageOutputMixin,
    _to_float,
    image_tags,
    iter_batches,
    restore_layout,
    validate_images,
)
from ..utils._deprecation import removed_attribute
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context
from ._ecc import (
    _MIN_SIDE,
    _estimate,
    _intensity,
    _median_closest,
    _pyramid,
    _warp,
)

__all__ = ["ECCRegistrar"]

_MOTIONS = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}
_BORDERS = {
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
    "constant": cv2.BORDER_CONSTANT,
}
# The automatic pyramid stops before its coarsest level gets smaller than this many pixels on
# its shorter side: below ~48 px the 5x5 ECC blur erases the structure that anchors a part.
_AUTO_COARSEST = 48
_MIN_COARSEST = 8  # an explicit n_levels is clipped so that no level is smaller than this
_CHUNK = 16  # images per joblib task


class ECCRegistrar(ImageOutputMixin, TransformerMixin, BaseEstimator):
    """Align every image onto a reference part with OpenCV's ECC image registration.

    Each image is warped so that it best matches the reference in the sense of the
    enhanced correlation coefficient (ECC) of Evangelidis & Psarakis, maximised by
    :func:`cv2.findTransformECC`, as in Sec. 3.1 of Saeedi & Giusti (2023). The reference is
    chosen in :meth:`fit`; :meth:`transform` estimates one warp per image and resamples the
    image with it. Colour images are registered on their intensity (the mean of their
    channels) and every channel is warped with the same warp.

    The warp is estimated coarse to fine on an image pyramid: at the coarsest level ECC
    starts both from the identity and from the translation found by phase correlation and
    keeps the start that ends with the higher correlation; each finer level refines the
    warp of the level below with fewer iterations. This makes large shifts (10% of the
    image) converge and keeps big images fast; ``max_size`` skips the finest levels of big
    images altogether.

    Read more in the :ref:`User Guide <registration>`.

    .. versionadded:: 0.1

    Parameters
    ----------
    motion : {"translation", "euclidean", "affine", "homography"}, default="euclidean"
        Motion model: shift only; rigid (rotation + shift, the paper's choice); affine;
        projective.
    reference : ndarray of shape (height, width) or (height, width, channels), default=None
        Image every other image is aligned onto (uint8 and uint16 are scaled as everywhere in
        skcpcae). A colour reference is used through its intensity. By default, the
        training image closest to the pixel-wise median of the training set is used (see
        Notes).
    mask : ndarray of shape (height, width), default=None
        Pixels (non-zero) over which the correlation is computed; by default the whole
        image. The mask is applied to both the reference and the moving image, in their own
        pixel frames: it fits regions fixed in the camera's frame, such as a fixture or a
        background to ignore, and a region of interest on the part when motions are small
        compared with the region.
    max_iter : int, default=50
        Maximum ECC iterations at the coarsest pyramid level; each finer level, which starts
        from the warp of the level below, is allowed a quarter as many as that level, but at
        least 5 (and never more than ``max_iter``).
    tol : float, default=1e-3
        ECC stops at a level when the correlation coefficient improves by less than ``tol``
        between two iterations (OpenCV's ``criteria.epsilon``); 0 makes ``max_iter`` the only
        stopping rule.
    blur_size : int, default=5
        Size (odd) of the Gaussian filter OpenCV applies to both images at every level
        before matching (``gaussFiltSize``); 1 disables the blur.
    n_levels : int or "auto", default="auto"
        Number of pyramid levels, each half the size of the one above it. ``"auto"`` uses as
        many levels as keep the coarsest one at least 48 pixels on its shorter side (3 for
        300x300 images, 5 for 1600x1200). An integer is clipped so that no level is smaller
        than 8 pixels. 1 runs ECC at full resolution only.
    max_size : int or None, default=1024
        Largest image side at which the warp is estimated: levels larger than this are
        skipped, and the warp found on the finest remaining level is scaled up to full
        resolution (a 1600x1200 image is matched at 800x600 at most). None estimates at
        full resolution. The output is always warped at full resolution.
    phase_correlation : bool, default=True
        Also start the coarsest level from the translation found by
        :func:`cv2.phaseCorrelate` and keep whichever start converges to the higher
        correlation. False starts from the identity only (plain ECC).
    border_mode : {"replicate", "reflect", "constant"}, default="replicate"
        How pixels that the warp brings in from outside the image are filled. "replicate"
        repeats the last row / column and "reflect" mirrors the image, so that no artificial
        edge appears at the border of the moved image; "constant" fills them with 0 (black)
        and creates such an edge. :meth:`valid_masks` tells which pixels were filled.
    min_score : float or None, default=None
        If set, a warp whose final correlation is below ``min_score`` counts as a failure
        (see ``on_failure``). By default only a warp that OpenCV could not compute at any
        level (no convergence, NaN) counts as a failure.
    on_failure : {"warn", "raise", "identity"}, default="warn"
        What happens when the warp of an image cannot be estimated: "warn" returns that
        image unwarped and emits one :class:`~sklearn.exceptions.ConvergenceWarning` per call
        listing the failed images; "raise" raises a ``RuntimeError`` naming the first failed
        image; "identity" returns the image unwarped silently. :meth:`transform_with_info`
        reports the failures in every mode except "raise".
    n_jobs : int, default=None
        Number of threads that register images in parallel (joblib, threading backend:
        OpenCV releases the GIL; threads also under ``joblib.parallel_backend("dask")``,
        since they share the output arrays). None means 1, -1 all processors.
    verbose : int, default=0
        Show a progress bar over images in :meth:`transform` when positive.

    Attributes
    ----------
    reference_ : ndarray of shape (height, width) or (height, width, channels)
        The reference image, float32 in [0, 1].
    reference_index_ : int or None
        Index in the training set of the default reference; None when ``reference`` was given.
    mask_ : ndarray of shape (height, width) of bool or None
        The validated ``mask``.
    image_shape_ : tuple of int
        ``(height, width[, channels])`` of the training images.
    n_features_in_ : int
        Number of values per image seen during fit.

    See Also
    --------
    skcpcae.preprocessing.AdaptiveGamma : the next pre-processing stage.
    cv2.findTransformECC : the OpenCV function doing the work.

    Notes
    -----
    **Default reference.** The training images' intensities are shrunk to thumbnails of at
    most 128 pixels on a side; the reference is the training image whose thumbnail is
    closest (Euclidean distance) to the pixel-wise median thumbnail: the most typical part in
    the most typical position.

    **What happened to each image.** :meth:`transform` leaves the estimator as it is (it is
    safe to share between threads); :meth:`transform_with_info` returns the same images and,
    per image, the warp, the correlation reached and whether registration failed. The
    attributes ``last_warps_``, ``last_scores_`` and ``last_failed_`` that ``transform`` wrote
    before are no longer set.

    **Masks.** With OpenCV >= 4.12 the mask is passed as both the template and the input
    mask of :func:`cv2.findTransformECCWithMask`; older versions accept only an input mask,
    which is then used alone. The mask is also applied to the phase-correlation start.

    **Borders.** Pixels of the output that come from outside the input image are filled by
    ``border_mode``; they are not evidence about the part. :meth:`valid_masks` returns the
    pixels that are, for the warps that :meth:`transform_with_info` returned.

    References
    ----------
    .. [1] Evangelidis, G. D., Psarakis, E. Z. (2008). Parametric image alignment using
       enhanced correlation coefficient maximization. IEEE TPAMI 30(10).
    .. [2] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.datasets import make_parts, rigid_motion
    >>> from skcpcae.preprocessing import ECCRegistrar
    >>> X, _ = make_parts(4, size=(64, 64), random_state=0)
    >>> moved, M = rigid_motion(X[0], angle=3.0, shift=(4.0, -2.0))
    >>> reg = ECCRegistrar(reference=X[0]).fit(X)
    >>> aligned, info = reg.transform_with_info(moved[None])
    >>> aligned.shape, aligned.dtype.name, bool(info.failed[0])
    ((1, 64, 64), 'float32', False)
    >>> bool(np.abs(info.warps[0, :2] - M).max() < 0.1)
    True
    """

    _parameter_constraints: dict = {
        "motion": [StrOptions(set(_MOTIONS))],
        "reference": ["array-like", None],
        "mask": ["array-like", None],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "blur_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_levels": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_size": [Interval(numbers.Integral, _MIN_SIDE, None, closed="left"), None],
        "phase_correlation": ["boolean"],
        "border_mode": [StrOptions(set(_BORDERS))],
        "min_score": [Interval(numbers.Real, -1, 1, closed="both"), None],
        "on_failure": [StrOptions({"warn", "raise", "identity"})],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        motion="euclidean",
        *,
        reference=None,
        mask=None,
        max_iter=50,
        tol=1e-3,
        blur_size=5,
        n_levels="auto",
        max_size=1024,
        phase_correlation=True,
        border_mode="replicate",
        min_score=None,
        on_failure="warn",
        n_jobs=None,
        verbose=0,
    ):
        self.motion = motion
        self.reference = reference
        self.mask = mask
        self.max_iter = max_iter
        self.tol = tol
        self.blur_size = blur_size
        self.n_levels = n_levels
        self.max_size = max_size
        self.phase_correlation = phase_correlation
        self.border_mode = border_mode
        self.min_score = min_score
        self.on_failure = on_failure
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Choose the reference image.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Training images (normal parts), floats in [0, 1] or uint8 / uint16. A table
            ``(n_samples, n_features)`` is read as one-pixel-high images.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted registrar.
        """
        if self.blur_size % 2 == 0:
            raise ValueError(f"blur_size must be an odd integer, got {self.blur_size}.")
        images, _ = validate_images(self, X, reset=True)
        hw = self.image_shape_[:2]
        if self.reference is None:
            self.reference_index_ = _median_closest(images)
            self.reference_ = images[self.reference_index_].copy()
        else:
            ref = _to_float(np.asarray(self.reference), type(self).__name__)
            if ref.dtype.kind != "f":
                raise TypeError(f"reference must be a numeric image, got dtype {ref.dtype}.")
            if ref.shape[:2] != hw or ref.ndim not in (2, 3) or not np.isfinite(ref).all():
                raise ValueError(
                    f"reference must be a finite image of height x width {hw} (the training "
                    f"images' size); got an array of shape {ref.shape}."
                )
            self.reference_index_ = None
            self.reference_ = np.ascontiguousarray(ref, dtype=np.float32)
        if self.mask is None:
            self.mask_ = None
        else:
            mask = np.asarray(self.mask)
            if mask.shape != hw:
                raise ValueError(
                    f"mask must have shape {hw} (height, width of the images); got {mask.shape}."
                )
            mask = mask.astype(bool)
            if not mask.any():
                raise ValueError("mask selects no pixel; give a mask with non-zero pixels.")
            self.mask_ = mask
        return self

    def transform(self, X):
        """Warp every image onto the reference.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Images of the fitted size.

        Returns
        -------
        X_registered : ndarray of the same shape as X, float32
            The aligned images; those whose registration failed are returned unchanged
            (unless ``on_failure="raise"``).

        See Also
        --------
        transform_with_info : the same images, and what happened to each.
        """
        return self._register(X, stacklevel=3)[0]

    def transform_with_info(self, X):
        """Warp every image onto the reference and report the outcome per image.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Images of the fitted size.

        Returns
        -------
        X_registered : ndarray of the same shape as X, float32
            What :meth:`transform` returns.
        info : :class:`~sklearn.utils.Bunch`
            ``warps``, ndarray of shape (n_samples, 3, 3): the estimated warps as
            homogeneous 3x3 matrices in OpenCV's convention, mapping a pixel ``(x, y, 1)``
            of the reference onto the input image (the output is ``input(W @ (x, y, 1))``);
            the identity where registration failed. ``scores``, ndarray of shape
            (n_samples,): the ECC correlation coefficient at the finest level estimated, in
            [-1, 1]; NaN where no warp could be computed. ``failed``, ndarray of shape
            (n_samples,) of bool: True for the images left unwarped.
        """
        return self._register(X, stacklevel=3)

    def _register(self, X, stacklevel):
        images, was_2d = validate_images(self, X, reset=False)
        n = images.shape[0]
        plan = self._plan()
        ref_pyramid = _pyramid(_intensity(self.reference_), plan["levels"])
        mask = None if self.mask_ is None else self.mask_.astype(np.uint8)
        mask_pyramid = None if mask is None else _pyramid(mask, plan["levels"], nearest=True)
        out = np.empty_like(images)
        warps = np.empty((n, 3, 3))
        scores = np.empty(n)
        errors = [None] * n

        def run(sl):
            for i in range(sl.start, sl.stop):
                warp, score, err = _estimate(
                    ref_pyramid, mask_pyramid, _intensity(images[i]), plan, self.min_score
                )
                if err is None:
                    out[i] = _warp(images[i], warp, _BORDERS[self.border_mode])
                else:
                    out[i] = images[i]
                warps[i], scores[i], errors[i] = warp, score, err

        chunks = list(iter_batches(n, _CHUNK))
        # the chunks write into out, warps, ...: shared memory is required (threads), also
        # under an active process or cluster backend (joblib.parallel_backend("dask"))
        done = Parallel(n_jobs=self.n_jobs, require="sharedmem", return_as="generator")(
            delayed(run)(sl) for sl in chunks
        )
        if self.verbose:
            from tqdm.auto import tqdm

            done = tqdm(done, total=len(chunks), desc=type(self).__name__, unit="chunk")
        for _ in done:  # run every chunk (results are written into out, warps, ...)
            pass

        failed = np.array([e is not None for e in errors], dtype=bool)
        if failed.any():
            idx = np.flatnonzero(failed)
            if self.on_failure == "raise":
                raise RuntimeError(
                    f"ECC registration failed for image {idx[0]} of the batch "
                    f"({len(idx)} of {n} failed): {errors[idx[0]]} Set on_failure='warn' or "
                    "'identity' to keep such images unwarped, or check the reference / mask."
                )
            if self.on_failure == "warn":
                shown = ", ".join(f"{i} ({errors[i]})" for i in idx[:5])
                more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
                warnings.warn(
                    f"ECCRegistrar could not register {len(idx)} of {n} image(s); they are "
                    f"returned unwarped (identity warp; transform_with_info reports them): "
                    f"{shown}{more}.",
                    ConvergenceWarning,
                    stacklevel=stacklevel,  # the caller of transform / transform_with_info
                )
        info = Bunch(warps=warps, scores=scores, failed=failed)
        return restore_layout(out, was_2d), info

    def valid_masks(self, warps):
        """Mark the pixels of the registered images that come from inside the input images.

        Parameters
        ----------
        warps : ndarray of shape (n_samples, 3, 3) or (n_samples, 2, 3)
            Warps in the convention of ``info.warps`` of :meth:`transform_with_info`.

        Returns
        -------
        masks : ndarray of shape (n_samples, height, width) of bool
            True where the output pixel was interpolated from input pixels, False where
            ``border_mode`` filled it.
        """
        check_is_fitted(self)
        warps = np.asarray(warps, dtype=np.float64)
        if warps.ndim != 3 or warps.shape[1:] not in ((3, 3), (2, 3)):
            raise ValueError(f"warps must have shape (n, 3, 3) or (n, 2, 3); got {warps.shape}.")
        h, w = self.image_shape_[:2]
        ones = np.ones((h, w), np.float32)
        masks = np.empty((warps.shape[0], h, w), bool)
        for i, warp in enumerate(warps):
            moved = _warp(ones, warp, cv2.BORDER_CONSTANT)
            masks[i] = moved > 0.999
        return masks

    last_warps_ = removed_attribute("last_warps_", "transform_with_info(X)[1].warps")
    last_scores_ = removed_attribute("last_scores_", "transform_with_info(X)[1].scores")
    last_failed_ = removed_attribute("last_failed_", "transform_with_info(X)[1].failed")

    def __sklearn_tags__(self):
        tags = image_tags(super().__sklearn_tags__())
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _plan(self):
        """Pyramid levels, the finest estimated level and iterations per level."""
        h, w = self.image_shape_[:2]
        short = min(h, w)
        if self.n_levels == "auto":
            n_levels = 1 + max(0, int(math.floor(math.log2(max(short, 1) / _AUTO_COARSEST))))
        else:
            cap = 1 + max(0, int(math.floor(math.log2(max(short, 1) / _MIN_COARSEST))))
            n_levels = min(int(self.n_levels), cap)
        finest = 0
        if self.max_size is not None and max(h, w) > self.max_size:
            finest = int(math.ceil(math.log2(max(h, w) / self.max_size)))
        coarsest = max(finest, n_levels - 1)
        levels = list(range(finest, coarsest + 1))
        return {
            "levels": levels,
            "shape": (h, w),
            "motion": _MOTIONS[self.motion],
            "max_iter": int(self.max_iter),
            "tol": float(self.tol),
            "blur_size": int(self.blur_size),
            "phase": bool(self.phase_correlation),
        }


