# SPDX-License-Identifier: BSD-3-Clause
"""The algorithm behind ``ECCRegistrar``, as plain functions on arrays: image pyramids, the
phase-correlation start, OpenCV's ECC refinement level by level, warping, and the default
reference (the image closest to the median)."""

import cv2
import numpy as np

_MIN_SIDE = 8  # images smaller than this on a side are not registered (recorded as failed)
_THUMBNAIL = 128  # larger side of the thumbnails used to pick the default reference


def _intensity(image):
    """Gray image of an (H, W) or (H, W, C) image: the mean over channels."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        return np.ascontiguousarray(image.mean(axis=2, dtype=np.float32))
    return image


def _level_shape(shape, level):
    h, w = shape
    return max(1, int(round(h / 2**level))), max(1, int(round(w / 2**level)))


def _pyramid(image, levels, nearest=False):
    """{level: image resized by 2**-level} for the requested levels."""
    shape = image.shape[:2]
    out = {}
    for level in levels:
        if level == 0:
            out[level] = image
            continue
        h, w = _level_shape(shape, level)
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
        out[level] = cv2.resize(image, (w, h), interpolation=interp)
    return out


def _to_full(shape, level_shape):
    """3x3 map from pixel coordinates of a pyramid level to full resolution (pixel centres)."""
    sy, sx = shape[0] / level_shape[0], shape[1] / level_shape[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _ecc(template, image, warp, plan, n_iter, mask):
    """One call of OpenCV's ECC; returns (score, 3x3 warp) or raises cv2.error."""
    motion = plan["motion"]
    rows = 3 if motion == cv2.MOTION_HOMOGRAPHY else 2
    init = np.ascontiguousarray(warp[:rows], dtype=np.float32)
    kind = cv2.TERM_CRITERIA_COUNT | (cv2.TERM_CRITERIA_EPS if plan["tol"] > 0 else 0)
    criteria = (kind, int(n_iter), plan["tol"])
    if mask is None:
        score, found = cv2.findTransformECC(
            template, image, init, motion, criteria, None, plan["blur_size"]
        )
    elif hasattr(cv2, "findTransformECCWithMask"):
        score, found = cv2.findTransformECCWithMask(
            template, image, mask, mask, init, motion, criteria, plan["blur_size"]
        )
    else:  # OpenCV < 4.12: only an input-image mask (approximation for small motions)
        score, found = cv2.findTransformECC(
            template, image, init, motion, criteria, mask, plan["blur_size"]
        )
    out = np.eye(3)
    out[:rows] = found
    if not (np.isfinite(out).all() and np.isfinite(score)):
        raise cv2.error("ECC returned a non-finite warp or score.")
    return float(score), out


def _phase_shift(template, image, mask=None):
    """Translation (3x3) of ``image`` relative to ``template`` by phase correlation."""
    h, w = template.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_64F)
    template = template.astype(np.float64)
    image = image.astype(np.float64)
    if mask is not None:  # zero-mean inside the mask, nothing outside it
        keep = mask > 0
        template = np.where(keep, template - template[keep].mean(), 0.0)
        image = np.where(keep, image - image[keep].mean(), 0.0)
    (dx, dy), _ = cv2.phaseCorrelate(template, image, window)
    warp = np.eye(3)
    if np.isfinite(dx) and np.isfinite(dy):
        warp[0, 2], warp[1, 2] = dx, dy
    return warp


def _estimate(ref_pyramid, mask_pyramid, image, plan, min_score):
    """Coarse-to-fine ECC of one intensity image. Returns (warp, score, error or None)."""
    shape = plan["shape"]
    identity = np.eye(3)
    if min(shape) < _MIN_SIDE:
        return identity, np.nan, f"image too small for ECC ({shape[0]}x{shape[1]} pixels)."
    levels = plan["levels"]
    img_pyramid = _pyramid(image, levels)
    warp, score, error, k = None, np.nan, None, 0
    for level in reversed(levels):  # coarsest first
        template, moving = ref_pyramid[level], img_pyramid[level]
        mask = None if mask_pyramid is None else mask_pyramid[level]
        if mask is not None and not mask.any():
            continue
        to_full = _to_full(shape, template.shape)
        from_full = np.linalg.inv(to_full)
        if warp is None:  # first level that converges: try the starting points
            starts = [identity]
            if plan["phase"]:
                starts.append(_phase_shift(template, moving, mask))
            best = None
            for start in starts:
                try:
                    result = _ecc(template, moving, start, plan, plan["max_iter"], mask)
                except cv2.error as exc:
                    error = _short(exc)
                    continue
                if best is None or result[0] > best[0]:
                    best = result
            if best is None:
                continue
            score, warp = best[0], to_full @ best[1] @ from_full
            k = 1
        else:  # refine with fewer iterations; a failed refinement keeps the coarser warp
            n_iter = min(plan["max_iter"], max(5, plan["max_iter"] >> (2 * k)))
            k += 1
            try:
                s, w = _ecc(template, moving, from_full @ warp @ to_full, plan, n_iter, mask)
            except cv2.error:
                continue
            score, warp = s, to_full @ w @ from_full
    if warp is None:
        return identity, np.nan, error or "ECC did not converge at any pyramid level."
    if min_score is not None and score < min_score:
        return identity, score, f"correlation {score:.3f} is below min_score={min_score}."
    return warp, score, None


def _short(exc):
    """The informative last line of an OpenCV error."""
    text = str(exc).strip().splitlines()
    line = text[-1] if text else repr(exc)
    if "error:" in line:
        line = line.split("error:", 1)[1]
    line = line.split(" in function", 1)[0].strip()
    return line if line.endswith(".") else line + "."


def _warp(image, warp, border):
    """Resample ``image`` at ``warp @ (x, y, 1)`` (OpenCV's inverse map)."""
    h, w = image.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warp = np.asarray(warp, dtype=np.float64)
    if warp.shape == (3, 3) and np.allclose(warp[2], (0.0, 0.0, 1.0)):
        warp = warp[:2]
    if warp.shape == (2, 3):
        out = cv2.warpAffine(image, warp, (w, h), flags=flags, borderMode=border, borderValue=0)
    else:
        out = cv2.warpPerspective(image, warp, (w, h), flags=flags, borderMode=border,
                                  borderValue=0)
    return out.reshape(image.shape)


def _median_closest(images):
    """Index of the image whose intensity thumbnail is closest to the pixel-wise median."""
    n = images.shape[0]
    h, w = images.shape[1:3]
    scale = min(1.0, _THUMBNAIL / max(h, w))
    th, tw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    thumbs = np.empty((n, th, tw), np.float32)
    for i in range(n):
        gray = _intensity(images[i])
        thumbs[i] = gray if scale == 1.0 else cv2.resize(gray, (tw, th),
                                                         interpolation=cv2.INTER_AREA)
    median = np.median(thumbs, axis=0)
    dist = np.square(thumbs - median).reshape(n, -1).sum(axis=1)
    return int(np.argmin(dist))

