# SPDX-License-Identifier: BSD-3-Clause
"""Private helpers shared by the image stages: layout handling, validation, tags.

Every image stage accepts

* ``(n_samples, height, width)`` — grayscale images,
* ``(n_samples, height, width, channels)`` — colour (or multi-channel) images,
* ``(n_samples, n_features)`` — a table, read as one-pixel-high images
  ``(n_samples, 1, n_features)``; this is what scikit-learn's common checks send, and the stage
  returns a table again.

Pixel values are floats in ``[0, 1]``. Documented conversions: ``uint8`` is divided by 255,
``uint16`` by 65535, ``bool`` becomes 0/1; floats are cast to float32 as is. Other integer
types (``int8`` ... ``int64``, ``uint32``, ``uint64``, and lists of Python ints) are never used
as they come when their values leave ``[0, 1]``: values in ``[0, 1]`` (masks) are cast as is,
values in ``[0, 255]`` are on the 8-bit scale (divided by 255), values in ``[0, 65535]`` on
the 16-bit scale (divided by 65535), and anything else (negative, larger) is refused.
Lists of arrays are stacked (they must share one shape). NaN and inf are refused. A 2-D
``uint8`` / ``uint16`` array, or a square 2-D array of side 32 or more, is a single image
without its batch axis, not a table: it is refused with a hint (``X[None]``).
"""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted, validate_data

from ._rules import OutOfSampleFitPredictMixin, warn_outside_unit_range  # noqa: F401
from .utils.fixes import Interval, StrOptions

__all__ = ["validate_images", "restore_layout", "image_tags"]


def _as_array(X, estimator_name):
    """Turn X into an ndarray with a clear error for ragged input."""
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"{estimator_name} expects an array of images, got a string {X!r}. "
            "Read files first with skcpcae.datasets.load_images or start the pipeline "
            "with skcpcae.datasets.ImageReader."
        )
    if hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        return np.asarray(X)
    items = list(X)
    if items and all(isinstance(x, (str, bytes)) or hasattr(x, "__fspath__") for x in items):
        raise TypeError(
            f"{estimator_name} expects an array of images, got a list of file paths. "
            "Read them with skcpcae.datasets.load_images or put "
            "skcpcae.datasets.ImageReader at the head of the pipeline."
        )
    shapes = {np.shape(x) for x in items}
    if len(shapes) > 1:
        raise ValueError(
            f"{estimator_name} got images of different shapes {sorted(shapes)[:4]}; all "
            "images in a batch must have one shape. Resize them first, e.g. "
            "load_images(..., size=(height, width))."
        )
    return np.asarray(items)


def _to_float(X, estimator_name):
    """Documented dtype conversions to float32."""
    if X.dtype == np.uint8:
        return X.astype(np.float32) / np.float32(255.0)
    if X.dtype == np.uint16:
        return X.astype(np.float32) / np.float32(65535.0)
    if X.dtype == np.bool_:
        return X.astype(np.float32)
    if X.dtype.kind in "iu":
        return _int_to_float(X, estimator_name)
    if X.dtype.kind == "f":
        return X.astype(np.float32, copy=False)
    if X.dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: {estimator_name} does not accept complex images "
            f"(dtype {X.dtype})."
        )
    return X  # object / str: let check_array give its error message


def _int_to_float(X, estimator_name):
    """Integers other than uint8 / uint16: as is in [0, 1], else on the 8- or 16-bit scale."""
    if X.size == 0:
        return X.astype(np.float32)
    lo, hi = int(X.min()), int(X.max())
    if lo >= 0 and hi <= 1:
        return X.astype(np.float32)
    if lo >= 0 and hi <= 255:
        return X.astype(np.float32) / np.float32(255.0)
    if lo >= 0 and hi <= 65535:
        return X.astype(np.float32) / np.float32(65535.0)
    raise ValueError(
        f"{estimator_name} got {X.dtype} pixel values in [{lo}, {hi}]: integer images must "
        "be on the 8-bit (0..255) or 16-bit (0..65535) scale, or 0/1 masks. Convert them to "
        "floats in [0, 1] first, e.g. (X - X.min()) / (X.max() - X.min())."
    )


