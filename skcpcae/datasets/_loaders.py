# SPDX-License-Identifier: BSD-3-Clause
"""Labelled image folders: ``load_folder`` (good / defect folders) and ``load_mvtec_ad``."""

import os

import cv2
import numpy as np
from sklearn.utils import Bunch

from ._io import (
    IMAGE_EXTENSIONS,
    _check_color,
    _check_size,
    _read_batch,
    _read_native,
    _resize,
    _scan_folder,
    _warn_skipped,
    list_images,
)

__all__ = ["load_folder", "load_mvtec_ad"]


def _as_list(sources):
    if sources is None:
        return []
    if isinstance(sources, (str, bytes)) or hasattr(sources, "__fspath__"):
        return [sources]
    return list(sources)


def _collect(sources, recursive, role):
    """Image paths of folders (sorted by name) and files (as given), in the given order."""
    paths = []
    for src in _as_list(sources):
        src = os.fspath(src)
        if os.path.isdir(src):
            found = list_images(src, recursive=recursive)
            if not found:
                raise ValueError(f"No image files in {role} folder {src!r}.")
            paths.extend(found)
        elif os.path.isfile(src):
            paths.append(src)
        else:
            raise FileNotFoundError(f"No such {role} folder or file: {src!r}.")
    return paths


def load_folder(
    good,
    defect=None,
    *,
    size=None,
    color="auto",
    recursive=False,
    return_paths=False,
    verbose=0,
):
    """Load images of good parts and, optionally, of defective parts with labels.

    Parameters
    ----------
    good : str, path-like or list of str or path-like
        Folder(s) of good (normal) images; an entry may also be a single image file.
    defect : str, path-like, list of str or path-like, or None, default=None
        Folder(s) of defective images.
    size : tuple of (int, int) or None, default=None
        ``(height, width)`` to resize every image to; see :func:`load_images`.
    color : {"auto", "gray", "rgb"}, default="auto"
        Colour mode, resolved over all images together; see :func:`load_images`.
    recursive : bool, default=False
        Also read the sub-folders.
    return_paths : bool, default=False
        Also return the file path of each image.
    verbose : int, default=0
        Show a tqdm progress bar when positive.

    Returns
    -------
    X : ndarray of shape (n_images, height, width) or (n_images, height, width, 3)
        Float32 images in ``[0, 1]``: the good images first (folders in the given order,
        files sorted by name), then the defective ones.
    y : ndarray of shape (n_images,), dtype int64
        0 for good, 1 for defective.
    paths : list of str
        Path of each image; only when ``return_paths`` is True.

    Raises
    ------
    FileNotFoundError
        When a folder does not exist.
    ValueError
        When a folder holds no image or a file cannot be decoded.

    See Also
    --------
    load_images : read one folder or a list of files.
    load_mvtec_ad : folders in the MVTec AD layout, with defect masks.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcpcae.datasets import load_folder, save_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for sub, n in [("good", 3), ("bad", 2)]:
    ...         os.mkdir(os.path.join(tmp, sub))
    ...         for i in range(n):
    ...             _ = save_image(os.path.join(tmp, sub, f"{i}.png"), np.zeros((6, 6)))
    ...     X, y = load_folder(os.path.join(tmp, "good"), os.path.join(tmp, "bad"))
    >>> X.shape, y.tolist()
    ((5, 6, 6), [0, 0, 0, 1, 1])
    """
    size = _check_size(size)
    color = _check_color(color)
    good_paths = _collect(good, recursive, "good")
    if not good_paths:
        raise ValueError("load_folder needs at least one folder of good images.")
    defect_paths = _collect(defect, recursive, "defect")
    paths = good_paths + defect_paths
    X, _ = _read_batch(paths, size=size, color=color, verbose=verbose)
    y = np.concatenate([np.zeros(len(good_paths), np.int64), np.ones(len(defect_paths), np.int64)])
    if return_paths:
        return X, y, paths
    return X, y


def _subfolders(folder):
    return sorted(
        d
        for d in os.listdir(folder)
        if not d.startswith(".") and os.path.isdir(os.path.join(folder, d))
    )


