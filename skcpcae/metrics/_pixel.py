# SPDX-License-Identifier: BSD-3-Clause
"""Pixel-level localisation metrics: the per-region overlap (PRO) curve and its normalised
area up to a false-positive rate (AUPRO), as in the MVTec AD papers."""

import numbers

import numpy as np

__all__ = ["aupro", "pixel_auroc", "pro_curve"]


def _check_masks_and_maps(masks, anomaly_maps):
    masks = np.asarray(masks)
    maps = np.asarray(anomaly_maps)
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    if masks.ndim != 3:
        raise ValueError(
            f"masks must have shape (n_samples, height, width); got {masks.shape}."
        )
    if maps.shape != masks.shape:
        raise ValueError(f"anomaly_maps has shape {maps.shape}, masks have {masks.shape}.")
    maps = maps.astype(np.float64, copy=False)
    if not np.all(np.isfinite(maps)):
        raise ValueError("anomaly_maps hold NaN or infinite values.")
    return masks.astype(bool), maps


def _region_labels(masks):
    """8-connected defect regions, numbered 1..K across all images (0 = normal)."""
    from scipy import ndimage

    labels = np.zeros(masks.shape, np.int64)
    n_regions = 0
    structure = np.ones((3, 3), dtype=int)
    for i, mask in enumerate(masks):
        if mask.any():
            lab, n = ndimage.label(mask, structure=structure)
            labels[i] = np.where(lab > 0, lab + n_regions, 0)
            n_regions += n
    return labels, n_regions


def pro_curve(masks, anomaly_maps):
    """Per-region overlap against false-positive rate, over every threshold.

    Lowering a threshold over all pixels of all maps, the false-positive rate is the fraction
    of normal pixels (``masks`` False) at or above it, and the per-region overlap (PRO) is the
    mean, over every connected defect region of every image (8-connectivity), of the fraction
    of the region's pixels at or above it: each region counts once, whatever its size
    (Bergmann et al. 2019, 2021).

    Parameters
    ----------
    masks : array-like of shape (n_samples, height, width), bool
        Ground-truth defect masks (True = defect).
    anomaly_maps : array-like of shape (n_samples, height, width)
        Higher = more anomalous.

    Returns
    -------
    fpr : ndarray of shape (n_thresholds + 1,)
        Increasing false-positive rates, from 0.
    pro : ndarray of shape (n_thresholds + 1,)
        The per-region overlap at each of them, from 0.
    thresholds : ndarray of shape (n_thresholds,)
        Decreasing map values; ``fpr[i + 1]``, ``pro[i + 1]`` are those of
        ``anomaly_maps >= thresholds[i]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.metrics import pro_curve
    >>> masks = np.array([[[0, 1, 1, 0]]], bool)
    >>> maps = np.array([[[0.1, 0.9, 0.4, 0.3]]])
    >>> fpr, pro, t = pro_curve(masks, maps)
    >>> fpr.tolist(), pro.tolist()
    ([0.0, 0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0, 1.0])
    """
    masks, maps = _check_masks_and_maps(masks, anomaly_maps)
    labels, n_regions = _region_labels(masks)
    n_normal = int((~masks).sum())
    if n_regions == 0:
        raise ValueError("The PRO curve needs defect pixels in masks; there are none.")
    if n_normal == 0:
        raise ValueError("The PRO curve needs normal pixels in masks; every pixel is a defect.")
    sizes = np.bincount(labels.ravel(), minlength=n_regions + 1).astype(np.float64)
    # what each pixel adds when the threshold passes it: 1 / n_normal to the FPR (normal
    # pixels), 1 / (K * |region|) to the PRO (defect pixels)
    region_weight = np.zeros(n_regions + 1)
    region_weight[1:] = 1.0 / (n_regions * sizes[1:])
    lab, last, thresholds = _descending(maps, labels)
    fpr = np.cumsum(lab == 0, dtype=np.float64)[last] / n_normal
    pro = np.cumsum(region_weight[lab])[last]
    pro /= pro[-1]  # the sum is 1 up to rounding; make the end point (and equal ones) exact
    return np.r_[0.0, fpr], np.r_[0.0, np.minimum(pro, 1.0)], thresholds