def _looks_like_one_image(X):
    """A 2-D array that is a single image rather than a table of samples."""
    return X.ndim == 2 and (
        X.dtype in (np.uint8, np.uint16) or (X.shape[0] == X.shape[1] and X.shape[0] >= 32)
    )


def validate_images(
    estimator,
    X,
    *,
    reset,
    value_range=None,
    min_height=1,
    min_width=1,
    allowed_channels=None,
):
    """Validate an image batch and return it as float32 images plus its layout.

    Parameters
    ----------
    estimator : estimator instance
        The stage; ``n_features_in_`` and ``image_shape_`` are set on it when ``reset``.
    X : array-like
        ``(n, H, W)``, ``(n, H, W, C)`` or ``(n, n_features)``.
    reset : bool
        True in ``fit``; False afterwards, when the image shape must match the fitted one.
    value_range : {None, "unit"}
        With ``"unit"``, float values outside ``[0, 1]`` give the package's one
        ``UserWarning`` (:func:`warn_outside_unit_range`) and are clipped to ``[0, 1]``.
    min_height, min_width : int
        Smallest image size the stage can work with.
    allowed_channels : tuple of int or None
        Channel counts the stage accepts (grayscale counts as 1).

    Returns
    -------
    images : ndarray of shape (n, H, W) or (n, H, W, C), float32, C-contiguous
    was_2d : bool
        Whether the input was a table, so the output can be returned as one.
    """
    name = type(estimator).__name__
    if not reset:
        check_is_fitted(estimator)
    if sp.issparse(X):
        raise TypeError(
            f"{name} does not accept sparse input ({type(X).__name__}); pass a dense array "
            "of images, e.g. X.toarray()."
        )
    X = _as_array(X, name)
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} expects images of shape (n_samples, height, width[, channels]) or a "
            f"table (n_samples, n_features); got an array with {X.ndim} dimension(s), "
            f"shape {X.shape}."
            + (" Reshape your data, e.g. a single image with X[None]." if X.ndim in (0, 1) else "")
        )
    if _looks_like_one_image(X):
        raise ValueError(
            f"{name} expects images of shape (n_samples, height, width[, channels]); got a "
            f"2-D {X.dtype} array of shape {X.shape}, which looks like a single image without "
            "the batch axis: pass X[None] (shape (1, height, width)). A table of "
            "n_samples == n_features values is accepted as X[:, None, :] (one-pixel-high "
            "images)."
        )
    X = _to_float(X, name)
    was_2d = X.ndim == 2
    if was_2d:
        image_shape = (1, X.shape[1])
    else:
        image_shape = tuple(X.shape[1:])
    if X.ndim == 4 and allowed_channels is not None and X.shape[3] not in allowed_channels:
        raise ValueError(
            f"{name} accepts images with {' or '.join(map(str, allowed_channels))} channel(s) "
            f"in the last axis; got shape {X.shape}. Drop an alpha channel with X[..., :3]."
        )
    if not reset:
        fitted = getattr(estimator, "image_shape_", None)
        if fitted is not None and tuple(fitted) != image_shape:
            fitted = tuple(fitted)
            if tuple(X.shape) == fitted:
                hint = ("X looks like a single image without the batch axis: pass X[None] "
                        "(shape (1, ...)).")
            elif image_shape[:2] == fitted[:2]:
                hint = ("The images differ in their channels (gray vs colour): convert "
                        "them, e.g. load_images(..., color='gray') or X.mean(axis=-1) for "
                        "gray, np.repeat(X[..., None], 3, axis=-1) for colour.")
            else:
                hint = ("Resize the images to the fitted size (e.g. "
                        "load_images(..., size=...)) or refit.")
            raise ValueError(
                f"X has {int(np.prod(image_shape))} features, but {name} is expecting "
                f"{int(np.prod(fitted))} features as input: "
                f"{name} was fitted on images of shape {fitted} (height, width"
                f"[, channels]) but got images of shape {image_shape}. " + hint
            )
    n = X.shape[0]
    flat = X.reshape(n, -1) if n else X.reshape(0, int(np.prod(image_shape)))
    flat = validate_data(
        estimator, flat, reset=reset, dtype=[np.float32, np.float64], ensure_min_samples=1
    )
    flat = np.asarray(flat, dtype=np.float32)
    if value_range == "unit" and warn_outside_unit_range(
        estimator, flat, "it clips them to [0, 1] first", stacklevel=4
    ):
        flat = np.clip(flat, 0.0, 1.0)
    if image_shape[0] < min_height or image_shape[1] < min_width:
        raise ValueError(
            f"{name} needs images of at least {min_height}x{min_width} pixels; got "
            f"{image_shape[0]}x{image_shape[1]}."
        )
    if reset:
        estimator.image_shape_ = image_shape
    images = np.ascontiguousarray(flat.reshape((n,) + image_shape))
    return images, was_2d


