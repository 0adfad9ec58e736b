# SPDX-License-Identifier: BSD-3-Clause
"""torch modules that replay a fitted pipeline, step by step, for ``torch.onnx.export``.

Each module reproduces what one fitted estimator computes at prediction time, with its fitted
state as constant buffers, so that the exported graph needs nothing but itself:

* :class:`ResidualMap`: ``CPCAEResidualMap.transform`` (downsize, patches, the conditional
  autoencoder on all patches of the batch at once, overlap averaging, upsize, residual, gain),
  the resizes as the fitted constant matrices of OpenCV's separable interpolations;
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
* :class:`ResidualPeakScore` / :class:`FusedKNN`: the residual peak of the CPCAE presets
  (``ResidualPeak`` on the signed residual map, the Gaussian as the fitted constant matrices
  of scipy's filter) and ``FusedKNNScorer``, which fuses it with the k-NN score;
* :class:`ExportedPipeline`: the chain, with the threshold, returning the anomaly score
  (``-score_samples``), the decision (+1 normal / -1 anomalous, as ``predict``) and, where the
  scorer has one, the anomaly map.

torch only; no scikit-learn here (the fitted attributes are read in :mod:`._onnx`).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._components.backbones import feature_maps
from .._components.patch_features import aggregate_patch_maps
from ..embedding._pooling import global_avg_pool, global_max_pool, pool_features

__all__ = [
    "ExportedPipeline",
    "FusedKNN",
    "LocalPatchKNN",
    "MeanSquaredKNN",
    "PatchEmbed",
    "PatchAutoencoder",
    "PoolEmbed",
    "Preprocess",
    "ResidualMap",
    "ResidualPeakScore",
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


class PatchAutoencoder(nn.Module):
    """A fitted ``ConditionalPatchAE`` on every patch of a batch: ``(n * P, C, ph, pw)``.

    The patches come in grid order for each image (``k = 0 .. P-1``, then the next image), so
    the one-hot condition is the ``P x P`` identity repeated over the batch (a constant,
    expanded to the batch size in the graph). The layers are the fitted module's own.
    """

    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder
        self.n_patches = int(autoencoder.n_patches)
        self.code_shape = tuple(int(s) for s in autoencoder._code_shape)
        self.register_buffer("condition", torch.eye(self.n_patches, dtype=torch.float32))

    def forward(self, patches):
        ae, p = self.autoencoder, self.n_patches
        code = ae.encoder_conv(patches).flatten(1)
        code = code.reshape(-1, p, code.shape[1])  # (n, P, d)
        condition = self.condition.expand(code.shape[0], p, p)
        latent = ae.encoder_dense(torch.cat([code, condition], dim=2))
        hidden = F.relu(ae.decoder_dense(torch.cat([latent, condition], dim=2)))
        hidden = hidden.reshape(-1, *self.code_shape)
        return torch.sigmoid(ae.decoder_conv(hidden))


class ResidualMap(nn.Module):
    """``CPCAEResidualMap.transform``: images ``(n, H, W[, C])`` -> residual maps, same layout.

    * downsize to the working size: ``D_h @ x @ D_w.T``, the matrices of OpenCV's
      ``INTER_AREA`` resize (a separable linear map; read off the identity in :mod:`._onnx`);
    * the patches at the fitted corners (a grid ``tops x lefts``): two constant gathers;
    * the conditional autoencoder on all patches of the batch (:class:`PatchAutoencoder`);
    * overlap averaging: ``E_h @ patches @ E_w.T / count``, with ``E`` the 0/1 matrices that
      place the rows (columns) of each patch row (column) in the image;
    * upsize: ``U_h @ x_hat @ U_w.T`` (``INTER_LINEAR``), residual, ``clip(r * gain, 0, 1)``.

    ``down`` / ``up`` are ``None`` where the size does not change (Python copies the image).
    """

    def __init__(self, autoencoder, *, down, up, tops, lefts, patch_shape, working_shape,
                 residual, gain, uint8, signed=False):
        super().__init__()
        self.signed = bool(signed)
        ph, pw = (int(v) for v in patch_shape)
        hs, ws = (int(v) for v in working_shape)
        tops, lefts = np.asarray(tops, np.int64), np.asarray(lefts, np.int64)
        self.autoencoder = PatchAutoencoder(autoencoder)
        self.uint8 = bool(uint8)
        self.residual = str(residual)
        self.gain = None if gain is None else float(np.float32(gain))
        self.grid = (len(tops), len(lefts))
        self.patch_shape = (ph, pw)
        self.resize_down = down is not None
        self.resize_up = up is not None
        for name, pair in (("down", down), ("up", up)):
            if pair is not None:
                self.register_buffer(f"{name}_h", torch.as_tensor(np.asarray(pair[0], np.float32)))
                self.register_buffer(f"{name}_wt",
                                     torch.as_tensor(np.asarray(pair[1], np.float32).T.copy()))
        rows = (tops[:, None] + np.arange(ph)).ravel()  # (A * ph,)
        cols = (lefts[:, None] + np.arange(pw)).ravel()  # (B * pw,)
        self.register_buffer("rows", torch.as_tensor(rows))
        self.register_buffer("cols", torch.as_tensor(cols))
        place_h = (rows[None, :] == np.arange(hs)[:, None]).astype(np.float32)  # (Hs, A*ph)
        place_w = (cols[None, :] == np.arange(ws)[:, None]).astype(np.float32)  # (Ws, B*pw)
        count = place_h.sum(1)[:, None] * place_w.sum(1)[None, :]  # patches over each pixel
        self.register_buffer("place_h", torch.as_tensor(place_h))
        self.register_buffer("place_wt", torch.as_tensor(place_w.T.copy()))
        self.register_buffer("count", torch.as_tensor(count.astype(np.float32)))

    def forward(self, images):
        x = images.to(torch.float32) / 255.0 if self.uint8 else images
        colour = x.ndim == 4
        x = x.permute(0, 3, 1, 2) if colour else x.unsqueeze(1)  # (n, C, H, W)
        c = int(x.shape[1])
        (a, b), (ph, pw) = self.grid, self.patch_shape
        small = torch.matmul(torch.matmul(self.down_h, x), self.down_wt) if self.resize_down else x
        patches = small.index_select(2, self.rows).index_select(3, self.cols)  # (n, C, A ph, B pw)
        patches = patches.reshape(-1, c, a, ph, b, pw).permute(0, 2, 4, 1, 3, 5)
        recon = self.autoencoder(patches.reshape(-1, c, ph, pw))  # (n a b, C, ph, pw)
        recon = recon.reshape(-1, a, b, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
        recon = recon.reshape(-1, c, a * ph, b * pw)
        small_hat = torch.matmul(torch.matmul(self.place_h, recon), self.place_wt) / self.count
        x_hat = (torch.matmul(torch.matmul(self.up_h, small_hat), self.up_wt)
                 if self.resize_up else small_hat)
        out = _residual(x, x_hat, self.residual, self.signed)
        if self.gain is not None:
            out = torch.clamp(out * self.gain, -1.0 if self.signed else 0.0, 1.0)
        return out.permute(0, 2, 3, 1) if colour else out.squeeze(1)


def _residual(x, x_hat, kind, signed=False):
    """``skcpcae.residuals._cpcae.residual_map`` in float32 torch operations."""
    if signed and kind == "relative":
        return torch.clamp((x - x_hat) / torch.clamp(x_hat, min=0.05), -1.0, 1.0)
    if signed and kind == "absolute":
        return x - x_hat
    if kind == "squared":
        return (x - x_hat) * (x - x_hat)
    if kind == "relative":
        return torch.clamp(torch.abs(x - x_hat) / torch.clamp(x_hat, min=0.05), 0.0, 1.0)
    if kind == "log":
        out = torch.abs(torch.log(torch.clamp(x, min=0.0) + 0.02) - torch.log(x_hat + 0.02)) / 2
        return torch.clamp(out, 0.0, 1.0)
    if kind == "absolute":
        return torch.abs(x - x_hat)
    raise ValueError(f"unknown residual {kind!r}")


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
        return torch.cat([_pool(m, self.pooling) for m in maps], dim=1)


def _pool(x, pooling):
    """``pool_features``, with the ``"parallel_cascade"`` head in exportable operations."""
    if pooling != "parallel_cascade":
        return pool_features(x, pooling)
    # as parallel_cascade_pool (grid_size=2), whose adaptive max pooling the exporter only
    # takes when the map's side is a multiple of 4 (ELPV's 300-pixel cells give 38 x 38)
    local_max = adaptive_max_pool(x, (4, 4))
    cascade = F.avg_pool2d(local_max, kernel_size=2, stride=2)
    return torch.cat([global_max_pool(x), global_avg_pool(x), cascade.flatten(1)], dim=1)


def _bins(length, n_out):
    """``adaptive_max_pool2d``'s cells along one axis: ``[floor(i L / n), ceil((i+1) L / n))``."""
    return [((i * length) // n_out, -((-(i + 1) * length) // n_out)) for i in range(n_out)]


def adaptive_max_pool(x, output_size):
    """``F.adaptive_max_pool2d(x, output_size)`` as slices and maxima (exact, any map size).

    The map's spatial size is read when the graph is traced: it is fixed by the fitted input
    size. Each output cell is the maximum over the same window torch uses.
    """
    height, width = int(x.shape[2]), int(x.shape[3])
    rows = []
    for r0, r1 in _bins(height, int(output_size[0])):
        band = x[:, :, r0:r1]
        rows.append(torch.stack([torch.amax(band[:, :, :, c0:c1], dim=(2, 3))
                                 for c0, c1 in _bins(width, int(output_size[1]))], dim=-1))
    return torch.stack(rows, dim=-2)


class Standardize(nn.Module):
    """A fitted ``StandardScaler`` on float32 rows, with scikit-learn's roundings.

    scikit-learn >= 1.8 casts ``mean_`` and ``scale_`` to the table's float32 and subtracts
    and divides in float32 (``X -= xp.astype(mean_, X.dtype)``); earlier releases subtract
    the float64 ``mean_`` from the float32 table in place (computed in float64, stored in
    float32), then divide by ``scale_`` the same way. ``float64_roundings`` picks the second
    (:func:`._onnx._scaler_roundings` finds which one the fitted scaler does).
    """

    def __init__(self, mean, scale, *, float64_roundings=False, float64=False):
        super().__init__()
        self.has_mean = mean is not None
        self.has_scale = scale is not None
        self.float64_roundings = bool(float64_roundings)
        self.float64 = bool(float64)  # float64 rows (a FeatureUnion with a float64 column)
        dtype = np.float64 if self.float64_roundings or self.float64 else np.float32
        if self.has_mean:
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype)))
        if self.has_scale:
            self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype)))

    def forward(self, x):
        if self.float64:
            x = x.to(torch.float64)
        elif self.float64_roundings:
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

    ``n_retrieve`` (retrieval) masks every candidate of a training map that is not among the
    ``n_retrieve`` nearest to the query by mean patch feature; ``global_weight`` fuses the
    standardised patch score with the standardised global score (mean distance of the mean
    patch feature to its ``n_neighbors`` nearest training ones), as ``PatchKNNScorer`` does;
    ``position_center`` / ``position_scale`` (``position_norm``) standardise each patch
    distance by its position's statistics before the image score and the map.
    """

    def __init__(self, memory, *, n_neighbors, radius, top_k, global_features=None,
                 n_retrieve=None, global_weight=0.0, score_center=(0.0, 0.0),
                 score_scale=(1.0, 1.0), position_center=None, position_scale=None):
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
        self.n_maps, self.n_offsets = n, len(offsets)
        self.retrieve = n_retrieve is not None and int(n_retrieve) < n
        self.n_retrieve = int(n_retrieve) if self.retrieve else n
        self.global_weight = float(global_weight)
        self.global_k = max(1, min(int(n_neighbors), n))
        if self.retrieve or self.global_weight > 0:
            g = np.asarray(global_features, np.float32)
            self.register_buffer("global_features", torch.from_numpy(g))  # (n, d)
            self.center = [float(c) for c in score_center]
            self.scale = [float(c) for c in score_scale]
        self.position_norm = position_center is not None
        if self.position_norm:
            self.register_buffer("position_center", torch.from_numpy(
                np.asarray(position_center, np.float32).reshape(1, n_pos)))
            self.register_buffer("position_scale", torch.from_numpy(
                np.asarray(position_scale, np.float32).reshape(1, n_pos)))

    def forward(self, maps):
        h, w = self.grid
        d = self.n_features
        q = maps.permute(2, 3, 0, 1).reshape(h * w, -1, d)  # (P, m, d)
        # (P, N, m): the bank stays as stored, the (small) queries are transposed
        d2 = self.bank_sq - 2.0 * torch.matmul(self.bank, q.transpose(1, 2))
        if self.masked:
            d2 = d2.masked_fill(self.invalid, float("inf"))
        if self.retrieve or self.global_weight > 0:
            g = maps.to(torch.float64).mean(dim=(2, 3)).to(torch.float32)  # (m, d)
            diff_g = g.unsqueeze(1) - self.global_features.unsqueeze(0)
            g2 = (diff_g * diff_g).sum(-1)  # (m, n)
        if self.retrieve:
            # the n_retrieve nearest training maps of each query; the others are masked out
            # for every offset (candidate o * n + b belongs to map b)
            kth = torch.topk(g2, self.n_retrieve, dim=1, largest=False).values[:, -1:]
            far = (g2 > kth).repeat(1, self.n_offsets)  # (m, N)
            d2 = d2.masked_fill(far.transpose(0, 1).unsqueeze(0), float("inf"))
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
        if self.position_norm:
            patch = (patch - self.position_center) / self.position_scale
        worst = torch.topk(patch.to(torch.float64), self.top_k, dim=1).values
        anomaly = worst.mean(dim=1)
        if self.global_weight > 0:
            near = torch.topk(g2, self.global_k, dim=1, largest=False).values
            glob = near.to(torch.float64).sqrt().mean(dim=1)
            wg = self.global_weight
            anomaly = ((1 - wg) * (anomaly - self.center[0]) / self.scale[0]
                       + wg * (glob - self.center[1]) / self.scale[1])
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


def _signed_part(x, polarity):
    """``skcpcae.residuals._maps._part``: the part of a signed map that ``polarity`` keeps."""
    if polarity == "dark":
        return torch.clamp(-x, min=0.0)
    if polarity == "bright":
        return torch.clamp(x, min=0.0)
    return torch.abs(x)


class ResidualPeakScore(nn.Module):
    """``ResidualPeak.transform``: signed maps ``(n, H, W[, C])`` -> peaks ``(n,)``.

    The Gaussian smoothing is ``G_h @ part @ G_w.T``, with ``G`` scipy's
    ``gaussian_filter1d`` read off the identity (its weights and its ``reflect`` border, in
    :mod:`._onnx`); then ``(part - mean_) / scale_`` and the largest value of each map.
    """

    def __init__(self, mean, scale, *, polarity, smooth_h=None, smooth_w=None):
        super().__init__()
        self.polarity = str(polarity)
        self.smooth = smooth_h is not None
        mean, scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        if mean.ndim == 3:  # (H, W, C) -> (C, H, W), the layout of the maps below
            mean, scale = mean.transpose(2, 0, 1), scale.transpose(2, 0, 1)
        else:
            mean, scale = mean[None], scale[None]
        self.register_buffer("mean", torch.as_tensor(mean.copy()))
        self.register_buffer("scale", torch.as_tensor(scale.copy()))
        if self.smooth:
            self.register_buffer("smooth_h", torch.as_tensor(np.asarray(smooth_h, np.float32)))
            self.register_buffer("smooth_wt", torch.as_tensor(
                np.asarray(smooth_w, np.float32).T.copy()))

    def forward(self, signed):
        x = signed.permute(0, 3, 1, 2) if signed.ndim == 4 else signed.unsqueeze(1)
        part = _signed_part(x, self.polarity)
        if self.smooth:
            part = torch.matmul(torch.matmul(self.smooth_h, part), self.smooth_wt)
        z = (part - self.mean) / self.scale
        return z.reshape(z.shape[0], -1).amax(dim=1)


class FusedKNN(nn.Module):
    """``FusedKNNScorer``: the k-NN score of the leading columns fused with the last ones.

    ``(1 - weight) * (knn - center[0]) / scale[0] + weight * mean((scores - center[1:]) /
    scale[1:])``, in float64.
    """

    def __init__(self, bank, *, n_neighbors, n_scores, weight, center, scale):
        super().__init__()
        self.knn = MeanSquaredKNN(bank, n_neighbors=n_neighbors)
        self.n_scores = int(n_scores)
        self.weight = float(weight)
        self.register_buffer("center", torch.as_tensor(np.asarray(center, np.float64)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float64)))

    def forward(self, x):
        x = x.to(torch.float64)
        d = x.shape[1] - self.n_scores
        knn, _ = self.knn(x[:, :d])
        z_knn = (knn - self.center[0]) / self.scale[0]
        z_scores = ((x[:, d:] - self.center[1:]) / self.scale[1:]).mean(dim=1)
        return (1.0 - self.weight) * z_knn + self.weight * z_scores, None


class ExportedPipeline(nn.Module):
    """The whole chain: images -> ``(anomaly_score, decision[, anomaly_map])``.

    With a ``residual`` module (a CPCAE step first), the embedder sees its residual maps and,
    unless the scorer makes its own map, the residual map (averaged over channels, as
    ``skcpcae.anomaly_maps`` gives it) is the ``anomaly_map`` output.
    """

    def __init__(self, preprocess, embed, tabular, scorer, threshold, residual=None,
                 peak=None, exposure=None):
        super().__init__()
        self.residual = residual
        self.peak = peak  # a ResidualPeakScore on the signed residual map
        # (polarity, gain) of the ResidualExposure between the signed map and the embedder
        self.exposure = None if exposure is None else (
            str(exposure[0]), None if exposure[1] is None else float(np.float32(exposure[1])))
        self.preprocess = preprocess
        self.embed = embed
        self.tabular = nn.ModuleList(tabular)
        self.scorer = scorer
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float64))

    def forward(self, images):
        residual_map, peak = None, None
        if self.residual is not None:
            images = self.residual(images)
            if self.peak is not None:
                peak = self.peak(images)
            if self.exposure is not None:  # a signed map: the map shows its size
                residual_map = torch.abs(images)
                polarity, gain = self.exposure
                images = _signed_part(images, polarity)
                if gain is not None:  # ResidualExposure(gain=None) neither scales nor clips
                    images = torch.clamp(images * gain, 0.0, 1.0)
            else:
                residual_map = images
            if residual_map.ndim == 4:
                residual_map = residual_map.mean(dim=3)
        x = self.embed(self.preprocess(images))
        if peak is not None:  # the FeatureUnion's columns: embedding, then the peak
            x = torch.cat([x.to(torch.float64), peak.to(torch.float64).unsqueeze(1)], dim=1)
        for step in self.tabular:
            x = step(x)
        anomaly, amap = self.scorer(x)
        if amap is None:
            amap = residual_map
        # predict: decision_function = threshold - anomaly >= 0 -> +1 (NaN -> -1)
        decision = torch.where(anomaly <= self.threshold, torch.ones_like(anomaly),
                               -torch.ones_like(anomaly)).to(torch.int64)
        if amap is None:
            return anomaly, decision
        return anomaly, decision, amap
