# SPDX-License-Identifier: BSD-3-Clause
"""Image files in and out: ``load_images``, ``read_image_size`` and ``save_image``; the
files found and the arguments checked in ``_inputs.py``, the ``ImageReader`` step in
``_reader.py`` (both re-exported here).

Documented conversions (the same in every reader of this package):

* pixel values: ``uint8`` is divided by 255, ``uint16`` by 65535; float images (e.g. float
  TIFF) are kept as stored and must lie in ``[0, 1]``; other pixel types are refused;
* channels: files are decoded as stored (OpenCV ``IMREAD_UNCHANGED``), OpenCV's BGR order is
  turned into RGB, an alpha channel is dropped (the colour values are kept, they are not
  composited onto a background), palette images are expanded to RGB, a colour image whose
  three channels are equal counts as grayscale;
* ``color="gray"`` turns colour images into luma ``0.299 R + 0.587 G + 0.114 B``
  (``cv2.COLOR_RGB2GRAY``); ``color="rgb"`` repeats a grayscale image in three channels;
* EXIF orientation is not applied: pixels are returned as stored in the file;
* resizing (``size=(height, width)``) uses ``cv2.INTER_AREA`` when no side grows and
  ``cv2.INTER_LINEAR`` otherwise; ``keep_aspect=True`` scales an image to fit inside ``size``
  without changing its aspect ratio and pads the rest with zeros (black), centred;
* pixel budget: the header of every file is read before it is decoded (Pillow reads the
  header only), and an image of more than ``max_pixels`` pixels (height x width, default
  :data:`MAX_PIXELS`, 100 megapixels) is refused by name before any pixel memory is
  allocated, so a decompression bomb (a small file that decodes to gigabytes) cannot exhaust
  the memory; multi-page files (TIFF, animated PNG/GIF/WebP) are read at their first page,
  with a warning naming the file.
"""

import numbers
import os
import re
import struct
import tempfile
import warnings

import cv2
import numpy as np

from ..utils._system import default_file_mode

# what the readers accept: its own module, re-exported here (other modules import from _io)
from ._inputs import (  # noqa: F401
    _COLORS,
    IMAGE_EXTENSIONS,
    _check_color,
    _check_size,
    _has_image_extension,
    _is_pathlike,
    _resolve_paths,
    _scan_folder,
    _warn_skipped,
    list_images,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageReader",
    "list_images",
    "load_images",
    "read_image_size",
    "save_image",
]

#: Default pixel budget of one image, height x width (100 megapixels): larger files are
#: refused from their header, before decoding (see :func:`load_images`, ``max_pixels``).
MAX_PIXELS = 100_000_000

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND"


# --------------------------------------------------------------------------- decoding
def _pil_loads(data):
    """Whether Pillow decodes ``data`` completely (False when Pillow is missing)."""
    try:
        import io

        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:
        return False
    return True


def _looks_truncated(data):
    """A JPEG without end-of-image marker or a PNG without IEND chunk that Pillow refuses.

    OpenCV >= 5 refuses truncated PNG and JPEG files itself; older versions may decode a
    truncated JPEG partially (grey bottom rows) with only a log message, hence this check.
    """
    head, tail = data[:8].tobytes(), data[-64:].tobytes()
    if head.startswith(_JPEG_SOI):
        complete = _JPEG_EOI in tail
    elif head == _PNG_SIGNATURE:
        complete = _PNG_IEND in tail
    else:
        return False
    return not complete and not _pil_loads(data.tobytes())


_PIXELS_RE = re.compile(r"\((\d+) pixels\)")