def restore_layout(images, was_2d):
    """Return a stage's image output in the layout its input had."""
    images = np.asarray(images, dtype=np.float32)
    if was_2d:
        return images.reshape(images.shape[0], -1)
    return images


def image_tags(tags):
    """Adjust scikit-learn tags for a stage that consumes image batches."""
    tags.input_tags.three_d_array = True
    tags.input_tags.two_d_array = True
    if tags.transformer_tags is not None:
        tags.transformer_tags.preserves_dtype = ["float32"]
    return tags


def check_positive_int(value, name):
    if not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def iter_batches(n, batch_size):
    """Yield slices of at most ``batch_size`` over ``range(n)``."""
    batch_size = max(1, int(batch_size))
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


# -- outlier detectors ------------------------------------------------------------------------

#: ``contamination`` of every skcpcae outlier detector: "auto" or a fraction in (0, 0.5].
CONTAMINATION_CONSTRAINT = [
    StrOptions({"auto"}),
    Interval(numbers.Real, 0, 0.5, closed="right"),
]


def offset_from_scores(train_scores, contamination):
    """``offset_`` from training ``score_samples`` (higher = more normal).

    ``"auto"``: Tukey's fence ``Q3 + 1.5 IQR`` on the finite training anomaly scores
    (negated), a robust rule that flags only clear outliers; a float: that quantile of the
    scores.
    """
    train_scores = np.asarray(train_scores, dtype=np.float64)
    if contamination == "auto":
        anomaly = -train_scores[np.isfinite(train_scores)]
        if anomaly.size == 0:
            return -np.inf
        q1, q3 = np.percentile(anomaly, [25, 75])
        return -float(q3 + 1.5 * (q3 - q1))
    return float(np.percentile(train_scores, 100.0 * contamination))


def refuse_backward_string_scorer():
    """Raise when a scikit-learn string scorer would read this detector backwards.

    ``GridSearchCV(scoring="roc_auc")`` (or ``"average_precision"``) scores
    ``decision_function`` (higher = more normal) against the labels as given: with this
    package's labels (0 normal, 1 anomalous) it would return 1 - AUROC without a word. Called
    at the top of every ``decision_function`` of the package; labels +1 / -1 (scikit-learn's
    outlier convention, +1 normal) are read the right way and pass.
    """
    from .utils.fixes import _SCORE_FUNCS_READ_BACKWARDS, string_scorer_labels

    caller = string_scorer_labels()
    if caller is None:
        return
    func, y_true, kwargs = caller
    if func not in _SCORE_FUNCS_READ_BACKWARDS or y_true is None:
        return
    labels = set(np.unique(np.asarray(y_true)).tolist())
    if 1 in labels and labels <= {0, 1} and kwargs.get("pos_label", 1) == 1:
        name = "roc_auc" if func == "roc_auc_score" else "average_precision"
        raise ValueError(
            f"scikit-learn's scoring={name!r} reads an outlier detector's decision_function "
            "(higher = more normal) against labels 0 = normal, 1 = anomalous backwards: it "
            "would score 1 - the real figure. Use skcpcae.metrics.get_scorer("
            f"{name!r}) as scoring (skcpcae.metrics.get_scorer_names() lists them), or "
            "labels +1 normal / -1 anomalous."
        )


