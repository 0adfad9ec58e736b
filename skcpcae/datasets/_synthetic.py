# SPDX-License-Identifier: BSD-3-Clause
"""Small synthetic images for tests and examples: parts, pasted defects, rigid motions."""

import cv2
import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_parts", "paste_defect", "rigid_motion"]


def _draw_part(size, rng, noise):
    """One good part: a bright rounded plate with a grid of fingers on a dark background."""
    h, w = size
    img = np.full((h, w), 0.12, np.float32)
    mh, mw = max(1, h // 8), max(1, w // 8)
    plate = np.zeros((h, w), np.uint8)
    cv2.rectangle(plate, (mw, mh), (w - 1 - mw, h - 1 - mh), 255, thickness=-1)
    plate = cv2.GaussianBlur(plate, (0, 0), max(0.6, min(h, w) / 48)).astype(np.float32) / 255
    img += 0.5 * plate
    # regular "fingers" and two "busbars", as on a solar cell
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(4.0, h / 10.0)
    fingers = 0.06 * (np.cos(2 * np.pi * yy / period) > 0.85)
    bus = np.zeros((h, w), np.float32)
    for frac in (1 / 3, 2 / 3):
        c = int(frac * w)
        bus[:, max(0, c - max(1, w // 64)) : c + max(1, w // 64) + 1] = 0.12
    img += plate * (fingers + bus)
    # smooth low-frequency shading, different per part (lighting / material)
    gx, gy = rng.uniform(-0.04, 0.04, size=2)
    img += plate * (gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    img += rng.normal(0.0, noise, size=(h, w)).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def paste_defect(image, *, kind="blob", random_state=None, strength=0.35, return_mask=False):
    """Paste a synthetic defect onto a copy of ``image`` (gray ``(H, W)`` or ``(H, W, C)``).

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, channels)
        Float image in [0, 1].
    kind : {"blob", "scratch", "crack"}, default="blob"
        A dark round spot, a bright straight line or a dark polyline.
    random_state : int, RandomState instance or None, default=None
        Position and shape of the defect.
    strength : float, default=0.35
        Intensity change inside the defect.
    return_mask : bool, default=False
        Also return the boolean defect mask of shape (height, width).

    Returns
    -------
    defective : ndarray, same shape as ``image``
        A copy of ``image`` with the defect.
    mask : ndarray of shape (height, width), bool
        Only when ``return_mask`` is True.
    """
    rng = check_random_state(random_state)
    img = np.array(image, dtype=np.float32, copy=True)
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cy = int(rng.uniform(0.3, 0.7) * h)
    cx = int(rng.uniform(0.3, 0.7) * w)
    if kind == "blob":
        r = max(2, int(min(h, w) * rng.uniform(0.06, 0.1)))
        cv2.circle(mask, (cx, cy), r, 1, thickness=-1)
        sign = -1.0
    elif kind == "scratch":
        length = min(h, w) * rng.uniform(0.25, 0.4)
        angle = rng.uniform(0, np.pi)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        thick = max(1, min(h, w) // 32)
        cv2.line(mask, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1, thick)
        sign = 1.0
    elif kind == "crack":
        pts = [(cx, cy)]
        for _ in range(4):
            x, y = pts[-1]
            step = min(h, w) * 0.08
            a = rng.uniform(0, 2 * np.pi)
            pts.append((int(np.clip(x + step * np.cos(a), 0, w - 1)),
                        int(np.clip(y + step * np.sin(a), 0, h - 1))))
        cv2.polylines(mask, [np.array(pts, np.int32)], False, 1, max(1, min(h, w) // 40))
        sign = -1.0
    else:
        raise ValueError(f"kind must be 'blob', 'scratch' or 'crack', got {kind!r}.")
    m = mask.astype(bool)
    if img.ndim == 3:
        img[m] = np.clip(img[m] + sign * strength, 0, 1)
    else:
        img[m] = np.clip(img[m] + sign * strength, 0, 1)
    return (img, m) if return_mask else img


def rigid_motion(image, angle=0.0, shift=(0.0, 0.0)):
    """Rotate ``image`` by ``angle`` degrees about its centre and shift it by ``(tx, ty)`` px.

    Parameters
    ----------
    image : array-like of shape (height, width[, channels])
        The image to move.
    angle : float, default=0.0
        Rotation in degrees, counter-clockwise.
    shift : tuple of (float, float), default=(0.0, 0.0)
        Translation ``(tx, ty)`` in pixels.

    Returns
    -------
    moved : ndarray of the shape of ``image``, float32
        The moved image, borders replicated.
    M : ndarray of shape (2, 3)
        The matrix that maps coordinates of the original onto the moved image
        (``cv2.warpAffine(image, M, ...)``).
    """
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape[:2]
    M = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle), 1.0)
    M[0, 2] += shift[0]
    M[1, 2] += shift[1]
    moved = cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return moved.astype(np.float32), M.astype(np.float32)


def make_parts(
    n_samples=20,
    *,
    size=(64, 64),
    n_anomalies=0,
    defect="mixed",
    max_shift=0.0,
    max_rotation=0.0,
    color=False,
    noise=0.02,
    random_state=None,
    return_masks=False,
):
    """Make a batch of synthetic "parts" (a textured plate), some with pasted defects.

    Parameters
    ----------
    n_samples : int, default=20
        Number of normal images.
    size : tuple of int, default=(64, 64)
        Height and width.
    n_anomalies : int, default=0
        Number of defective images appended after the normal ones.
    defect : {"mixed", "blob", "scratch", "crack"}, default="mixed"
        Kind of pasted defect; "mixed" cycles through the three.
    max_shift : float, default=0.0
        Largest random shift, as a fraction of the image size, applied to every image.
    max_rotation : float, default=0.0
        Largest random rotation in degrees.
    color : bool, default=False
        Return RGB images ``(n, H, W, 3)`` (a tinted copy of the gray part).
    noise : float, default=0.02
        Standard deviation of the pixel noise.
    random_state : int, RandomState instance or None, default=None
        Seeds the textures, defects, motions and noise.
    return_masks : bool, default=False
        Also return the defect masks.

    Returns
    -------
    X : ndarray of shape (n_samples + n_anomalies, H, W[, 3]), float32 in [0, 1]
        The images, normal ones first.
    y : ndarray of shape (n_samples + n_anomalies,)
        0 for normal, 1 for defective (the positive class).
    masks : ndarray of shape (n_samples + n_anomalies, H, W), bool
        Only when ``return_masks`` is True.

    Examples
    --------
    >>> from skcpcae.datasets import make_parts
    >>> X, y = make_parts(8, n_anomalies=2, size=(32, 32), random_state=0)
    >>> X.shape, X.dtype.name, y.tolist()
    ((10, 32, 32), 'float32', [0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    """
    rng = check_random_state(random_state)
    size = (int(size[0]), int(size[1]))
    kinds = ["blob", "scratch", "crack"] if defect == "mixed" else [defect]
    n_total = int(n_samples) + int(n_anomalies)
    images, masks = [], []
    for i in range(n_total):
        img = _draw_part(size, rng, noise)
        mask = np.zeros(size, bool)
        if i >= n_samples:
            kind = kinds[(i - n_samples) % len(kinds)]
            img, mask = paste_defect(img, kind=kind, random_state=rng, return_mask=True)
        if max_shift or max_rotation:
            angle = rng.uniform(-max_rotation, max_rotation)
            shift = rng.uniform(-max_shift, max_shift, size=2) * np.array(size[::-1])
            img, M = rigid_motion(img, angle, shift)
            mask = cv2.warpAffine(mask.astype(np.uint8), M, size[::-1],
                                  flags=cv2.INTER_NEAREST).astype(bool)
        if color:
            tint = np.array([1.0, 0.9, 0.75], np.float32)
            img = np.clip(img[..., None] * tint, 0, 1)
        images.append(img)
        masks.append(mask)
    X = np.stack(images).astype(np.float32)
    y = np.r_[np.zeros(n_samples, int), np.ones(n_anomalies, int)]
    if return_masks:
        return X, y, np.stack(masks)
    return X, y
