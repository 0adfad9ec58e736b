# SPDX-License-Identifier: BSD-3-Clause
"""torch modules that replay a fitted pipeline, step by step, for ``torch.onnx.export``.

Each module reproduces what one fitted estimator computes at prediction time, with its fitted
state as constant buffers, so that the exported graph needs nothing but itself:

* :class:`Preprocess`: the embedders' input handling (``uint8`` scaled by 1/255, gray
  repeated to 3 channels, per-channel normalisation), as ``validate_images`` and
  ``prepare_images`` do it;
* :class:`PatchEmbed` / :class:`PoolEmbed`: the backbone's feature maps, then
  ``aggregate_patch_maps`` or the pooling head;
* :class:`Standardize`: a fitted ``StandardScaler``, rounded to float32 where scikit-learn
  rounds (which depends on its release);
* :class:`LocalPatchKNN`: ``PatchKNNScorer`` (position-conditioned k-NN, then the mean of the
  ``top_k`` largest patch distances);
* :class:`MeanSquaredKNN`: ``KNNAnomalyScorer`` (mean squared Euclidean distance to the ``k``
  nearest training rows, in float64);
* :class:`ExportedPipeline`: the chain, with the threshold, returning the anomaly score
  (``-score_samples``), the decision (+1 normal / -1 anomalous, as ``predict``) and, where the
  scorer has one, the anomaly map.

torch only; no scikit-learn here (the fitted attributes are read in :mod:`._onnx`).
"""

import numpy as np
import torch
from torch import nn

from .._components.backbones import feature_maps
from .._components.patch_features import aggregate_patch_maps
from ..embedding._pooling import pool_features

__all__ = [
    "ExportedPipeline",
    "LocalPatchKNN",
    "MeanSquaredKNN",
    "PatchEmbed",
    "PoolEmbed",
    "Preprocess",
    "Standardize",
    "gather_rows",
]


class _GatherRows(torch.autograd.Function):
    """``data[p, index[p, ...]]`` for every ``p``; exported as one ``GatherND(batch_dims=1)``."""

    @staticmethod
    def forward(ctx, data, index):
        rows = torch.arange(data.shape[0], device=data.device).view(
            -1, *([1] * (index.ndim - 1)))
        return data[rows, index]

    @staticmethod
    def symbolic(g, data, index):
        return g.op("GatherND", data, g.op("Unsqueeze", index, g.op(
            "Constant", value_t=torch.tensor([-1], dtype=torch.int64))), batch_dims_i=1)


def gather_rows(data, index):
    """Rows of ``data (P, N, ...)`` picked per leading position by ``index (P, ...)``.

    ``out[p, i, j] = data[p, index[p, i, j]]``. Advanced indexing would be exported by
    flattening ``data`` (a Reshape that constant folding turns into a second copy of the
    memory bank); ``GatherND`` with ``batch_dims=1`` reads the stored constant itself.
    """
    return _GatherRows.apply(data, index)


class Preprocess(nn.Module):
    """Images ``(n, H, W[, C])`` (float32 in [0, 1] or uint8) -> normalised ``(n, 3, H, W)``."""

    def __init__(self, mean, std, *, uint8):
        super().__init__()
        self.uint8 = bool(uint8)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images):
        x = images
        if self.uint8:  # as validate_images: float32(x) / float32(255)
            x = x.to(torch.float32) / 255.0
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


class PatchEmbed(nn.Module):
    """``DeepPatchEmbedder``: backbone stage maps -> patch features ``(n, C, h, w)``."""

    def __init__(self, backbone, *, final, local_size, name=None):
        super().__init__()
        self.backbone = backbone
        self.final = bool(final)
        self.local_size = int(local_size)
        self.name = name

    def forward(self, x):
        maps = feature_maps(self.backbone, x, final=self.final, name=self.name)
        return aggregate_patch_maps(maps, self.local_size)