def _png_size(path):
    """``(height, width)`` from a PNG's IHDR chunk, or None."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) == 24 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    return None


def _read_header(path):
    """``(height, width, n_frames)`` from the file's header only, or None when Pillow does
    not recognise the format (OpenCV may still decode it)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        size = _png_size(path)
        return None if size is None else (*size, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF and TIFF tag notes
        try:
            with Image.open(path) as im:  # lazy: reads the header, decodes no pixel
                width, height = im.size
                n_frames = int(getattr(im, "n_frames", 1) or 1)
        except Image.DecompressionBombError as exc:
            # Pillow's own limit (2 x Image.MAX_IMAGE_PIXELS) is hit before it gives the size
            size = _png_size(path)
            if size is not None:
                return (*size, 1)
            found = _PIXELS_RE.search(str(exc))
            pixels = int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1
            return pixels, 1, 1
        except Exception:  # not an image Pillow knows, or a corrupt header: OpenCV decides
            return None
    return height, width, n_frames


def read_image_size(path):
    """Height and width of an image file, from its header (no pixel is decoded).

    Parameters
    ----------
    path : str or path-like
        An image file.

    Returns
    -------
    size : tuple of (int, int) or None
        ``(height, width)``, or None when the format's header cannot be read without
        decoding (a format Pillow does not know, or a corrupt header).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcpcae.datasets import read_image_size, save_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     read_image_size(save_image(os.path.join(tmp, "a.png"), np.zeros((20, 30))))
    (20, 30)
    """
    header = _read_header(os.fspath(path))
    return None if header is None else header[:2]


def _check_pixels(path, height, width, max_pixels, *, decoded=False):
    if max_pixels is not None and height * width > max_pixels:
        size = f"{height}x{width} pixels (height x width)" if width > 1 or height < 2 else (
            f"{height} pixels")
        raise ValueError(
            f"Image file {path!r} is {size}, {height * width / 1e6:.4g} megapixels, over the "
            f"pixel budget of {max_pixels / 1e6:.4g} megapixels; refused "
            + ("after decoding" if decoded else "from its header, before decoding")
            + " (a decompression bomb or an oversized image). If the file is genuine, "
            "raise the budget (max_pixels=..., on the command line --max-pixels N)."
        )


def _read_native(path, max_pixels=MAX_PIXELS):
    """Decode one file: ``(H, W)`` or RGB ``(H, W, 3)``, dtype uint8, uint16 or float32.

    A colour file whose channels are equal is returned as ``(H, W)``. The header is read
    first: an image over ``max_pixels`` pixels is refused before it is decoded.
    """
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder, not an image file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"Cannot read image file {path!r}: the file is empty.")
    header = _read_header(path)
    if header is not None:
        _check_pixels(path, header[0], header[1], max_pixels)
        if header[2] > 1:
            warnings.warn(
                f"Image file {path!r} holds {header[2]} pages (frames); only the first "
                "is read.",
                UserWarning,
                stacklevel=3,
            )
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile: unicode paths on every OS
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ValueError(
            f"Cannot decode image file {path!r}: it is not an image format OpenCV reads, "
            "or the file is corrupt or truncated."
        )
    if _looks_truncated(data):
        raise ValueError(f"Cannot decode image file {path!r}: the file is truncated.")
    if header is None:
        _check_pixels(path, img.shape[0], img.shape[1], max_pixels, decoded=True)
    if img.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ValueError(
            f"Image file {path!r} has pixel type {img.dtype}; supported are 8-bit and "
            "16-bit unsigned integers and floats in [0, 1]."
        )
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    if img.dtype == np.float32:
        if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
            raise ValueError(
                f"Float image file {path!r} has values outside [0, 1] (or NaN); float "
                "images are kept as stored, so scale them to [0, 1] first."
            )
    if img.ndim == 3:
        n_channels = img.shape[2]
        if n_channels in (1, 2):  # gray, gray + alpha
            img = img[..., 0]
        elif n_channels in (3, 4):  # BGR, BGRA: drop alpha, to RGB
            img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_BGR2RGB)
            if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(
                img[..., 1], img[..., 2]
            ):
                img = img[..., 0]
        else:
            raise ValueError(
                f"Image file {path!r} has {n_channels} channels; supported are 1 (gray), "
                "2 (gray + alpha), 3 (colour) and 4 (colour + alpha)."
            )
    elif img.ndim != 2:
        raise ValueError(f"Image file {path!r} decodes to an array of shape {img.shape}.")
    return np.ascontiguousarray(img)


def _resize(img, size, interpolation=None):
    """Resize ``img`` (H, W[, C]) to ``size=(height, width)``."""
    h, w = img.shape[:2]
    if (h, w) == tuple(size):
        return img
    if interpolation is None:
        shrink = size[0] <= h and size[1] <= w
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (size[1], size[0]), interpolation=interpolation)


