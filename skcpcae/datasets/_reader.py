# SPDX-License-Identifier: BSD-3-Clause
"""``ImageReader``: image files as the first step of a pipeline (paths in, images out), on
the readers of :mod:`skcpcae.datasets._io`."""

import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..utils.fixes import StrOptions
from ..utils.fixes import fit_context as _fit_context
from ._io import _COLORS, _check_size, _is_pathlike, _read_batch, _resolve_paths


def _check_path_batch(X):
    """A pipeline's ``X`` of file paths as a list of str, with clear errors otherwise."""
    if _is_pathlike(X) or isinstance(X, bytes):
        raise TypeError(
            f"ImageReader expects a list of image file paths (one per sample); got a single "
            f"path {os.fspath(X) if _is_pathlike(X) else X!r}. Use [path], or "
            "skcpcae.datasets.list_images(folder) for a folder."
        )
    arrays_msg = (
        "ImageReader reads image files from paths; it got {what}. Drop ImageReader from "
        "the pipeline when passing image arrays."
    )
    if hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        X = np.asarray(X)
    if isinstance(X, np.ndarray):
        if X.dtype.kind in "biufc":
            raise TypeError(arrays_msg.format(what=f"a numeric array of shape {X.shape}"))
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(
                f"ImageReader expects a 1-D list of file paths; got an array of shape {X.shape}."
            )
        items = X.tolist()
    else:
        try:
            items = list(X)
        except TypeError:
            raise TypeError(
                f"ImageReader expects a list of image file paths; got {type(X).__name__}."
            ) from None
    for item in items:
        if not _is_pathlike(item):
            if isinstance(item, (numbers.Number, np.ndarray, list, tuple)):
                raise TypeError(arrays_msg.format(what="numbers or arrays"))
            raise TypeError(
                f"ImageReader expects image file paths (str or pathlib.Path); got "
                f"{type(item).__name__} {item!r}."
            )
    if not items:
        raise ValueError("ImageReader got an empty list of paths.")
    return _resolve_paths(items, recursive=False)


class ImageReader(TransformerMixin, BaseEstimator):
    """Read image files: the first step of a pipeline that is fitted on file paths.

    ``transform(paths)`` returns the images of the files as one float32 array in ``[0, 1]``
    (the conversions of :func:`load_images`). ``fit`` reads its files once to fix the image
    shape and resolve ``color="auto"``, so that later batches come out in the same layout:
    a reader fitted on grayscale images converts colour files to gray, and one fitted on
    colour images repeats gray files in three channels. With ``size=None``, a file of
    another size than the fitted images is an error; set ``size`` to resize every file.

    The reader takes file paths only: when the data are already arrays, drop it from the
    pipeline. scikit-learn's common estimator checks feed numeric arrays, so they do not
    apply to this step; its own tests cover ``clone``, ``get_params``, persistence and
    :class:`~sklearn.pipeline.Pipeline` use.

    Parameters
    ----------
    size : tuple of (int, int) or None, default=None
        ``(height, width)`` every image is resized to; ``None`` keeps the files' size, which
        must then be the same for all of them.
    color : {"auto", "gray", "rgb"}, default="auto"
        Output colour mode; ``"auto"`` is ``"gray"`` when every training image is
        single-channel (or has equal channels), else ``"rgb"``.
    verbose : int, default=0
        Show a tqdm progress bar when positive.

    Attributes
    ----------
    image_shape_ : tuple of int
        ``(height, width)`` or ``(height, width, 3)`` of the images ``transform`` returns.
    color_ : {"gray", "rgb"}
        The colour mode ``color`` resolved to during ``fit``.

    See Also
    --------
    load_images : the function this step calls.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from skcpcae.datasets import ImageReader, save_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = [save_image(os.path.join(tmp, f"{i}.png"), np.full((8, 8), i / 4))
    ...              for i in range(4)]
    ...     flatten = FunctionTransformer(lambda X: X.reshape(len(X), -1))
    ...     pipe = make_pipeline(ImageReader(size=(4, 4)), flatten).fit(paths)
    ...     pipe.transform(paths[:2]).shape
    (2, 16)
    >>> pipe[0].image_shape_, pipe[0].color_
    ((4, 4), 'gray')
    """

    _parameter_constraints: dict = {
        "size": [None, tuple, list],
        "color": [StrOptions(set(_COLORS))],
        "verbose": ["verbose"],
    }

    def __init__(self, size=None, *, color="auto", verbose=0):
        self.size = size
        self.color = color
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Read the files once to fix the image shape and colour mode.

        Parameters
        ----------
        X : list of str or path-like of length n_samples
            Image file paths.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted reader.
        """
        self._fit_read(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and return the images, reading each file once.

        Parameters
        ----------
        X : list of str or path-like of length n_samples
            Image file paths.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        images : ndarray of shape (n_samples, height, width) or (n_samples, height, width, 3)
            Float32 in ``[0, 1]``.
        """
        return self._fit_read(X)

    def transform(self, X):
        """Read the files in the fitted size and colour mode.

        Parameters
        ----------
        X : list of str or path-like of length n_samples
            Image file paths.

        Returns
        -------
        images : ndarray of shape (n_samples, height, width) or (n_samples, height, width, 3)
            Float32 in ``[0, 1]``, shape ``(n_samples,) + image_shape_``.
        """
        check_is_fitted(self)
        paths = _check_path_batch(X)
        images, _ = _read_batch(
            paths, size=_check_size(self.size), color=self.color_, verbose=self.verbose
        )
        if images.shape[1:] != tuple(self.image_shape_):
            got, fitted = images.shape[1:3], tuple(self.image_shape_[:2])
            raise ValueError(
                f"ImageReader was fitted on images of {fitted[0]}x{fitted[1]} pixels "
                f"(height x width) but got images of {got[0]}x{got[1]}. Set "
                f"size=({fitted[0]}, {fitted[1]}) to resize every file, or refit."
            )
        return images

    def _fit_read(self, X):
        paths = _check_path_batch(X)
        size = _check_size(self.size)
        images, color = _read_batch(paths, size=size, color=self.color, verbose=self.verbose)
        self.color_ = color
        self.image_shape_ = tuple(int(s) for s in images.shape[1:])
        return images

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags

