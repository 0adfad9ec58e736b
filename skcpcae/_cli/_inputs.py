# SPDX-License-Identifier: BSD-3-Clause
"""Inputs of the command line: folders and files expanded into image paths, image sizes read
from headers, images and defect masks loaded."""

import os
from pathlib import Path

import numpy as np

from ._errors import CLIError


def _expand_inputs(sources, *, recursive=False, role="input"):
    """Folders (their image files, sorted) and files (as given) → list of str paths."""
    from ..datasets import list_images

    paths = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            try:
                found = list_images(src, recursive=recursive)
            except OSError as exc:
                raise CLIError(f"Cannot read the {role} folder {str(src)!r}: {exc}") from None
            if not found:
                subs = [] if recursive else sorted(
                    d.name for d in src.iterdir() if d.is_dir() and not d.name.startswith("."))
                hint = ""
                if subs and list_images(src, recursive=True):
                    shown = ", ".join(repr(d) for d in subs[:3])
                    hint = (f" Its sub-folders ({shown}{', ...' if len(subs) > 3 else ''}) "
                            "hold images: add -r / --recursive to read them.")
                raise CLIError(
                    f"The {role} folder {str(src)!r} holds no image files (.png, .jpg, .bmp, "
                    ".tif, ...)." + hint
                )
            paths.extend(found)
        elif src.is_file():
            paths.append(str(src))
        elif src.is_symlink():
            raise CLIError(f"The {role} file {str(src)!r} is a broken symbolic link (to "
                           f"{os.readlink(src)!r}, which does not exist).")
        else:
            raise CLIError(f"No such {role} folder or file: {str(src)!r}.")
    if not paths:
        raise CLIError(f"No {role} images given.")
    return paths


def _load(paths, *, size, color, verbose=0, keep_aspect=False, max_pixels=None):
    from ..datasets import MAX_PIXELS, load_images

    try:
        return load_images(paths, size=size, color=color, verbose=verbose,
                           keep_aspect=keep_aspect,
                           max_pixels=MAX_PIXELS if max_pixels is None else max_pixels)
    except (OSError, ValueError, TypeError) as exc:
        raise CLIError(f"Cannot read the images: {exc}") from None


def _image_sizes(paths, max_pixels=None):
    """``{(height, width): [paths]}`` from the files' headers (no image decoded), refusing a
    file over the pixel budget by name."""
    from ..datasets import MAX_PIXELS
    from ..datasets._io import _check_pixels, _read_header

    budget = MAX_PIXELS if max_pixels is None else max_pixels
    sizes = {}
    for path in paths:
        header = _read_header(path)
        if header is None:  # a format Pillow cannot read without decoding: OpenCV decodes it
            hw = tuple(_load([path], size=None, color="auto", max_pixels=budget).shape[1:3])
        else:
            try:
                _check_pixels(path, header[0], header[1], budget)
            except ValueError as exc:
                raise CLIError(str(exc)) from None
            hw = header[:2]
        sizes.setdefault(hw, []).append(path)
    return sizes


def _common_size(sizes, keep_aspect, role="good"):
    """The one size of the images, the largest with ``keep_aspect``, else a refusal that
    lists the sizes found."""
    if len(sizes) == 1:
        return next(iter(sizes))
    largest = (max(h for h, _ in sizes), max(w for _, w in sizes))
    if keep_aspect:
        return largest
    ranked = sorted(sizes.items(), key=lambda kv: -len(kv[1]))
    listed = "; ".join(
        f"{h}x{w}: {len(files)} file(s), e.g. {files[0]!r}" for (h, w), files in ranked[:4]
    ) + ("; ..." if len(ranked) > 4 else "")
    common = ranked[0][0]
    raise CLIError(
        f"The {role} images have {len(sizes)} different sizes (height x width): {listed}. "
        f"Give --size HxW to resize them all (e.g. --size {common[0]}x{common[1]}, the most "
        f"common), or --keep-aspect to pad them to {largest[0]}x{largest[1]} without "
        "distortion (with --size: scale each to fit inside, then pad)."
    )


def _first_size(X):
    return tuple(np.shape(X)[1:3])


def _read_masks(folder, good_paths, defect_paths, size_hw):
    """Masks of the evaluated images: all False for good ones, read from ``folder`` for
    defective ones (``<stem>_mask.<ext>`` or ``<stem>.<ext>``, nonzero = defect)."""
    from ..datasets import list_images, load_images

    found = {}
    for p in list_images(folder):
        stem = Path(p).stem
        found.setdefault(stem[:-5] if stem.endswith("_mask") else stem, p)
    h, w = size_hw
    out = np.zeros((len(good_paths) + len(defect_paths), h, w), bool)
    missing = [p for p in defect_paths if Path(p).stem not in found]
    if missing:
        raise CLIError(f"No mask in {str(folder)!r} for {len(missing)} defect image(s), e.g. "
                       f"{missing[0]!r} (expected {Path(missing[0]).stem}_mask.png).")
    for i, p in enumerate(defect_paths):
        try:
            m = load_images([found[Path(p).stem]], color="gray")[0] > 0
        except (OSError, ValueError) as exc:
            raise CLIError(f"Cannot read the mask of {p!r}: {exc}") from None
        if m.shape != (h, w):  # resized as its image was, without blurring the edge
            import cv2

            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        out[len(good_paths) + i] = m
    return out
