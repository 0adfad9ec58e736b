# SPDX-License-Identifier: BSD-3-Clause
"""The conditional patch-based convolutional autoencoder as a plain torch module.

torch only: no scikit-learn, no skorch. The estimator in ``_cpcae.py`` trains it through skorch.
"""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConditionalPatchAE"]


def _encoded_size(size, depth):
    """Spatial sizes after each stride-2, kernel-3, padding-1 convolution: ceil(s / 2)."""
    sizes = [int(size)]
    for _ in range(depth):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class ConditionalPatchAE(nn.Module):
    """Autoencoder of image patches conditioned on the patch's position in the grid.

    Encoder: ``len(channels)`` convolutions (kernel 3, stride 2, padding 1, ReLU; no pooling)
    → flatten → concatenate the one-hot patch index → linear layer → latent code of size
    ``latent_dim`` (no activation; the training loss puts an L1 penalty on it).
    Decoder: concatenate the latent code with the one-hot index → linear layer (ReLU) →
    reshape → ``len(channels)`` transposed convolutions (kernel 3, stride 2, padding 1; ReLU
    between, sigmoid at the end) back to the patch size, for inputs in [0, 1].

    The bottleneck is dense, not convolutional: a fully convolutional autoencoder reconstructs
    defects as well as the normal texture (Saeedi & Giusti, 2023, Sec. 3.2).

    Any patch size works: each stride-2 convolution maps a side ``s`` to ``ceil(s / 2)`` and
    the matching transposed convolution's ``output_padding`` restores ``s`` exactly.

    Parameters
    ----------
    patch_shape : tuple of (int, int), default=(32, 32)
        Height and width of the patches.
    n_patches : int, default=1
        Number of grid positions (length of the one-hot condition).
    in_channels : int, default=1
        Channels of a patch (1 for grayscale, 3 for RGB).
    channels : tuple of int, default=(16, 32, 64)
        Output channels of the encoder's convolutions; the decoder mirrors them. The depth is
        ``len(channels)``.
    latent_dim : int, default=64
        Size of the latent code.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.residuals._modules import ConditionalPatchAE
    >>> ae = ConditionalPatchAE((32, 32), n_patches=9)
    >>> recon, z = ae(torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 8]))
    >>> tuple(recon.shape), tuple(z.shape)
    ((4, 1, 32, 32), (4, 64))
    """

    def __init__(
        self, patch_shape=(32, 32), n_patches=1, in_channels=1, channels=(16, 32, 64),
        latent_dim=64,
    ):
        super().__init__()
        self.patch_shape = (int(patch_shape[0]), int(patch_shape[1]))
        self.n_patches = int(n_patches)
        self.in_channels = int(in_channels)
        self.channels = tuple(int(c) for c in channels)
        self.latent_dim = int(latent_dim)
        depth = len(self.channels)
        heights = _encoded_size(self.patch_shape[0], depth)
        widths = _encoded_size(self.patch_shape[1], depth)
        self._code_shape = (self.channels[-1], heights[-1], widths[-1])
        n_code = self.channels[-1] * heights[-1] * widths[-1]

        layers, c_in = [], self.in_channels
        for c_out in self.channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            c_in = c_out
        self.encoder_conv = nn.Sequential(*layers)
        self.encoder_dense = nn.Linear(n_code + self.n_patches, self.latent_dim)

        self.decoder_dense = nn.Linear(self.latent_dim + self.n_patches, n_code)
        layers = []
        outs = list(reversed(self.channels[:-1])) + [self.in_channels]
        c_in = self.channels[-1]
        for i, c_out in enumerate(outs):
            level = depth - 1 - i  # from size heights[level + 1] back to heights[level]
            pad_h = heights[level] - (2 * heights[level + 1] - 1)
            pad_w = widths[level] - (2 * widths[level + 1] - 1)
            layers.append(
                nn.ConvTranspose2d(
                    c_in, c_out, 3, stride=2, padding=1, output_padding=(pad_h, pad_w)
                )
            )
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.decoder_conv = nn.Sequential(*layers)

    def _condition(self, index, ref):
        return F.one_hot(index.long(), self.n_patches).to(ref.dtype)

    def encode(self, patches, index):
        """Latent codes ``(n, latent_dim)`` of patches ``(n, C, h, w)`` at grid ``index``."""
        code = self.encoder_conv(patches).flatten(1)
        return self.encoder_dense(torch.cat([code, self._condition(index, code)], dim=1))

    def decode(self, latent, index):
        """Patches ``(n, C, h, w)`` in [0, 1] from latent codes at grid ``index``."""
        hidden = self.decoder_dense(torch.cat([latent, self._condition(index, latent)], dim=1))
        hidden = F.relu(hidden).view(-1, *self._code_shape)
        return torch.sigmoid(self.decoder_conv(hidden))

    def forward(self, patches, index):
        """Return ``(reconstruction, latent)`` for patches ``(n, C, h, w)`` at grid ``index``."""
        latent = self.encode(patches, index)
        return self.decode(latent, index), latent