def _fit_into(img, size):
    """Scale ``img`` to fit inside ``size`` keeping its aspect ratio; pad with zeros, centred."""
    h, w = img.shape[:2]
    if (h, w) == tuple(size):
        return img
    scale = min(size[0] / h, size[1] / w)
    inner = (max(1, min(size[0], round(h * scale))), max(1, min(size[1], round(w * scale))))
    img = _resize(img, inner)
    return _pad_to(img, size)


def _pad_to(img, size):
    """Pad ``img`` with zeros to ``size`` (each side at least the image's), centred."""
    h, w = img.shape[:2]
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    out = np.zeros(tuple(size) + img.shape[2:], dtype=img.dtype)
    out[top:top + h, left:left + w] = img
    return out


def _to_gray(img):
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img


_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


def _read_batch(paths, *, size, color, verbose, desc="Reading images", keep_aspect=False,
                max_pixels=MAX_PIXELS):
    """Decode ``paths`` into float32 ``(n, H, W)`` or ``(n, H, W, 3)``; color resolved too."""
    from tqdm.auto import tqdm

    native, first = [], None
    for path in tqdm(paths, desc=desc, disable=not verbose, unit="img"):
        img = _read_native(path, max_pixels)
        if size is not None:
            img = _fit_into(img, size) if keep_aspect else _resize(img, size)
        if color == "gray":
            img = _to_gray(img)
        shape = img.shape[:2]
        if first is None:
            first = (path, shape)
        elif shape != first[1] and keep_aspect:
            first = (path, (max(shape[0], first[1][0]), max(shape[1], first[1][1])))
        elif shape != first[1]:
            raise ValueError(
                "Images have different sizes: "
                f"{first[0]!r} is {first[1][0]}x{first[1][1]} (height x width) but "
                f"{path!r} is {shape[0]}x{shape[1]}. Pass size=(height, width) to resize "
                "them all to one size."
            )
        native.append(img)
    if color == "auto":
        color = "rgb" if any(img.ndim == 3 for img in native) else "gray"
    h, w = first[1]
    if keep_aspect:  # without size: pad every image to the largest height and width
        native = [_pad_to(img, (h, w)) for img in native]
    out_shape = (len(native), h, w) + ((3,) if color == "rgb" else ())
    out = np.empty(out_shape, dtype=np.float32)
    for i, img in enumerate(native):
        scaled = img.astype(np.float32, copy=False) / np.float32(_SCALE[img.dtype])
        out[i] = scaled[..., None] if (color == "rgb" and img.ndim == 2) else scaled
        native[i] = None  # free as we go: peak memory ~ output + native copies
    return out, color


def load_images(paths_or_folder, *, size=None, color="auto", recursive=False, verbose=0,
                keep_aspect=False, max_pixels=MAX_PIXELS):
    """Read image files into one float32 array in ``[0, 1]``.

    Parameters
    ----------
    paths_or_folder : str, path-like or list of str or path-like
        A folder (all its image files, sorted by name; files without an image extension are
        skipped with a warning), a single image file, or a list of image files (read in the
        given order, whatever their extension).
    size : tuple of (int, int) or None, default=None
        ``(height, width)`` to resize every image to (``cv2.INTER_AREA`` when shrinking,
        ``cv2.INTER_LINEAR`` when a side grows). With ``None``, all images must have one size.
    color : {"auto", "gray", "rgb"}, default="auto"
        ``"gray"`` returns ``(n, H, W)`` (colour images converted to luma); ``"rgb"`` returns
        ``(n, H, W, 3)`` (gray images repeated); ``"auto"`` is ``"gray"`` when every image is
        single-channel or has three equal channels, else ``"rgb"``.
    recursive : bool, default=False
        With a folder, also read its sub-folders.
    verbose : int, default=0
        Show a tqdm progress bar when positive.
    keep_aspect : bool, default=False
        Keep each image's aspect ratio: with ``size``, scale it to fit inside ``size`` and
        pad the rest with zeros (black), centred; without ``size``, pad every image (not
        scaled) to the largest height and width found.
    max_pixels : int or None, default=MAX_PIXELS
        Pixel budget of one image (height x width, 100 megapixels by default). The header
        of each file is read first and a larger image is refused with a ``ValueError``
        naming the file, before it is decoded (decompression bombs); None: no limit.

    Returns
    -------
    images : ndarray of shape (n_images, height, width) or (n_images, height, width, 3)
        Float32 in ``[0, 1]``: 8-bit values divided by 255, 16-bit values by 65535, float
        images as stored. Alpha channels are dropped, OpenCV's BGR is turned into RGB, EXIF
        orientation is not applied.

    Raises
    ------
    FileNotFoundError
        When a path does not exist.
    ValueError
        When a folder holds no image, a file cannot be decoded (corrupt, truncated, not an
        image) or is over ``max_pixels``, or the images have different sizes and neither
        ``size`` nor ``keep_aspect`` is set.

    See Also
    --------
    list_images : the files a folder contributes, in order.
    ImageReader : the same reading as the first step of a pipeline.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcpcae.datasets import load_images, save_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for i in range(3):
    ...         _ = save_image(os.path.join(tmp, f"part_{i}.png"), np.full((20, 30), i / 2))
    ...     X = load_images(tmp, size=(10, 15))
    >>> X.shape, X.dtype.name
    ((3, 10, 15), 'float32')
    >>> (X[:, 0, 0] * 255).round().tolist()
    [0.0, 128.0, 255.0]
    """
    size = _check_size(size)
    color = _check_color(color)
    if max_pixels is not None and (
        not isinstance(max_pixels, numbers.Integral) or isinstance(max_pixels, bool)
        or max_pixels < 1
    ):
        raise ValueError(f"max_pixels must be a positive integer or None; got {max_pixels!r}.")
    paths = _resolve_paths(paths_or_folder, recursive)
    return _read_batch(paths, size=size, color=color, verbose=verbose,
                       keep_aspect=bool(keep_aspect), max_pixels=max_pixels)[0]


def save_image(path, image):
    """Write one image as an 8-bit file (PNG recommended), atomically.

    The file is written to a temporary file in the same folder, then moved over ``path``
    with :func:`os.replace`, so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or path-like
        Destination; its extension chooses the format (``.png`` lossless, ``.jpg``, ...).
        The folder must exist.
    image : array-like of shape (height, width), (height, width, 1), (height, width, 3) or (height, width, 4)
        Grayscale, RGB or RGBA. ``uint8`` is written as is, ``bool`` as 0/255, anything else
        is read as values in ``[0, 1]``, clipped to that range and rounded to ``uint8``.

    Returns
    -------
    path : str
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcpcae.datasets import load_images, save_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = save_image(os.path.join(tmp, "grad.png"), np.linspace(0, 1, 12).reshape(3, 4))
    ...     X = load_images(p)
    >>> X.shape, (X[0, :, -1] * 255).round().tolist()
    ((1, 3, 4), [70.0, 162.0, 255.0])
    """
    path = os.fspath(path)
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(
            "save_image expects one image of shape (height, width), (height, width, 3) or "
            f"(height, width, 4); got shape {img.shape}."
        )
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        if img.dtype.kind not in "iuf":
            raise TypeError(f"save_image cannot write an image of dtype {img.dtype}.")
        img = img.astype(np.float64)
        if not np.isfinite(img).all():
            raise ValueError("save_image got NaN or infinite pixel values.")
        img = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    if img.ndim == 3:
        code = cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        img = cv2.cvtColor(np.ascontiguousarray(img), code)
    ext = os.path.splitext(path)[1].lower()
    if not ext:
        raise ValueError(f"save_image needs a file extension (e.g. '.png'); got {path!r}.")
    try:
        ok, buf = cv2.imencode(ext, img)
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot write {ext!r} files ({path!r}).") from exc
    if not ok:
        raise ValueError(f"OpenCV could not encode the image as {ext!r} ({path!r}).")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=ext)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.tobytes())
            os.fchmod(fh.fileno(), default_file_mode())  # the umask's mode, not mkstemp's 0o600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# The estimator lives in _reader.py; its old path stays importable, since model files saved
# before record skcpcae.datasets._io.ImageReader.
from ._reader import ImageReader  # noqa: E402, F401
