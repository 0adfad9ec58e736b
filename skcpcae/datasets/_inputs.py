# SPDX-License-Identifier: BSD-3-Clause
"""What the image readers accept: which files are images (their extension), folders listed
(sorted, non-images skipped with a warning), inputs turned into paths, ``size`` and ``color``
checked."""

import numbers
import os
import warnings

import numpy as np

#: File extensions (lower case) that :func:`list_images` treats as images.
IMAGE_EXTENSIONS = frozenset(
    {
        ".bmp",
        ".dib",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jp2",
        ".png",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".tif",
        ".tiff",
        ".webp",
    }
)



def _is_pathlike(x):
    return isinstance(x, str) or hasattr(x, "__fspath__")


def _has_image_extension(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------- validation
_COLORS = ("auto", "gray", "rgb")


def _check_size(size, name="size"):
    """``None`` or a ``(height, width)`` pair of positive ints."""
    if size is None:
        return None
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"{name} must be None or a pair (height, width); got {size!r}.")
    out = []
    for v in size:
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
            raise ValueError(
                f"{name} must be a pair (height, width) of positive integers; got {size!r}."
            )
        out.append(int(v))
    return tuple(out)


def _check_color(color):
    if color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}; got {color!r}.")
    return color


# --------------------------------------------------------------------------- listing
def _scan_folder(folder, recursive):
    """Image files (sorted by relative path) and the names of skipped non-image files."""
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"No such folder: {folder!r}.")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"Not a folder: {folder!r}.")
    images, skipped, broken = [], [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        # hidden folders and files (".git", ".DS_Store", macOS "._name.png") are ignored
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        rel_dir = os.path.relpath(dirpath, folder)
        for fname in filenames:
            if fname.startswith("."):
                continue
            rel = fname if rel_dir == os.curdir else os.path.join(rel_dir, fname)
            full = os.path.join(folder, rel)
            if not os.path.isfile(full):
                if os.path.islink(full) and not os.path.exists(full):
                    broken.append(rel)
                continue
            (images if _has_image_extension(fname) else skipped).append(rel)
    if broken:
        shown = ", ".join(f"{b!r} -> {os.readlink(os.path.join(folder, b))!r}"
                          for b in sorted(broken)[:3])
        warnings.warn(
            f"Skipped {len(broken)} broken symbolic link(s) in {folder!r} (their target does "
            f"not exist): {shown}{', ...' if len(broken) > 3 else ''}.",
            UserWarning,
            stacklevel=3,  # _scan_folder < list_images < caller
        )
    images.sort(key=lambda rel: rel.split(os.sep))
    return [os.path.join(folder, rel) for rel in images], sorted(skipped)


def _warn_skipped(folder, skipped):
    if skipped:
        examples = ", ".join(repr(s) for s in skipped[:3])
        warnings.warn(
            f"Skipped {len(skipped)} file(s) without an image extension in "
            f"{os.fspath(folder)!r} (e.g. {examples}). Image extensions: "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}.",
            UserWarning,
            stacklevel=3,
        )


def list_images(folder, recursive=False):
    """List the image files of a folder, sorted by name.

    A file is an image when its extension (any case) is one of
    ``skcpcae.datasets.IMAGE_EXTENSIONS`` (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``,
    ``.tif``, ``.tiff``, ``.webp``, ...). Other files are skipped with a warning that says how
    many were skipped; hidden files and folders (names starting with ``"."``) are ignored.

    Parameters
    ----------
    folder : str or path-like
        The folder to list.
    recursive : bool, default=False
        Also list the sub-folders; paths are then sorted by their path relative to ``folder``.

    Returns
    -------
    paths : list of str
        Paths of the image files (``folder`` joined with the file name), sorted by name
        (plain string order, case-sensitive). Empty when the folder holds no image.

    Raises
    ------
    FileNotFoundError
        When ``folder`` does not exist.
    NotADirectoryError
        When ``folder`` is a file.

    See Also
    --------
    load_images : read the listed images into one array.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcpcae.datasets import list_images, save_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name in ["b.png", "a.png"]:
    ...         _ = save_image(os.path.join(tmp, name), np.zeros((4, 4)))
    ...     [os.path.basename(p) for p in list_images(tmp)]
    ['a.png', 'b.png']
    """
    images, skipped = _scan_folder(folder, recursive)
    _warn_skipped(folder, skipped)
    return images


def _resolve_paths(paths_or_folder, recursive):
    """Turn the ``load_images`` input into a non-empty list of file paths (str)."""
    if _is_pathlike(paths_or_folder):
        path = os.fspath(paths_or_folder)
        if os.path.isdir(path):
            paths = list_images(path, recursive=recursive)
            if not paths:
                raise ValueError(f"No image files in folder {path!r}.")
            return paths
        if not os.path.exists(path):
            if os.path.islink(path):
                raise FileNotFoundError(
                    f"No such file or folder: {path!r} is a broken symbolic link (to "
                    f"{os.readlink(path)!r}, which does not exist)."
                )
            raise FileNotFoundError(f"No such file or folder: {path!r}.")
        return [path]
    if isinstance(paths_or_folder, bytes):
        raise TypeError("Pass paths as str or pathlib.Path, not bytes.")
    if isinstance(paths_or_folder, np.ndarray):
        if paths_or_folder.dtype.kind in "biufc":
            raise TypeError(
                "load_images reads image files; it got a numeric array of shape "
                f"{paths_or_folder.shape}. Image arrays need no loading."
            )
        items = paths_or_folder.ravel().tolist()
    else:
        try:
            items = list(paths_or_folder)
        except TypeError:
            raise TypeError(
                "load_images expects a folder, a file path or a list of file paths; got "
                f"{type(paths_or_folder).__name__}."
            ) from None
    if not items:
        raise ValueError("No image paths given (empty list).")
    paths = []
    for item in items:
        if not _is_pathlike(item):
            raise TypeError(
                "load_images expects a folder, a file path or a list of file paths; the list "
                f"holds {type(item).__name__} {item!r}."
            )
        path = os.fspath(item)
        if os.path.isdir(path):
            raise ValueError(
                f"{path!r} is a folder; a list may hold image files only. Pass a folder on "
                "its own, or list its files with list_images."
            )
        if not os.path.exists(path):
            if os.path.islink(path):
                raise FileNotFoundError(
                    f"No such file: {path!r} is a broken symbolic link (to "
                    f"{os.readlink(path)!r}, which does not exist)."
                )
            raise FileNotFoundError(f"No such file: {path!r}.")
        paths.append(path)
    return paths

