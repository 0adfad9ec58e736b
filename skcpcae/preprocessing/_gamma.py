# SPDX-License-Identifier: BSD-3-Clause
"""Adaptive gamma correction of the object's intensity (Saeedi & Giusti 2023, eq. 1)."""

import numbers
import warnings

import cv2
import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from .._base import ImageOutputMixin, image_tags, restore_layout, validate_images
from ..utils._deprecation import removed_attribute
from ..utils.fixes import Interval
from ..utils.fixes import fit_context as _fit_context

__all__ = ["AdaptiveGamma", "object_mask"]

# I_mu this close to 0 or 1 (one grey level of an 8-bit image) makes log10(I_mu) useless.
_GUARD = 1.0 / 255.0
# Gradient of a sharp black-to-white step under OpenCV's 3x3 Sobel on a uint8 image.
_SOBEL_STEP = 4.0 * 255.0


def _intensity(image):
    """IHS intensity: the image itself when gray, the mean of R, G, B otherwise."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        if image.shape[2] == 1:
            return image[..., 0]
        return image.mean(axis=2, dtype=np.float32)
    return image


def object_mask(
    image, *, canny_thresholds=(0.05, 0.1), sigma=1.0, dilation_size=5, mask_size=128
):
    """Mask of the object in an image: Canny edges, dilation, hole filling, largest region.

    The segmentation of Saeedi & Giusti (2023), Sec. 3.1, used by :class:`AdaptiveGamma` to
    measure the object's mean intensity. It runs on a copy of the intensity shrunk to
    ``mask_size`` pixels on its longer side, so that its parameters mean the same at every
    image resolution, and the mask is resized back to the image.

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3)
        Float image in [0, 1]; colour images are segmented on their intensity
        ``(R + G + B) / 3``.
    canny_thresholds : tuple of (float, float), default=(0.05, 0.1)
        Low and high hysteresis thresholds of the Canny detector. The intensity is first
        stretched to [0, 1] between its 0.5th and 99.5th percentiles, so the thresholds are
        fractions of the image's own contrast: 0.1 is the gradient of a sharp step of 10% of
        that range (1.0 that of a sharp step from black to white).
    sigma : float, default=1.0
        Standard deviation, in pixels of the shrunk copy, of the Gaussian blur applied
        before Canny (0: none).
    dilation_size : int, default=5
        Diameter, in pixels of the shrunk copy, of the disc that dilates the edges, closing
        gaps in the object's outline before its holes are filled. 0 or 1: no dilation.
    mask_size : int or None, default=128
        Longer side in pixels of the copy the segmentation runs on (images already smaller
        are not enlarged). None segments at full resolution, where ``sigma`` and
        ``dilation_size`` must then be scaled with the image.

    Returns
    -------
    mask : ndarray of shape (height, width) of bool
        The largest 8-connected region of the dilated, hole-filled edge map; all False when
        no edge was found (e.g. a blank image).

    Examples
    --------
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.preprocessing import object_mask
    >>> X, _ = make_parts(1, size=(64, 64), random_state=0)
    >>> mask = object_mask(X[0])
    >>> mask.shape, bool(mask[32, 32]), bool(mask[0, 0])
    ((64, 64), True, False)
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (height, width[, channels]); got {image.shape}.")
    low, high = (float(t) for t in canny_thresholds)
    if not 0 <= low <= high:
        raise ValueError(
            f"canny_thresholds must be (low, high) with 0 <= low <= high; got {canny_thresholds}."
        )
    return _object_mask(
        np.clip(_intensity(image), 0.0, 1.0), low, high, float(sigma), int(dilation_size),
        mask_size,
    )


def _object_mask(intensity, low, high, sigma, dilation_size, mask_size):
    """object_mask on an intensity image: shrink, segment, resize the mask back."""
    h, w = intensity.shape
    scale = 1.0 if mask_size is None else min(1.0, mask_size / max(h, w))
    if scale == 1.0:
        return _segment(intensity, low, high, sigma, dilation_size)
    small = cv2.resize(
        intensity, (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA,
    )
    mask = _segment(small, low, high, sigma, dilation_size).astype(np.float32)
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5


def _segment(intensity, low, high, sigma, dilation_size):
    """Canny -> dilation -> hole filling -> largest 8-connected region."""
    h, w = intensity.shape
    lo, hi = np.percentile(intensity, [0.5, 99.5]) if intensity.size else (0.0, 0.0)
    if not hi - lo > 1e-6:
        return np.zeros((h, w), bool)
    stretched = np.clip((intensity - lo) / (hi - lo), 0.0, 1.0)
    gray = np.round(stretched * 255.0).astype(np.uint8)
    if sigma > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), sigma)
    edges = cv2.Canny(gray, low * _SOBEL_STEP, high * _SOBEL_STEP, L2gradient=True)
    if dilation_size > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dilation_size, dilation_size))
        edges = cv2.dilate(edges, kernel)
    filled = ndimage.binary_fill_holes(edges > 0)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
        filled.astype(np.uint8), connectivity=8
    )
    if n_labels <= 1:
        return np.zeros((h, w), bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


class AdaptiveGamma(ImageOutputMixin, TransformerMixin, BaseEstimator):
    """Gamma correction that brings the object's mean intensity to a target value.

    For each image (Saeedi & Giusti 2023, Sec. 3.1): take the intensity ``I`` of the IHS
    model; segment the object (:func:`object_mask`: Canny edges, dilation, hole filling,
    largest region); measure its mean intensity ``I_mu``; raise the intensity to the power
    ``g = log10(C) / log10(I_mu)`` (eq. 1, ``C = target_intensity``), which maps ``I_mu``
    onto ``C``; go back to the image's colour space. Shiny and matte, dark and bright parts
    come out with similar object brightness.

    The stage is stateless: each image gets its own gamma; :meth:`fit` only records the
    image shape.

    Read more in the :ref:`User Guide <gamma>`.

    .. versionadded:: 0.1

    Parameters
    ----------
    target_intensity : float in (0, 1), default=0.4
        ``C`` of eq. 1: the object's mean intensity after correction (the paper's value).
    canny_thresholds : tuple of (float, float), default=(0.05, 0.1)
        Low and high Canny thresholds, as fractions of each image's own intensity range (see
        :func:`object_mask`).
    sigma : float, default=1.0
        Gaussian blur before Canny, in pixels of the segmentation copy (see ``mask_size``).
    dilation_size : int, default=5
        Diameter of the disc dilating the edges before hole filling, in pixels of the
        segmentation copy.
    mask_size : int or None, default=128
        The object is segmented on a copy of the intensity shrunk to this many pixels on its
        longer side (fast, and the same parameters work at every resolution); None
        segments at full resolution.

    Attributes
    ----------
    image_shape_ : tuple of int
        ``(height, width[, channels])`` of the images seen in fit.
    n_features_in_ : int
        Number of values per image seen during fit.

    See Also
    --------
    object_mask : the segmentation on its own.
    skcpcae.preprocessing.ECCRegistrar : the stage before this one.

    Notes
    -----
    **IHS variant.** The intensity of an RGB image is ``I = (R + G + B) / 3``. The inverse
    transform multiplies the three channels by ``I**g / I``, which keeps hue and saturation
    (the ratios between channels) and sets the intensity to ``I**g``; a channel pushed above 1
    is clipped at 1, and black pixels stay black. Grayscale images are their own intensity.

    **Guards.** When no object is found (no edge: blank image), ``I_mu`` is the mean of the
    whole image. When ``I_mu`` is within one grey level of 0 or 1 (black or saturated image)
    eq. 1 is meaningless and ``g = 1`` (image unchanged). Both cases emit one ``UserWarning``
    per call and are reported by :meth:`transform_with_info`; the output is always finite and in [0, 1].

    **Values outside [0, 1].** Gamma correction is defined on intensities in [0, 1]: float
    values outside it give a ``UserWarning`` (in :meth:`fit` and after it) and are clipped to
    [0, 1] before the correction, the package's one rule for out-of-range pixels (no stage
    raises; ``docs/conventions.md``). Scale such images first, e.g. ``X / 255``.

    **What happened to each image.** :meth:`transform` leaves the estimator as it is;
    :meth:`transform_with_info` returns the same images and, per image, ``g``, ``I_mu`` and
    whether the object mask was empty. The attributes ``last_gammas_``,
    ``last_object_intensities_`` and ``last_empty_masks_`` that ``transform`` wrote before
    are no longer set.

    Examples
    --------
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.preprocessing import AdaptiveGamma
    >>> X, _ = make_parts(3, size=(64, 64), random_state=0)
    >>> dark = X ** 2
    >>> gamma = AdaptiveGamma().fit(dark)
    >>> Xt, info = gamma.transform_with_info(dark)
    >>> Xt.shape, Xt.dtype.name, bool(Xt.min() >= 0 and Xt.max() <= 1)
    ((3, 64, 64), 'float32', True)
    >>> bool((info.gammas < 1).all())  # dark parts are brightened
    True
    """

    _parameter_constraints: dict = {
        "target_intensity": [Interval(numbers.Real, 0, 1, closed="neither")],
        "canny_thresholds": [tuple, list],
        "sigma": [Interval(numbers.Real, 0, None, closed="left")],
        "dilation_size": [Interval(numbers.Integral, 0, None, closed="left")],
        "mask_size": [Interval(numbers.Integral, 8, None, closed="left"), None],
    }

    def __init__(
        self,
        target_intensity=0.4,
        *,
        canny_thresholds=(0.05, 0.1),
        sigma=1.0,
        dilation_size=5,
        mask_size=128,
    ):
        self.target_intensity = target_intensity
        self.canny_thresholds = canny_thresholds
        self.sigma = sigma
        self.dilation_size = dilation_size
        self.mask_size = mask_size

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record the image shape (nothing is learned).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            Images with values in [0, 1] (or uint8 / uint16). A table
            ``(n_samples, n_features)`` is read as one-pixel-high images.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        self._check_thresholds()
        validate_images(self, X, reset=True, value_range="unit", allowed_channels=(1, 3))
        return self

    def transform(self, X):
        """Gamma-correct each image so that its object's mean intensity nears the target.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            Images of the fitted size, values in [0, 1].

        Returns
        -------
        X_corrected : ndarray of the same shape as X, float32 in [0, 1]
            The gamma-corrected images.

        See Also
        --------
        transform_with_info : the same images, and the gamma of each.
        """
        return self._correct(X, stacklevel=4)[0]  # _warn < _correct < transform < caller

    def transform_with_info(self, X):
        """Gamma-correct each image and report, per image, what was applied.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            Images of the fitted size, values in [0, 1].

        Returns
        -------
        X_corrected : ndarray of the same shape as X, float32 in [0, 1]
            What :meth:`transform` returns.
        info : :class:`~sklearn.utils.Bunch`
            ``gammas``, ndarray of shape (n_samples,): the exponent ``g`` applied to each
            image. ``object_intensities``, ndarray of shape (n_samples,): ``I_mu``, the mean
            intensity inside each object mask (the whole image when the mask was empty).
            ``empty_masks``, ndarray of shape (n_samples,) of bool: True where no object was
            found and the whole image was used.
        """
        return self._correct(X, stacklevel=4)  # _warn < _correct < transform_with_info < caller

    def _correct(self, X, stacklevel):
        images, was_2d = validate_images(
            self, X, reset=False, value_range="unit", allowed_channels=(1, 3)
        )
        n = images.shape[0]
        out = np.empty_like(images)
        gammas = np.ones(n)
        means = np.empty(n)
        empty = np.zeros(n, bool)
        log_target = np.log10(float(self.target_intensity))
        for i in range(n):
            intensity = np.clip(_intensity(images[i]), 0.0, 1.0)
            mask = self._mask(intensity)
            empty[i] = not mask.any()
            means[i] = float(intensity[mask].mean()) if not empty[i] else float(intensity.mean())
            if _GUARD < means[i] < 1.0 - _GUARD:
                gammas[i] = log_target / np.log10(means[i])
            out[i] = _apply_gamma(images[i], intensity, gammas[i])
        self._warn(empty, means, stacklevel)
        info = Bunch(gammas=gammas, object_intensities=means, empty_masks=empty)
        return restore_layout(out, was_2d), info

    def compute_masks(self, X):
        """Object masks that :meth:`transform` would use (see :func:`object_mask`).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            Images of the fitted size, values in [0, 1].

        Returns
        -------
        masks : ndarray of shape (n_samples, height, width) of bool
            All False for an image where no object was found.
        """
        check_is_fitted(self)
        images, _ = validate_images(
            self, X, reset=False, value_range="unit", allowed_channels=(1, 3)
        )
        masks = np.empty(images.shape[:3], bool)
        for i in range(images.shape[0]):
            masks[i] = self._mask(np.clip(_intensity(images[i]), 0.0, 1.0))
        return masks

    last_gammas_ = removed_attribute("last_gammas_", "transform_with_info(X)[1].gammas")
    last_object_intensities_ = removed_attribute(
        "last_object_intensities_", "transform_with_info(X)[1].object_intensities"
    )
    last_empty_masks_ = removed_attribute(
        "last_empty_masks_", "transform_with_info(X)[1].empty_masks"
    )

    def __sklearn_tags__(self):
        tags = image_tags(super().__sklearn_tags__())
        tags.transformer_tags.preserves_dtype = ["float32"]
        # not positive_only: negative values are read (clipped, with a warning), not refused
        return tags

    def _check_thresholds(self):
        thresholds = tuple(self.canny_thresholds)
        if (
            len(thresholds) != 2
            or not all(isinstance(t, numbers.Real) for t in thresholds)
            or not 0 <= thresholds[0] <= thresholds[1]
        ):
            raise ValueError(
                "canny_thresholds must be a pair (low, high) of numbers with "
                f"0 <= low <= high; got {self.canny_thresholds!r}."
            )

    def _mask(self, intensity):
        low, high = (float(t) for t in self.canny_thresholds)
        return _object_mask(
            intensity, low, high, float(self.sigma), int(self.dilation_size), self.mask_size
        )

    @staticmethod
    def _warn(empty, means, stacklevel):
        if empty.any():
            idx = np.flatnonzero(empty)
            warnings.warn(
                f"AdaptiveGamma found no object (no edge) in {len(idx)} image(s) "
                f"{idx[:10].tolist()}{'...' if len(idx) > 10 else ''}; their whole image is "
                "used as the object.",
                UserWarning,
                stacklevel=stacklevel,
            )
        guarded = np.flatnonzero(~((means > _GUARD) & (means < 1.0 - _GUARD)))
        if guarded.size:
            warnings.warn(
                f"AdaptiveGamma: the object's mean intensity is black or saturated (within one "
                f"grey level of 0 or 1) in {guarded.size} image(s) "
                f"{guarded[:10].tolist()}{'...' if guarded.size > 10 else ''}; gamma = 1 "
                "(unchanged) is used for them.",
                UserWarning,
                stacklevel=stacklevel,
            )


def _apply_gamma(image, intensity, gamma):
    """``I <- I**gamma`` and the inverse IHS transform (channel scaling), clipped to [0, 1]."""
    if gamma == 1.0:
        return np.clip(image, 0.0, 1.0)
    new = np.power(intensity, np.float32(gamma), dtype=np.float32)
    if image.ndim == 2:
        out = new
    elif image.shape[2] == 1:
        out = new[..., None]
    else:
        ratio = np.divide(new, intensity, out=np.zeros_like(new), where=intensity > 0)
        out = image * ratio[..., None]
    out = np.clip(out, 0.0, 1.0)
    out[~np.isfinite(out)] = 0.0
    return out
