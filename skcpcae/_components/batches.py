# SPDX-License-Identifier: BSD-3-Clause
"""What every estimator running a backbone does to a batch: the input size
(:func:`target_size`), the resized and normalised tensor (:func:`prepare_images`) and the
list of NCHW feature maps (:func:`feature_maps`). Re-exported by
:mod:`skcpcae._components.backbones`, which loads the backbones."""

import numbers

__all__ = ["MIN_SIZE", "feature_maps", "prepare_images", "target_size"]

#: Smallest height and width fed to a backbone: smaller images are enlarged to it, so that
#: the strided stages of the CNN still have a map to work on.
MIN_SIZE = 32



def target_size(input_size, height, width, min_size=MIN_SIZE):
    """``(height, width)`` a batch is fed to the backbone at.

    Parameters
    ----------
    input_size : int, tuple of (int, int) or None
        ``None`` keeps ``(height, width)``; an int gives a square; a pair is used as is.
    height, width : int
        Size of the images.
    min_size : int, default=32
        Each side is enlarged to at least this.

    Returns
    -------
    size : tuple of (int, int)
    """
    if input_size is None:
        size = (height, width)
    elif isinstance(input_size, numbers.Integral):
        size = (int(input_size), int(input_size))
    else:
        size = (int(input_size[0]), int(input_size[1]))
    return max(size[0], min_size), max(size[1], min_size)


def prepare_images(images, mean, std, *, input_size=None, device="cpu"):
    """A float32 numpy batch as the normalised ``(n, 3, H', W')`` tensor a backbone takes.

    Parameters
    ----------
    images : ndarray of shape (n, height, width[, channels])
        Floats in [0, 1], 1 or 3 channels (gray is repeated to 3). Never modified (copied).
    mean, std : sequence of 3 float
        Per-channel normalisation (:func:`backbone_normalization`).
    input_size : int, tuple of (int, int) or None, default=None
        Resize (bilinear, antialiased) to :func:`target_size` of this.
    device : str, default="cpu"
        Device of the returned tensor.

    Returns
    -------
    x : torch.Tensor of shape (n, 3, H', W'), float32, channels-last
    """
    import torch
    import torch.nn.functional as F

    x = torch.tensor(images, dtype=torch.float32)  # copy: inputs may be read-only
    if x.ndim == 3:
        x = x[:, None]
    else:
        x = x.permute(0, 3, 1, 2)
    x = x.to(device)
    size = target_size(input_size, x.shape[2], x.shape[3])
    if size != tuple(x.shape[2:]):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def feature_maps(model, x, *, final=False, name=None):
    """The list of NCHW feature maps of the batch ``x``.

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`load_backbone`: a feature extractor (``features_only=True``, a list of
        stage maps) or, with ``final``, a classifier whose ``forward_features`` gives the
        last map before global pooling.
    x : torch.Tensor of shape (n, 3, H, W)
        A prepared batch (:func:`prepare_images`).
    final : bool, default=False
        Use ``model.forward_features`` (one map) instead of ``model(x)``.
    name : str or None, default=None
        Backbone name, for the error message.

    Returns
    -------
    maps : list of torch.Tensor of shape (n, C_i, h_i, w_i)

    Raises
    ------
    ValueError
        When the backbone gives a tensor that is not a 4-D map (a vision transformer's
        tokens, say).
    """
    if final:
        maps = model.forward_features(x)
        if isinstance(maps, (list, tuple)):
            maps = maps[-1]
        if maps.ndim == 4 and getattr(model, "output_fmt", "NCHW") == "NHWC":
            maps = maps.permute(0, 3, 1, 2)
        maps = [maps]
    else:
        maps = list(model(x))
    for m in maps:
        if m.ndim != 4:
            raise ValueError(
                f"Backbone {name or type(model).__name__!r} gives a feature tensor of shape "
                f"{tuple(m.shape)}, not a (n, C, h, w) map; a convolutional backbone is "
                "needed."
            )
    return maps

