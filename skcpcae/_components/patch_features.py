# SPDX-License-Identifier: BSD-3-Clause
"""Patch features: PatchCore's local aggregation of CNN stage maps into one grid.

Plain torch functions; no scikit-learn here.
"""

__all__ = ["aggregate_patch_maps"]


def aggregate_patch_maps(maps, local_size=3):
    """Patch features from a list of NCHW stage maps (PatchCore's local aggregation).

    Each map is averaged over ``local_size`` x ``local_size`` neighbours (borders average
    what they have), the coarser maps are upsampled (bilinear) to the finest, and all are
    concatenated along the channels.

    Parameters
    ----------
    maps : list of torch.Tensor of shape (n, C_i, h_i, w_i)
        Feature maps of one batch, one per backbone stage.
    local_size : int, default=3
        Side of the averaging neighbourhood (odd; 1 disables it).

    Returns
    -------
    patches : torch.Tensor of shape (n, sum of C_i, h, w)
        ``(h, w)`` is the largest grid among the maps.
    """
    import torch
    import torch.nn.functional as F

    maps = list(maps)
    if not maps:
        raise ValueError("aggregate_patch_maps needs at least one feature map.")
    k = int(local_size)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"local_size must be a positive odd int, got {local_size!r}.")
    if k > 1:
        maps = [F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)
                for m in maps]
    size = max((tuple(m.shape[2:]) for m in maps), key=lambda s: s[0] * s[1])
    maps = [m if tuple(m.shape[2:]) == size
            else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            for m in maps]
    return torch.cat(maps, dim=1)