class PoolEmbed(nn.Module):
    """``DeepPoolEmbedder``: backbone maps -> pooled vectors ``(n, d)``."""

    def __init__(self, backbone, *, final, pooling, name=None):
        super().__init__()
        self.backbone = backbone
        self.final = bool(final)
        self.pooling = pooling
        self.name = name

    def forward(self, x):
        maps = feature_maps(self.backbone, x, final=self.final, name=self.name)
        return torch.cat([pool_features(m, self.pooling) for m in maps], dim=1)


class Standardize(nn.Module):
    """A fitted ``StandardScaler`` on float32 rows, with scikit-learn's roundings.

    scikit-learn >= 1.8 casts ``mean_`` and ``scale_`` to the table's float32 and subtracts
    and divides in float32 (``X -= xp.astype(mean_, X.dtype)``); earlier releases subtract
    the float64 ``mean_`` from the float32 table in place (computed in float64, stored in
    float32), then divide by ``scale_`` the same way. ``float64_roundings`` picks the second
    (:func:`._onnx._scaler_roundings` finds which one the fitted scaler does).
    """

    def __init__(self, mean, scale, *, float64_roundings=False):
        super().__init__()
        self.has_mean = mean is not None
        self.has_scale = scale is not None
        self.float64_roundings = bool(float64_roundings)
        dtype = np.float64 if self.float64_roundings else np.float32
        if self.has_mean:
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype)))
        if self.has_scale:
            self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype)))

    def forward(self, x):
        if self.float64_roundings:
            if self.has_mean:
                x = (x.to(torch.float64) - self.mean).to(torch.float32)
            if self.has_scale:
                x = (x.to(torch.float64) / self.scale).to(torch.float32)
            return x
        if self.has_mean:
            x = x - self.mean
        if self.has_scale:
            x = x / self.scale
        return x