class OutlierScoresMixin:
    """``decision_function`` and ``predict`` from ``score_samples`` and ``offset_``."""

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like
            Input of :meth:`score_samples`.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        refuse_backward_string_scorer()
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers (normal samples), -1 for outliers (anomalies).

        Parameters
        ----------
        X : array-like
            Input of :meth:`score_samples`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.where(self.decision_function(X) < 0, -1, 1)



class ImageOutputMixin:
    """``set_output`` for stages whose output is an image batch, not a table.

    ``Pipeline.set_output(transform="pandas")`` configures every step, and refuses a step
    with ``transform`` but no ``set_output``. An image batch ``(n, H, W[, C])`` has no
    columns, so these stages accept the setting, remember it, and keep returning ndarrays;
    the table stages after them (embedders, scalers) return the DataFrames. Put the mixin
    left of ``TransformerMixin``: it also turns off scikit-learn's automatic wrapping of
    ``transform``, which would try to make a table of the images under
    ``sklearn.set_config(transform_output="pandas")``.
    """

    def __init_subclass__(cls, auto_wrap_output_keys=None, **kwargs):
        super().__init_subclass__(auto_wrap_output_keys=None, **kwargs)

    def set_output(self, *, transform=None):
        """Accept an output container for the pipeline; images stay ndarrays.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            Recorded (``None`` leaves it unchanged); the images this stage returns are
            ndarrays whatever the setting, since an image batch is not a table.

        Returns
        -------
        self : estimator instance
        """
        if transform is not None and transform not in ("default", "pandas", "polars"):
            raise ValueError(
                f"transform must be 'default', 'pandas', 'polars' or None; got {transform!r}."
            )
        if transform is not None:
            self._sklearn_output_config = {"transform": transform}
        return self


class ImageDetectorMixin(OutlierScoresMixin):
    """``decision_function``, ``predict`` and image tags of the detectors that take images.

    Subclasses define ``score_samples`` (higher = more normal) and set ``offset_`` in ``fit``.
    """

    def __sklearn_tags__(self):
        return image_tags(super().__sklearn_tags__())


