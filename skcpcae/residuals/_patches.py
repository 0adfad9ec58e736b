# SPDX-License-Identifier: BSD-3-Clause
"""Pure patch functions: resize a batch, cut overlapping patches, put them back.

Images are numpy arrays ``(n, height, width)`` (grayscale) or ``(n, height, width, channels)``.
Patches are ``(n, n_patches, patch_h, patch_w)`` for grayscale and
``(n, n_patches, channels, patch_h, patch_w)`` (channels first, as torch wants them) otherwise.

``patch_size`` and ``stride`` are an int (square) or a pair ``(along height, along width)``.
The grid of top-left corners starts at 0 and steps by ``stride``; when the last step does not
reach the border, one more row (column) of patches is added flush with the bottom (right)
border, so every pixel is covered and nothing is dropped. A patch larger than the image along
an axis is an error here; :class:`~skcpcae.residuals.CPCAEResidualMap` clamps its patch to the
image before calling these functions.
"""

import numbers

import cv2
import numpy as np

__all__ = [
    "downsize",
    "upsize",
    "patch_grid",
    "extract_patches",
    "reassemble_patches",
]


def _pair(value, name):
    """``int`` or ``(int, int)`` → ``(int, int)``, each >= 1."""
    if isinstance(value, numbers.Integral):
        pair = (int(value), int(value))
    else:
        pair = tuple(value)
        if len(pair) != 2 or not all(isinstance(v, numbers.Integral) for v in pair):
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}.")
        pair = (int(pair[0]), int(pair[1]))
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}.")
    return pair


def _resize(images, size, interpolation):
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must have shape (n, height, width[, channels]), got {images.shape}."
        )
    height, width = _pair(size, "size")
    if images.shape[1:3] == (height, width):
        return images.copy()
    out = np.empty((images.shape[0], height, width) + images.shape[3:], dtype=images.dtype)
    for i, image in enumerate(images):
        if image.ndim == 3 and image.shape[2] > 4:
            # OpenCV resizes at most 4 channels at once with some interpolations: go per channel.
            for c in range(image.shape[2]):
                out[i, ..., c] = cv2.resize(
                    np.ascontiguousarray(image[..., c]), (width, height),
                    interpolation=interpolation,
                )
            continue
        resized = cv2.resize(image, (width, height), interpolation=interpolation)
        out[i] = resized.reshape(out.shape[1:])  # cv2 drops a trailing 1-channel axis
    return out


def downsize(images, size):
    """Resize every image of a batch to ``size`` with area interpolation (``cv2.INTER_AREA``).

    Parameters
    ----------
    images : ndarray of shape (n, height, width) or (n, height, width, channels)
        Float images.
    size : int or tuple of (int, int)
        Target ``(height, width)``; an int gives a square.

    Returns
    -------
    resized : ndarray of shape (n, size_h, size_w[, channels])
        Same dtype as ``images``; a copy even when the size does not change.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.residuals._patches import downsize
    >>> downsize(np.ones((2, 8, 6), np.float32), (4, 3)).shape
    (2, 4, 3)
    """
    return _resize(images, size, cv2.INTER_AREA)


def upsize(images, size):
    """Resize every image of a batch to ``size`` with bilinear interpolation.

    Uses ``cv2.INTER_LINEAR``, the interpolation the residual maps are brought back to the
    input size with.

    Parameters
    ----------
    images : ndarray of shape (n, height, width) or (n, height, width, channels)
        Float images.
    size : int or tuple of (int, int)
        Target ``(height, width)``; an int gives a square.

    Returns
    -------
    resized : ndarray of shape (n, size_h, size_w[, channels])
        Same dtype as ``images``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.residuals._patches import upsize
    >>> upsize(np.ones((1, 2, 2, 3), np.float32), 5).shape
    (1, 5, 5, 3)
    """
    return _resize(images, size, cv2.INTER_LINEAR)


def _axis_starts(length, patch, stride):
    last = length - patch
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)  # flush with the border: nothing dropped
    return starts