def pixel_auroc(masks, anomaly_maps):
    """Pixel-level AUROC of anomaly maps against ground-truth defect masks.

    Every pixel of every image is a sample, defect pixels the positive class; equal to
    :func:`sklearn.metrics.roc_auc_score` on the flattened arrays, computed with one sort of
    the pixels.

    Parameters
    ----------
    masks : array-like of shape (n_samples, height, width), bool
        Ground-truth defect masks (True = defect).
    anomaly_maps : array-like of shape (n_samples, height, width)
        Higher = more anomalous; must have the masks' shape.

    Returns
    -------
    auroc : float
        Pixel-level area under the ROC curve.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.metrics import pixel_auroc
    >>> masks = np.array([[[0, 1], [0, 1]]], bool)
    >>> pixel_auroc(masks, np.array([[[0.1, 0.9], [0.5, 0.4]]]))
    0.75
    """
    masks, maps = _check_masks_and_maps(masks, anomaly_maps)
    n_pos = int(masks.sum())
    if n_pos == 0 or n_pos == masks.size:
        raise ValueError("AUROC / AP need both normal and anomalous samples in y.")
    lab, last, _ = _descending(maps, masks.astype(np.int64))
    tpr = np.r_[0.0, np.cumsum(lab, dtype=np.float64)[last] / n_pos]
    fpr = np.r_[0.0, np.cumsum(lab == 0, dtype=np.float64)[last] / (masks.size - n_pos)]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _descending(maps, labels):
    """Pixels by decreasing map value: their labels, the index of the last pixel of each run
    of equal values, and those values.

    float32 maps (and float64 maps that are float32 exactly) are sorted as one 64-bit key
    per pixel, value bits above label bits: a plain sort instead of an argsort of the values.
    """
    values = maps.ravel()
    lab = labels.ravel()
    as32 = values.astype(np.float32)
    if lab.max(initial=0) < 2**32 and np.array_equal(as32, values):
        bits = (as32 + np.float32(0.0)).view(np.uint32)  # -0.0 becomes +0.0
        # order-preserving map of IEEE floats onto unsigned integers
        key = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
        key = np.sort((key << np.uint64(32)) | lab.astype(np.uint64))[::-1]
        lab = (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
        high = key >> np.uint64(32)
        last = np.r_[np.flatnonzero(high[1:] != high[:-1]), key.size - 1]
        return lab, last, _unkey(high[last])
    order = np.argsort(-values, kind="stable")
    scores = values[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    return lab[order], last, scores[last]


def _unkey(high):
    """The float32 values of sort keys made by :func:`_descending`."""
    bits = high.astype(np.uint32)
    bits = np.where(bits >> 31, bits & np.uint32(0x7FFFFFFF), ~bits)
    return bits.view(np.float32).astype(np.float64)


def aupro(masks, anomaly_maps, *, max_fpr=0.3):
    """Normalised area under the PRO curve up to a false-positive rate (AUPRO).

    The localisation metric of the MVTec AD benchmark: the area under :func:`pro_curve`
    (trapezoids, the curve interpolated linearly at ``max_fpr``) from FPR 0 to ``max_fpr``,
    divided by ``max_fpr``, so that 1 is perfect and a random map scores about
    ``max_fpr / 2``. Computed from one sort of all pixels.

    Parameters
    ----------
    masks : array-like of shape (n_samples, height, width), bool
        Ground-truth defect masks; images without defects add normal pixels only.
    anomaly_maps : array-like of shape (n_samples, height, width)
        Higher = more anomalous, at the masks' size.
    max_fpr : float in (0, 1], default=0.3
        Upper limit of the integration.

    Returns
    -------
    aupro : float
        Normalised area under the PRO curve, in [0, 1].

    References
    ----------
    .. [1] Bergmann, P., Batzner, K., Fauser, M., Sattlegger, D., Steger, C. (2021). The MVTec
       anomaly detection dataset: a comprehensive real-world dataset for unsupervised anomaly
       detection. International Journal of Computer Vision 129, 1038-1059.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.metrics import aupro
    >>> masks = np.zeros((2, 8, 8), bool); masks[1, 2:4, 2:5] = True
    >>> aupro(masks, masks.astype(float))  # a perfect map
    1.0
    >>> round(aupro(masks, np.random.default_rng(0).random((2, 8, 8))), 2) < 0.5
    True
    """
    if (isinstance(max_fpr, bool) or not isinstance(max_fpr, numbers.Real)
            or not 0 < max_fpr <= 1):
        raise ValueError(f"max_fpr must be a number in (0, 1], got {max_fpr!r}.")
    fpr, pro, _ = pro_curve(masks, anomaly_maps)
    return float(_area_up_to(fpr, pro, float(max_fpr)) / max_fpr)


def _area_up_to(x, y, x_max):
    """Trapezoid area under ``y(x)`` (x increasing) from ``x[0]`` to ``x_max``."""
    inside = x <= x_max
    xs, ys = x[inside], y[inside]
    if xs[-1] < x_max and inside.sum() < x.size:  # interpolate the point at x_max
        j = int(inside.sum())  # first point beyond x_max
        x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs, ys = np.r_[xs, x_max], np.r_[ys, y_at]
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))