class PretrainedBackboneMixin:
    """Backbone plumbing shared by the estimators that run a timm CNN on image batches.

    Reads ``backbone``, ``weights`` (``pretrained``, deprecated), ``input_size`` (parameters) and
    ``device_``, ``mean_``, ``std_`` (set in ``fit``). Pickling stores the fitted
    ``backbone_`` as its weights in numpy arrays: the pickle holds no torch object (skops can
    store it safely; a model fitted on a GPU loads on a CPU-only machine), and unpickling
    rebuilds the network from ``_backbone_skeleton()``, which subclasses define. The work
    itself is done by :mod:`skcpcae._components.backbones`.
    """

    # How far outputs may move with the batch they are computed in (read by
    # skcpcae.utils.estimator_checks): the convolutions sum in a batch-size-dependent order,
    # within float32 rounding, as the embedders' ``batch_size`` docstrings document.
    _batch_tolerance = {"rtol": 1e-5, "atol": 1e-5}

    def __getstate__(self):
        from .utils._torch import weights_to_numpy

        state = dict(super().__getstate__())  # a copy: never touch the live backbone
        backbone = state.pop("backbone_", None)
        if backbone is not None:
            state["_backbone_weights"] = weights_to_numpy(backbone)
        return state

    def __setstate__(self, state):
        state = dict(state)
        if isinstance(state.get("pretrained"), bool):
            # a model file from before weights replaced pretrained (weights=None then meant
            # "as pretrained says"): the same source, spelled with weights only
            if state.get("weights") is None:
                state["weights"] = "offline" if state["pretrained"] else None
            state["pretrained"] = "deprecated"
        weights = state.pop("_backbone_weights", None)
        super().__setstate__(state)
        if weights is None:
            return
        import torch

        from .utils._torch import (
            check_weight_shapes,
            device_after_unpickling,
            load_numpy_weights,
        )

        self.device_ = device_after_unpickling(self, self.__dict__.get("device_", "cpu"))
        check_weight_shapes(self._backbone_skeleton, weights, self)  # before allocating
        with torch.random.fork_rng(devices=[]):  # the skeleton's random init is overwritten
            model = self._backbone_skeleton()
        load_numpy_weights(model, weights)
        self.backbone_ = self._finish_backbone(model)

    def _fold_backbone(self, model):
        """``model`` in eval mode, its batch norms folded into the convolutions before them.

        Folding removes a pass over every feature map (the `best` preset's backbone stage
        scores about 1.2-1.3 x faster on 2 CPU cores: ``benchmarks/speed.py``) and changes
        outputs by float32 rounding only; the folded copy is checked on a
        probe batch and dropped when it disagrees. ``_backbone_folded`` records the outcome,
        so that unpickling rebuilds the same structure (model files from before folding hold
        the batch-norm weights and load unfolded).
        """
        import torch

        from ._components.backbones import MIN_SIZE
        from ._components.surgery import fold_batchnorm

        model.eval()
        side = 2 * MIN_SIZE
        probe = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        folded = fold_batchnorm(model, probe)  # the probe does not touch the global RNG
        self._backbone_folded = folded is not model
        return folded

    def _skeleton_as_fitted(self, model, folded=None):
        """The network ``model`` (built with random weights), folded as the fitted one was
        (``folded``; by default what ``_backbone_folded`` recorded, False when absent)."""
        from ._components.surgery import fold_batchnorm

        if folded is None:
            folded = self.__dict__.get("_backbone_folded", False)
        model.eval()
        return fold_batchnorm(model) if folded else model

    def _finish_backbone(self, model):
        import torch

        # channels_last: about twice as fast on CPU for these depthwise-separable CNNs
        model = model.to(self.device_, memory_format=torch.channels_last).eval()
        for param in model.parameters():
            param.requires_grad_(False)
        return model

    def _weights_source(self):
        """``weights``, or what the deprecated ``pretrained`` meant (with a FutureWarning)."""
        from .utils._deprecation import DEPRECATED, warn_deprecated

        pretrained = self.pretrained
        if isinstance(pretrained, str) and pretrained == DEPRECATED:
            return self.weights
        name = type(self).__name__
        if not (isinstance(self.weights, str) and self.weights == "offline"):
            raise ValueError(
                f"{name} got both pretrained={pretrained!r} (deprecated) and "
                f"weights={self.weights!r}; set weights only (weights=None for random "
                "weights)."
            )
        # warn_deprecated < _weights_source < fit < _fit_context < caller
        warn_deprecated(f"{name}(pretrained=...)", "weights=... (pretrained=False is "
                        "weights=None)", stacklevel=5)
        return "offline" if pretrained else None

    def _target_size(self, height, width):
        from ._components.backbones import target_size

        return target_size(self.input_size, height, width)

    def _prepare(self, images):
        """float32 numpy batch -> normalised (n, 3, H', W') tensor on the device."""
        from ._components.backbones import prepare_images

        return prepare_images(images, self.mean_, self.std_, input_size=self.input_size,
                              device=self.device_)