def patch_grid(height, width, patch_size, stride=None):
    """Top-left corners of the overlapping patches covering a ``height x width`` image.

    Parameters
    ----------
    height, width : int
        Image size.
    patch_size : int or tuple of (int, int)
        Patch size; must not exceed the image along either axis.
    stride : int, tuple of (int, int) or None, default=None
        Step between neighbouring patches, at most the patch size (so that every pixel is
        covered). ``None`` means half the patch size (at least 1).

    Returns
    -------
    corners : ndarray of shape (n_patches, 2), int
        ``(top, left)`` of each patch, row-major (left to right, then top to bottom). The last
        row and column are flush with the bottom and right borders.

    Examples
    --------
    >>> from skcpcae.residuals._patches import patch_grid
    >>> patch_grid(5, 4, 2, 2).tolist()
    [[0, 0], [0, 2], [2, 0], [2, 2], [3, 0], [3, 2]]
    """
    height, width = int(height), int(width)
    ph, pw = _pair(patch_size, "patch_size")
    if stride is None:
        sh, sw = max(1, ph // 2), max(1, pw // 2)
    else:
        sh, sw = _pair(stride, "stride")
    if ph > height or pw > width:
        raise ValueError(
            f"patch_size {(ph, pw)} is larger than the image ({height}x{width}); use a "
            "smaller patch_size or a larger image."
        )
    if sh > ph or sw > pw:
        raise ValueError(
            f"stride {(sh, sw)} must not exceed patch_size {(ph, pw)}, or some pixels "
            "would belong to no patch."
        )
    tops = _axis_starts(height, ph, sh)
    lefts = _axis_starts(width, pw, sw)
    corners = np.array([(t, left) for t in tops for left in lefts], dtype=np.intp)
    return corners.reshape(-1, 2)


def extract_patches(images, patch_size, stride=None):
    """Cut every image of a batch into overlapping patches.

    Parameters
    ----------
    images : ndarray of shape (n, height, width) or (n, height, width, channels)
        Images.
    patch_size : int or tuple of (int, int)
        Patch size.
    stride : int, tuple of (int, int) or None, default=None
        Step between patches; ``None`` means half the patch size. See :func:`patch_grid`.

    Returns
    -------
    patches : ndarray of shape (n, n_patches, patch_h, patch_w) or \
            (n, n_patches, channels, patch_h, patch_w)
        A contiguous copy, in the order of :func:`patch_grid`; colour patches are channels
        first.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.residuals._patches import extract_patches
    >>> extract_patches(np.zeros((3, 6, 6, 2)), 4).shape
    (3, 4, 2, 4, 4)
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must have shape (n, height, width[, channels]), got {images.shape}."
        )
    ph, pw = _pair(patch_size, "patch_size")
    corners = patch_grid(images.shape[1], images.shape[2], (ph, pw), stride)
    windows = np.lib.stride_tricks.sliding_window_view(images, (ph, pw), axis=(1, 2))
    # windows: (n, H - ph + 1, W - pw + 1, [C,] ph, pw)
    return np.ascontiguousarray(windows[:, corners[:, 0], corners[:, 1]])


def reassemble_patches(patches, image_shape, patch_size, stride=None):
    """Put patches back into images, averaging where they overlap.

    The inverse of :func:`extract_patches`: ``reassemble_patches(extract_patches(x, p, s),
    x.shape[1:], p, s)`` equals ``x`` exactly (overlaps are averaged with a running mean in
    float64, which returns ``k`` equal values unchanged).

    Parameters
    ----------
    patches : ndarray of shape (n, n_patches, patch_h, patch_w) or \
            (n, n_patches, channels, patch_h, patch_w)
        Patches in the order of :func:`patch_grid`.
    image_shape : tuple of int
        ``(height, width)`` or ``(height, width, channels)`` of one output image.
    patch_size : int or tuple of (int, int)
        Patch size used to cut the patches.
    stride : int, tuple of (int, int) or None, default=None
        Stride used to cut the patches.

    Returns
    -------
    images : ndarray of shape (n, height, width) or (n, height, width, channels)
        Same float dtype as ``patches`` (float64 for integer patches).

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.residuals._patches import extract_patches, reassemble_patches
    >>> x = np.arange(2 * 7 * 5, dtype=np.float32).reshape(2, 7, 5)
    >>> p = extract_patches(x, 3)
    >>> bool(np.array_equal(reassemble_patches(p, (7, 5), 3), x))
    True
    """
    patches = np.asarray(patches)
    image_shape = tuple(int(v) for v in image_shape)
    height, width = image_shape[:2]
    colour = len(image_shape) == 3
    expected_ndim = 5 if colour else 4
    if patches.ndim != expected_ndim:
        raise ValueError(
            f"patches of shape {patches.shape} do not match image_shape {image_shape}: "
            f"expected {expected_ndim} dimensions."
        )
    ph, pw = _pair(patch_size, "patch_size")
    corners = patch_grid(height, width, (ph, pw), stride)
    if patches.shape[1] != len(corners) or patches.shape[-2:] != (ph, pw):
        raise ValueError(
            f"patches of shape {patches.shape} do not match the grid of {len(corners)} "
            f"patches of size {(ph, pw)} on a {height}x{width} image."
        )
    n = patches.shape[0]
    if colour:
        patches = np.moveaxis(patches, 2, -1)  # (n, P, ph, pw, C)
    # Running mean m += (v - m) / k: k identical values give that value back exactly.
    mean = np.zeros((n, height, width) + image_shape[2:], dtype=np.float64)
    count = np.zeros((height, width) + (1,) * len(image_shape[2:]), dtype=np.float64)
    for k, (top, left) in enumerate(corners):
        region = (slice(None), slice(top, top + ph), slice(left, left + pw))
        count[region[1:]] += 1.0
        mean[region] += (patches[:, k] - mean[region]) / count[region[1:]]
    out_dtype = patches.dtype if patches.dtype.kind == "f" else np.float64
    return mean.astype(out_dtype, copy=False)