class LocalPatchKNN(nn.Module):
    """``PatchKNNScorer``: patch maps ``(n, d, h, w)`` -> anomaly score and map.

    Every grid position has its own bank: the training patches at the positions within
    ``radius`` (outside the grid: masked). As ``knn_search`` does, candidates are ranked by
    ``||b||^2 - 2 q.b`` in float32 and the distances of the ``k`` selected are recomputed
    exactly as ``||q - b||``; a patch's distance is their mean, the image's anomaly score the
    float64 mean of its ``top_k`` largest patch distances.
    """

    def __init__(self, memory, *, n_neighbors, radius, top_k):
        super().__init__()
        memory = np.ascontiguousarray(memory, dtype=np.float32)  # (n, h, w, d)
        n, h, w, d = memory.shape
        r = int(radius)
        offsets = [(di, dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]
        n_cand = n * len(offsets)
        bank = np.zeros((h, w, n_cand, d), np.float32)
        valid = np.zeros((h, w, n_cand), bool)
        for o, (di, dj) in enumerate(offsets):
            i0, i1 = max(0, -di), min(h, h - di)
            j0, j1 = max(0, -dj), min(w, w - dj)
            if i0 >= i1 or j0 >= j1:
                continue
            src = memory[:, i0 + di:i1 + di, j0 + dj:j1 + dj]  # (n, i1-i0, j1-j0, d)
            bank[i0:i1, j0:j1, o * n:(o + 1) * n] = src.transpose(1, 2, 0, 3)
            valid[i0:i1, j0:j1, o * n:(o + 1) * n] = True
        n_pos = h * w
        bank = bank.reshape(n_pos, n_cand, d)
        valid = valid.reshape(n_pos, n_cand)
        self.grid = (h, w)
        self.n_features = d
        self.n_cand = n_cand
        self.k = max(1, min(int(n_neighbors), n_cand))
        self.top_k = max(1, min(int(top_k), n_pos))
        self.masked = not bool(valid.all())
        # One copy of the bank, (P, N, d): the ranking multiplies it by the transposed
        # queries and the exact recomputation gathers its rows by (position, candidate)
        # (GatherND, batch_dims=1). A transposed or reshaped view of it would be folded into
        # a second constant of the file by the exporter.
        t = torch.from_numpy(bank)
        self.register_buffer("bank", t)  # (P, N, d)
        self.register_buffer("bank_sq", (t * t).sum(-1).unsqueeze(-1))  # (P, N, 1), as knn_search
        if self.masked:
            self.register_buffer("invalid", torch.from_numpy(~valid).view(n_pos, n_cand, 1))
            self.register_buffer("valid", torch.from_numpy(valid))  # (P, N)

    def forward(self, maps):
        h, w = self.grid
        d = self.n_features
        q = maps.permute(2, 3, 0, 1).reshape(h * w, -1, d)  # (P, m, d)
        # (P, N, m): the bank stays as stored, the (small) queries are transposed
        d2 = self.bank_sq - 2.0 * torch.matmul(self.bank, q.transpose(1, 2))
        if self.masked:
            d2 = d2.masked_fill(self.invalid, float("inf"))
        _, idx = torch.topk(d2.transpose(1, 2), self.k, dim=-1, largest=False)  # (P, m, k)
        near = gather_rows(self.bank, idx)  # (P, m, k, d)
        diff = q.unsqueeze(2) - near
        dist = (diff * diff).sum(-1).sqrt()
        if self.masked:
            ok = gather_rows(self.valid.unsqueeze(-1), idx).squeeze(-1)
            dist = torch.where(ok, dist, torch.zeros_like(dist)).sum(-1) / (
                ok.to(torch.float32).sum(-1).clamp_min(1.0))
        else:
            dist = dist.sum(-1) / float(self.k)
        patch = dist.permute(1, 0)  # (m, P)
        worst = torch.topk(patch.to(torch.float64), self.top_k, dim=1).values
        anomaly = worst.mean(dim=1)
        return anomaly, patch.reshape(-1, h, w)


class MeanSquaredKNN(nn.Module):
    """``KNNAnomalyScorer`` (Euclidean): mean squared distance to the ``k`` nearest rows.

    Computed in float64 as scikit-learn does for float32 data:
    ``||x||^2 - 2 x.b + ||b||^2``, clamped at 0.
    """

    def __init__(self, bank, *, n_neighbors):
        super().__init__()
        bank = torch.as_tensor(np.asarray(bank, dtype=np.float64))
        self.k = max(1, min(int(n_neighbors), bank.shape[0]))
        self.register_buffer("bank_t", bank.T.contiguous())
        self.register_buffer("bank_sq", (bank * bank).sum(1).view(1, -1))

    def forward(self, x):
        x = x.to(torch.float64)
        d2 = (x * x).sum(1, keepdim=True) - 2.0 * torch.matmul(x, self.bank_t) + self.bank_sq
        d2 = d2.clamp_min(0.0)
        near = torch.topk(d2, self.k, dim=1, largest=False).values
        return near.mean(dim=1), None


class ExportedPipeline(nn.Module):
    """The whole chain: images -> ``(anomaly_score, decision[, anomaly_map])``."""

    def __init__(self, preprocess, embed, tabular, scorer, threshold):
        super().__init__()
        self.preprocess = preprocess
        self.embed = embed
        self.tabular = nn.ModuleList(tabular)
        self.scorer = scorer
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float64))

    def forward(self, images):
        x = self.embed(self.preprocess(images))
        for step in self.tabular:
            x = step(x)
        anomaly, amap = self.scorer(x)
        # predict: decision_function = threshold - anomaly >= 0 -> +1 (NaN -> -1)
        decision = torch.where(anomaly <= self.threshold, torch.ones_like(anomaly),
                               -torch.ones_like(anomaly)).to(torch.int64)
        if amap is None:
            return anomaly, decision
        return anomaly, decision, amap