def _find_mask(gt_dir, defect, image_path):
    """``ground_truth/<defect>/<stem>_mask.png`` (or another image extension)."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    folder = os.path.join(gt_dir, defect)
    candidates = [f"{stem}_mask.png"] + [
        f"{stem}_mask{ext}" for ext in sorted(IMAGE_EXTENSIONS) if ext != ".png"
    ]
    for name in candidates:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise ValueError(
        f"No mask for defect image {image_path!r}: expected "
        f"{os.path.join(folder, stem + '_mask.png')!r}."
    )


def _read_mask(path, image_hw, size):
    mask = _read_native(path)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    mask = (mask > 0).astype(np.uint8)
    if size is not None:
        mask = _resize(mask, size, interpolation=cv2.INTER_NEAREST)
    if mask.shape != tuple(image_hw):
        raise ValueError(
            f"Mask {path!r} is {mask.shape[0]}x{mask.shape[1]} but its image is "
            f"{image_hw[0]}x{image_hw[1]} (height x width)."
        )
    return mask.astype(bool)


def load_mvtec_ad(root, category, *, size=None, color="auto", verbose=0):
    """Load one category of a dataset in the MVTec AD folder layout.

    The layout is ``<root>/<category>/train/good/*.png`` (normal training images),
    ``<root>/<category>/test/<good or defect type>/*.png`` and
    ``<root>/<category>/ground_truth/<defect type>/<name>_mask.png`` (pixel masks of the
    defective test images; nonzero = defect).

    Parameters
    ----------
    root : str or path-like
        The folder holding the category folders (e.g. ``"mvtec_anomaly_detection"``).
    category : str
        Category folder name, e.g. ``"bottle"``.
    size : tuple of (int, int) or None, default=None
        ``(height, width)`` to resize images to (masks are resized with nearest-neighbour
        interpolation); see :func:`load_images`.
    color : {"auto", "gray", "rgb"}, default="auto"
        Colour mode, resolved over training and test images together.
    verbose : int, default=0
        Show a tqdm progress bar when positive.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the keys

        - ``X_train`` : ndarray of shape (n_train, height, width[, 3]), float32 in [0, 1];
        - ``X_test`` : ndarray of shape (n_test, height, width[, 3]), float32 in [0, 1];
        - ``y_test`` : ndarray of shape (n_test,), int64, 0 good and 1 defective;
        - ``masks_test`` : ndarray of shape (n_test, height, width), bool, all False for
          good images; ``None`` when the category has no ``ground_truth`` folder;
        - ``defect_types`` : ndarray of shape (n_test,), str, the test sub-folder of each
          image (``"good"`` for normal ones);
        - ``paths_train``, ``paths_test`` : list of str;
        - ``category`` : str.

        Test images come ``good`` first, then the defect types in name order, each folder
        sorted by file name.

    Raises
    ------
    FileNotFoundError
        When ``root`` or a folder of the layout does not exist.
    ValueError
        When ``category`` is not in ``root`` (the message lists the categories found), a
        defective test image has no mask, or an image cannot be decoded.

    See Also
    --------
    load_folder : plain good / defect folders, without masks.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcpcae.datasets import load_mvtec_ad, save_image
    >>> with tempfile.TemporaryDirectory() as root:
    ...     for sub in ["train/good", "test/good", "test/crack", "ground_truth/crack"]:
    ...         os.makedirs(os.path.join(root, "tile", sub))
    ...     img = np.full((8, 8), 0.5)
    ...     for sub in ["train/good", "test/good", "test/crack"]:
    ...         _ = save_image(os.path.join(root, "tile", sub, "000.png"), img)
    ...     mask = np.zeros((8, 8), bool)
    ...     mask[2:4, 2:4] = True
    ...     _ = save_image(os.path.join(root, "tile", "ground_truth", "crack", "000_mask.png"),
    ...                    mask)
    ...     data = load_mvtec_ad(root, "tile")
    >>> data.X_train.shape, data.y_test.tolist(), data.defect_types.tolist()
    ((1, 8, 8), [0, 1], ['good', 'crack'])
    >>> data.masks_test.sum(axis=(1, 2)).tolist()
    [0, 4]
    """
    size = _check_size(size)
    color = _check_color(color)
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"No such folder: {root!r}.")
    cat_dir = os.path.join(root, category)
    if not os.path.isdir(cat_dir):
        found = [d for d in _subfolders(root) if os.path.isdir(os.path.join(root, d, "train"))]
        raise ValueError(
            f"No category {category!r} in {root!r}. Categories found: "
            f"{', '.join(map(repr, found)) if found else 'none'} (a category is a folder "
            "with train/ and test/ sub-folders)."
        )
    train_dir = os.path.join(cat_dir, "train", "good")
    test_dir = os.path.join(cat_dir, "test")
    for folder in (train_dir, test_dir):
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"Expected the folder {folder!r} of the MVTec AD layout "
                "(<category>/train/good, <category>/test/<defect type>)."
            )
    paths_train = list_images(train_dir)
    if not paths_train:
        raise ValueError(f"No image files in {train_dir!r}.")
    defect_dirs = _subfolders(test_dir)
    defect_dirs = (["good"] if "good" in defect_dirs else []) + [
        d for d in defect_dirs if d != "good"
    ]
    paths_test, defect_types = [], []
    for d in defect_dirs:
        found, skipped = _scan_folder(os.path.join(test_dir, d), recursive=False)
        _warn_skipped(os.path.join(test_dir, d), skipped)
        paths_test += found
        defect_types += [d] * len(found)
    if not paths_test:
        raise ValueError(f"No test images in the sub-folders of {test_dir!r}.")
    X, _ = _read_batch(paths_train + paths_test, size=size, color=color, verbose=verbose)
    n_train = len(paths_train)
    X_train, X_test = X[:n_train], X[n_train:]
    defect_types = np.asarray(defect_types, dtype=str)
    y_test = (defect_types != "good").astype(np.int64)

    gt_dir = os.path.join(cat_dir, "ground_truth")
    masks_test = None
    if os.path.isdir(gt_dir):
        hw = X.shape[1:3]
        masks_test = np.zeros((len(paths_test),) + tuple(hw), dtype=bool)
        for i, (path, d) in enumerate(zip(paths_test, defect_types, strict=True)):
            if d != "good":
                masks_test[i] = _read_mask(_find_mask(gt_dir, d, path), hw, size)
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        y_test=y_test,
        masks_test=masks_test,
        defect_types=defect_types,
        paths_train=paths_train,
        paths_test=paths_test,
        category=category,
    )
