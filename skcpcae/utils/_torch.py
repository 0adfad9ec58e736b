# SPDX-License-Identifier: BSD-3-Clause
"""torch helpers: device resolution, local seeding, conversions."""

import contextlib

import numpy as np
from sklearn.utils import check_random_state


def resolve_device(device):
    """Resolve ``"auto"`` to ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='cpu' or device='auto'."
        )
    return device


def seed_from(random_state):
    """A 32-bit integer seed drawn from a ``random_state`` parameter."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@contextlib.contextmanager
def torch_seeded(seed, device="cpu"):
    """Seed torch locally: the global RNG state is restored on exit."""
    import torch

    devices = []
    if str(device).startswith("cuda") and torch.cuda.is_available():
        devices = [torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def to_numpy(tensor):
    return tensor.detach().cpu().numpy()


def images_to_tensor(images):
    """``(n, H, W[, C])`` float32 numpy → ``(n, C, H, W)`` torch tensor (CPU)."""
    import torch

    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    else:
        arr = np.moveaxis(arr, -1, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def tensor_to_images(tensor, ndim):
    """Inverse of :func:`images_to_tensor`; ``ndim`` is the ndim of the original batch."""
    arr = to_numpy(tensor).astype(np.float32, copy=False)
    if ndim == 3:
        return arr[:, 0]
    return np.ascontiguousarray(np.moveaxis(arr, 1, -1))
