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


def weights_to_numpy(module):
    """A module's state dict as numpy arrays: what the estimators pickle instead of torch
    objects (safe for skops, and free of CUDA tensors)."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_numpy_weights(module, weights):
    """Fill ``module`` from :func:`weights_to_numpy` output (copies: arrays may be read-only)."""
    import torch

    module.load_state_dict({k: torch.tensor(np.array(v)) for k, v in weights.items()})
    return module


def check_weight_shapes(build, weights, owner):
    """Refuse stored ``weights`` that do not fit the network ``build()`` makes, allocating
    nothing: the network is built on torch's ``meta`` device first.

    Estimators rebuild their networks from their own (unpickled) parameters before filling
    them with the stored weights; without this check, a model file with edited parameters
    (a huge ``n_patches_``, another backbone name) could make loading allocate gigabytes
    before the weights are found not to fit.
    """
    import torch

    try:
        with torch.device("meta"):
            skeleton = build()
    except Exception as exc:  # parameters that describe no network at all
        raise ValueError(
            f"The model file's {type(owner).__name__} describes no valid network ({exc}); "
            "the file is damaged or was edited."
        ) from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = {k: tuple(np.shape(v)) for k, v in weights.items()}
    if expected != stored:
        wrong = sorted(set(expected) ^ set(stored))
        wrong += sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
        detail = ", ".join(
            f"{k}: network {expected.get(k, 'none')} vs stored {stored.get(k, 'none')}"
            for k in wrong[:3]
        )
        raise ValueError(
            f"The model file's {type(owner).__name__} holds weights that do not fit the "
            f"network its parameters describe ({detail}); the file is damaged or was "
            "edited, and nothing was allocated for it."
        )


def device_after_unpickling(estimator, device):
    """The device a fitted estimator runs on after loading: the one place that decides it.

    Every estimator that holds torch weights (``CPCAEResidualMap``, the embedders,
    ``PatchCoreDetector``) calls this from ``__setstate__`` with the device it was fitted
    on, so a model fitted on a GPU behaves the same whichever estimator it is: on a machine
    with CUDA it goes back to that GPU (``"cuda"`` when its index is not present here); on a
    CPU-only machine it runs on ``"cpu"`` with one ``UserWarning`` naming the estimator and
    the device it was fitted on.

    Parameters
    ----------
    estimator : estimator
        The estimator being unpickled (named in the warning).
    device : str or torch.device
        The device it was fitted on (``device_`` or the net's device).

    Returns
    -------
    device : str
        The device to run on here.
    """
    import warnings

    import torch

    device = str(device)
    if not device.startswith("cuda"):
        return device
    if not torch.cuda.is_available():
        warnings.warn(
            f"{type(estimator).__name__} was fitted on {device!r} but CUDA is not available "
            "here; it runs on 'cpu' instead.",
            UserWarning,
            stacklevel=3,
        )
        return "cpu"
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        return "cuda"
    return device
