# SPDX-License-Identifier: BSD-3-Clause
"""Residual maps of a conditional patch-based convolutional autoencoder (Sec. 3.2).

Imitates ``sklearn/preprocessing/_target_encoder.py`` for the cross-fitted ``fit_transform``
and skorch's ``net.py`` (``__getstate__``) for device handling when pickling.
"""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import LRScheduler
from skorch.dataset import Dataset
from skorch.utils import to_tensor
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.utils.data import default_collate

from .._base import (
    ImageOutputMixin,
    image_tags,
    iter_batches,
    restore_layout,
    validate_images,
    warn_outside_unit_range,
)
from ..utils._cv import cross_fit_splits, is_int_cv
from ..utils._deprecation import init_default, rename_in_state, resolve_renamed
from ..utils._torch import (
    check_weight_shapes,
    device_after_unpickling,
    load_numpy_weights,
    resolve_device,
    seed_from,
    torch_seeded,
    weights_to_numpy,
)
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context
from ._modules import ConditionalPatchAE
from ._patches import downsize, extract_patches, patch_grid, reassemble_patches, upsize

__all__ = ["CPCAEResidualMap"]

# Patches per forward pass at inference (bounds memory; independent of the training batch).
_INFER_PATCHES = 2048
# gain="auto": this quantile of the training residuals maps to 1, read on at most this many
# pixels per image
_GAIN_QUANTILE = 0.99
_GAIN_SAMPLE = 4096


class _SparseAENet(NeuralNet):
    """skorch net whose loss is L2 reconstruction + ``sparsity`` * mean |latent code|.

    The module returns ``(reconstruction, latent)``; the target is the input patch itself,
    so the net is fitted with ``y=None``.
    """

    def __init__(self, *args, sparsity=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.sparsity = sparsity

    def get_loss(self, y_pred, y_true, X=None, training=False):
        recon, latent = y_pred
        target = to_tensor(X["patches"], device=self.device)
        loss = self.criterion_(recon, target)
        if self.sparsity:
            loss = loss + self.sparsity * latent.abs().mean()
        return loss


class _PatchBatches(Dataset):
    """skorch's dataset, read a whole mini-batch at a time.

    The data loader otherwise reads one patch per call and stacks them: a tenth or more of the
    training time on small patches. The batches hold the same patches, in the same order (the
    loader's sampler and random draws are unchanged), so training is the same bit for bit.
    """

    def __getitems__(self, indices):
        rows = np.asarray(indices, dtype=np.int64)
        batch = {key: torch.from_numpy(values[rows]) for key, values in self.X.items()}
        return batch, torch.zeros(len(rows), 1)  # the target is the input (y=None)


def _collate_batch(batch):
    """The loader's ``collate_fn``: a batch read whole passes as is; single rows are stacked.

    Single rows come from a loader that does not call ``__getitems__``.
    """
    if isinstance(batch, tuple):
        return batch
    return default_collate(batch)


class CPCAEResidualMap(ImageOutputMixin, TransformerMixin, BaseEstimator):
    """Residual maps of a conditional patch-based convolutional autoencoder (CPCAE).

    Implements Sec. 3.2 of Saeedi & Giusti (2023). Each image is downsized to
    ``input_size``, cut into overlapping square patches (stride half the patch size by
    default) and every patch is reconstructed by an autoencoder that is *conditioned on the
    patch's position*: the one-hot index of the patch in the grid enters the encoder (before
    the dense bottleneck) and the decoder (with the latent code), so a patch "remembers where
    it came from". The reconstructed patches are put back (overlaps averaged), upsized to the
    input size with bilinear interpolation, and :meth:`transform` returns the per-pixel
    residual (by default ``|x - x_hat|``, scaled by ``gain_`` and clipped to [0, 1]) at the **input** size, one channel per input channel, as float32.

    The autoencoder (``ConditionalPatchAE``, a torch module) has a strided
    convolutional encoder without pooling, a dense bottleneck and strided transposed
    convolutions; it is not fully convolutional, which would copy defects through. It is
    trained with skorch (a :class:`skorch.NeuralNet` stored in ``net_``) and Adam on all
    patches of all training images, with the loss
    ``mean((x - x_hat)^2) + sparsity * mean(|z|)`` over the bottleneck code ``z`` (eq. 4).

    **Cross-fitting.** The residual maps of the images the autoencoder was trained on are
    optimistically small. With ``cv=k``, :meth:`fit_transform` returns *out-of-fold* residual
    maps of the training images (``k`` autoencoders, each trained on ``k - 1`` folds), while
    :meth:`transform` uses the autoencoder fitted on all images, as
    :class:`~sklearn.preprocessing.TargetEncoder` does. Therefore, with ``cv`` set,
    ``fit(X).transform(X)`` differs from ``fit_transform(X)``; with ``cv=None`` they agree.

    Parameters
    ----------
    input_size : int, tuple of (int, int) or None, default=128
        Size ``(height, width)`` the images are downsized to before cutting patches (the
        autoencoder's input size; the name every estimator uses for the size it resizes
        images to); an int gives a square. Images are never enlarged: along an axis where the
        input is smaller, the input size is kept. ``None`` keeps the input size.
    patch_size : int, default=32
        Side of the square patches, in pixels of the downsized image. Along an axis where the
        downsized image is smaller than ``patch_size``, the patch is clamped to the image
        (so one-pixel-high images give ``1 x patch_size`` patches); ``patch_shape_`` holds the
        size used.
    stride : int or None, default=None
        Step between neighbouring patches; ``None`` means half the (clamped) patch size. It is
        clamped to the patch size so that every pixel is covered. The last row and column of
        patches are flush with the border, so no pixel is dropped.
    latent_dim : int, default=64
        Size of the latent code.
    channels : tuple of int, default=(16, 32, 64)
        Output channels of the encoder's stride-2 convolutions (the decoder mirrors them);
        the depth is ``len(channels)``.
    sparsity : float, default=1e-4
        Weight ``lambda`` of the L1 penalty on the latent code.
    lr : float, default=1e-3
        Learning rate of Adam.
    max_epochs : int, default=20
        Number of passes over all training patches.
    lr_schedule : {"constant", "cosine"}, default="constant"
        Learning rate over the epochs: constant, or cosine annealing from ``lr`` to 0 over
        ``max_epochs`` (stepped once per epoch).
    batch_size : int, default=128
        Patches per training step.
    cv : int, cross-validation generator, iterable or None, default=None
        Folds of the cross-fitted :meth:`fit_transform`, as everywhere in skcpcae
        (``docs/conventions.md``): an int ``k`` >= 2 is ``KFold(k, shuffle=True)`` seeded from
        ``random_state``; a splitter or an iterable of ``(train, test)`` index arrays is used
        as given, and its test folds must partition the images; ``None`` disables
        cross-fitting. The default is ``None``, unlike the threshold's ``cv="auto"``
        (:class:`~skcpcae.outlier.KDEThresholdClassifier`), because each fold trains one more
        autoencoder (``k`` + 1 trainings in all): cross-fitting is asked for where a later
        step learns from the training residuals (the CPCAE presets set ``cv=5``).
    residual : {"absolute", "squared", "relative", "log"}, default="absolute"
        Per-pixel residual: ``|x - x_hat|``, ``(x - x_hat) ** 2``, the *relative*
        ``|x - x_hat| / max(x_hat, 0.05)`` or the log-ratio ``|log(x + 0.02) - log(x_hat +
        0.02)| / 2``, the last two clipped to [0, 1]. The relative and log residuals are in
        units of the expected intensity, so a defect in a dark region of a dark part weighs
        as much as one in a bright region (see ``docs/benchmarks.md``, "What the CPCAE needs
        on ELPV"). The relative residual ranked first on ELPV and is the CPCAE presets'
        choice; the default stays the paper's plain difference, because on parts with a
        dark background (``x_hat`` near 0) the relative residual amplifies noise.
    gain : "auto", float or None, default="auto"
        Factor the residual map is multiplied by before it is clipped to [0, 1]. A residual
        map is mostly near zero (a nearly black image): a pretrained CNN that embeds it next
        (:class:`~skcpcae.embedding.DeepPoolEmbedder`) then sees almost no contrast.
        ``"auto"`` fits the factor so that the 99th percentile of the training images'
        residuals maps to 1, i.e. the map is exposed as a natural image is (``gain_``); a
        float is used as given; ``None`` leaves the residual as it is (no clipping beyond
        the residual's own). The factor is the same for every image, so the order of pixels
        and images is kept (up to the clipped top 1 %). The default, ``"auto"``, ranked
        first on ELPV's validation cells ("Exposing the residual map to the CNN" in
        ``docs/benchmarks.md``); use ``None`` for the residual in its own units.
    signed : bool, default=False
        Keep the residual's sign: ``x - x_hat`` for ``residual="absolute"``, ``(x - x_hat) /
        max(x_hat, 0.05)`` clipped to [-1, 1] for ``"relative"`` (other residuals have no
        sign and are refused), negative where the image is darker than its reconstruction.
        ``gain`` then scales ``|residual|`` (clipped to [-1, 1]). A signed map is not an
        image for a CNN: the CPCAE presets split it downstream into the exposed
        ``|residual|`` for the CNN (:class:`ResidualExposure`) and its dark part for a peak
        score (:class:`ResidualPeak`).
    device : str, default="auto"
        The torch device; ``"auto"`` uses CUDA when available, else the CPU. The device used is
        stored in ``device_``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling of the patches and the folds. torch is
        seeded locally (the global torch RNG is restored afterwards); on the CPU, a fixed
        seed makes training reproducible bit for bit.
    verbose : int, default=0
        With a positive value, skorch prints one line per epoch (epoch, training loss, time).
    image_size : int, tuple of (int, int) or None, default="deprecated"
        Former name of ``input_size``.

        .. deprecated:: 0.1
           ``image_size`` is renamed ``input_size`` and will be removed in 0.2.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted net on all training images; its ``module_`` is the autoencoder and its
        ``history`` the training log.
    device_ : str
        Device the autoencoder runs on.
    working_shape_ : tuple of (int, int)
        Size of the downsized images.
    patch_shape_ : tuple of (int, int)
        Patch size used (``patch_size`` clamped to ``working_shape_``).
    stride_ : tuple of (int, int)
        Stride used along height and width.
    patch_corners_ : ndarray of shape (n_patches, 2)
        ``(top, left)`` corners of the patches in the downsized image, in grid-index order.
    n_patches_ : int
        Number of patches per image (length of the one-hot condition).
    image_shape_ : tuple of int
        ``(height, width)`` or ``(height, width, channels)`` of the training images.
    n_features_in_ : int
        Number of values per image seen during fit.
    gain_ : float
        Factor applied to the residual maps before clipping (1.0 when ``gain=None``).

    See Also
    --------
    sklearn.preprocessing.TargetEncoder : the cross-fitting scheme used by ``cv``.

    Notes
    -----
    Inputs are floats in [0, 1] (``uint8`` and ``uint16`` images are scaled), since the
    decoder ends with a sigmoid; :meth:`fit` warns about values outside [0, 1], which are
    accepted (their residual includes the distance to [0, 1]). 2-D input ``(n_samples,
    n_features)`` is read as one-pixel-high images and a table is returned. Only the default
    (numpy) output container is supported.

    Pickles are device independent: a model fitted on CUDA is pickled with its tensors on the
    CPU and loads on a machine without a GPU (``device_`` is then ``"cpu"``, with a
    ``UserWarning``, as for every estimator holding torch weights); on a machine with CUDA it
    is moved back to the GPU it was fitted on.

    The width of the layers is not given in the paper; the defaults here are this project's
    choice, sized so that 300x300 images are processed quickly on a CPU.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.residuals import CPCAEResidualMap
    >>> X, _ = make_parts(6, size=(24, 24), random_state=0)
    >>> cpcae = CPCAEResidualMap(input_size=16, patch_size=8, channels=(4, 8),
    ...                          max_epochs=2, random_state=0).fit(X)
    >>> cpcae.working_shape_, cpcae.n_patches_
    ((16, 16), 9)
    >>> R = cpcae.transform(X)
    >>> R.shape, R.dtype.name
    ((6, 24, 24), 'float32')
    """

    _parameter_constraints: dict = {
        "input_size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list, None],
        "image_size": [
            Interval(numbers.Integral, 1, None, closed="left"), tuple, list, None,
            StrOptions({"deprecated"}),
        ],
        "patch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "stride": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "channels": [tuple, list],
        "sparsity": [Interval(numbers.Real, 0, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr_schedule": [StrOptions({"constant", "cosine"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "residual": [StrOptions({"absolute", "squared", "relative", "log"})],
        "gain": [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="neither"), None],
        "signed": ["boolean"],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        input_size=128,
        *,
        patch_size=32,
        stride=None,
        latent_dim=64,
        channels=(16, 32, 64),
        sparsity=1e-4,
        lr=1e-3,
        max_epochs=20,
        lr_schedule="constant",
        batch_size=128,
        cv=None,
        residual="absolute",
        gain="auto",
        signed=False,
        device="auto",
        random_state=None,
        verbose=0,
        image_size="deprecated",
    ):
        self.input_size = input_size
        self.patch_size = patch_size
        self.stride = stride
        self.latent_dim = latent_dim
        self.channels = channels
        self.sparsity = sparsity
        self.lr = lr
        self.max_epochs = max_epochs
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.cv = cv
        self.residual = residual
        self.gain = gain
        self.signed = signed
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.image_size = image_size

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on all patches of all images.

        With ``cv`` set, ``fit(X).transform(X)`` differs from ``fit_transform(X)``: use
        :meth:`fit_transform` to get out-of-fold residual maps of the training images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Normal images, floats in [0, 1].
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        images, _ = self._fit_setup(X)
        self.net_ = self._train(images, seed_from(check_random_state(self.random_state)))
        self.gain_ = self._fit_gain(images)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit on ``X`` and return residual maps of ``X``, out of fold when ``cv`` is set.

        With ``cv=k``, ``X`` is split into ``k`` shuffled folds; the residual maps of each
        fold come from an autoencoder trained on the other ``k - 1`` folds, so they are not
        optimistically small. The autoencoder kept in ``net_`` (used by :meth:`transform`) is
        trained on all of ``X``, the same as :meth:`fit` trains. Hence, with ``cv`` set,
        ``fit(X).transform(X)`` differs from ``fit_transform(X)``; with ``cv=None`` they agree.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Normal images, floats in [0, 1].
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        residuals : ndarray of the shape of ``X``, float32
            Residual maps at the input size.
        """
        images, was_2d = self._fit_setup(X)
        rng = check_random_state(self.random_state)
        net_seed = seed_from(rng)
        splits = None
        if self.cv is not None:  # the folds before any training (a bad cv fails at once)
            # an int: shuffled KFold seeded from random_state (utils/_cv.py, one rule for cv)
            fold_seed = seed_from(rng) if is_int_cv(self.cv) else None
            splits = cross_fit_splits(self.cv, images, random_state=fold_seed)
        self.net_ = self._train(images, net_seed)
        if splits is None:  # the training maps once: gain_ is read off them, then applied
            out = residual_map(images, self._reconstruct(self.net_, images), self.residual,
                               signed=self.signed)
            self.gain_ = self._fit_gain(images, out)
            return restore_layout(self._expose(out), was_2d)
        self.gain_ = self._fit_gain(images)
        out = np.empty_like(images)
        for train, test in splits:
            net = self._train(images[train], seed_from(rng))
            out[test] = self._residuals(net, images[test])
        return restore_layout(out, was_2d)

    def transform(self, X):
        """Residual maps of ``X`` from the autoencoder fitted on all training images.

        With ``cv`` set, ``fit(X).transform(X)`` differs from ``fit_transform(X)``, which
        returns out-of-fold residual maps of the training images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Images of the fitted shape, floats in [0, 1].

        Returns
        -------
        residuals : ndarray of the shape of ``X``, float32
            ``|x - x_hat|`` (or its square, see ``residual``) at the input size.
        """
        check_is_fitted(self)
        images, was_2d = validate_images(self, X, reset=False)
        _warn_out_of_range(self, images)
        return restore_layout(self._residuals(self.net_, images), was_2d)

    def reconstruct(self, X):
        """Reconstruct ``X`` at the input size (patches reassembled, then upsized).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or \
                (n_samples, n_features)
            Images of the fitted shape, floats in [0, 1].

        Returns
        -------
        reconstructions : ndarray of the shape of ``X``, float32
            Values in [0, 1].
        """
        check_is_fitted(self)
        images, was_2d = validate_images(self, X, reset=False)
        _warn_out_of_range(self, images)
        return restore_layout(self._reconstruct(self.net_, images), was_2d)

    def __sklearn_tags__(self):
        return image_tags(super().__sklearn_tags__())  # image input, float32 output

    def __getstate__(self):
        # The fitted net is stored as its module's weights in numpy arrays: the pickle then
        # holds no torch object (so skops can store it safely, and a net fitted on a GPU
        # loads on a CPU-only machine); __setstate__ rebuilds the net from the estimator's
        # own parameters. The optimizer state and training history are not kept.
        state = dict(super().__getstate__())  # may be self.__dict__ itself: copy it
        net = state.pop("net_", None)
        if net is not None:
            state["_net_weights"] = weights_to_numpy(net.module_)
            state["_fitted_device"] = str(net.device)
            state["device_"] = "cpu"
        return state

    def __setstate__(self, state):
        state = dict(rename_in_state(state, "image_size", "input_size"))  # files before 0.2
        # files written before ``gain`` existed: their maps were never scaled
        state.setdefault("gain", None)
        state.setdefault("signed", False)  # files written before ``signed`` existed
        if "patch_corners_" in state:
            state.setdefault("gain_", 1.0)
        weights = state.pop("_net_weights", None)
        fitted_device = state.pop("_fitted_device", None)
        super().__setstate__(state)
        if weights is None:
            return
        # one rule for every torch estimator: back to its GPU, or CPU with a warning
        self.device_ = device_after_unpickling(self, fitted_device or "cpu")
        net = self._make_net()
        # the network's size comes from parameters in the file: check it against the stored
        # weights before allocating it, and the patch count against the stored patch grid
        check_weight_shapes(lambda: net.module(**net.get_params_for("module")), weights, self)
        if np.shape(self.patch_corners_) != (self.n_patches_, 2):
            raise ValueError(
                f"The model file's CPCAEResidualMap has n_patches_={self.n_patches_!r} but "
                f"a patch grid of shape {np.shape(self.patch_corners_)}; the file is damaged "
                "or was edited."
            )
        with torch.random.fork_rng(devices=[]):  # initialize() draws random weights
            net.initialize()
        load_numpy_weights(net.module_, weights)
        net.module_.eval()
        self.net_ = net

    # ------------------------------------------------------------------ private helpers

    def _fit_setup(self, X):
        """Validate ``X`` and the parameters; set the patch geometry."""
        if self.signed and self.residual not in ("absolute", "relative"):
            raise ValueError(
                f"signed=True needs residual='absolute' or 'relative' (a residual with a "
                f"sign); got residual={self.residual!r}."
            )
        images, was_2d = validate_images(self, X, reset=True)
        _warn_out_of_range(self, images)
        channels = tuple(self.channels)
        if not channels or not all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) and c >= 1
            for c in channels
        ):
            raise ValueError(
                f"channels must be a non-empty sequence of positive ints, got {self.channels!r}."
            )
        height, width = self.image_shape_[:2]
        # warn_deprecated < resolve_renamed < _fit_setup < fit < _fit_context < caller
        input_size = resolve_renamed(self, "image_size", "input_size",
                                     default=init_default(self, "input_size"), stacklevel=6)
        if input_size is None:
            self.working_shape_ = (height, width)
        else:
            size = input_size
            if isinstance(size, numbers.Integral):
                size = (size, size)
            size = tuple(size)
            if len(size) != 2 or not all(
                isinstance(s, numbers.Integral) and s >= 1 for s in size
            ):
                raise ValueError(
                    "input_size must be an int, a pair of positive ints (height, width) or "
                    f"None, got {input_size!r}."
                )
            self.working_shape_ = (min(int(size[0]), height), min(int(size[1]), width))
        ph = min(self.patch_size, self.working_shape_[0])
        pw = min(self.patch_size, self.working_shape_[1])
        self.patch_shape_ = (ph, pw)
        if self.stride is None:
            self.stride_ = (max(1, ph // 2), max(1, pw // 2))
        else:
            self.stride_ = (min(self.stride, ph), min(self.stride, pw))
        self.patch_corners_ = patch_grid(*self.working_shape_, self.patch_shape_, self.stride_)
        self.n_patches_ = len(self.patch_corners_)
        self.device_ = resolve_device(self.device)
        return images, was_2d

    @property
    def _n_channels(self):
        return self.image_shape_[2] if len(self.image_shape_) == 3 else 1

    def _patches(self, images):
        """Downsized images → ``(n * n_patches, C, ph, pw)`` float32 and grid indices."""
        small = downsize(images, self.working_shape_)
        patches = extract_patches(small, self.patch_shape_, self.stride_)
        n = patches.shape[0]
        patches = patches.reshape(n * self.n_patches_, self._n_channels, *self.patch_shape_)
        index = np.tile(np.arange(self.n_patches_, dtype=np.int64), n)
        return np.ascontiguousarray(patches, dtype=np.float32), index

    def _make_net(self):
        """A fresh (uninitialised) skorch net for the fitted patch geometry."""
        return _SparseAENet(
            module=ConditionalPatchAE,
            module__patch_shape=self.patch_shape_,
            module__n_patches=self.n_patches_,
            module__in_channels=self._n_channels,
            module__channels=tuple(int(c) for c in self.channels),
            module__latent_dim=self.latent_dim,
            criterion=torch.nn.MSELoss,
            sparsity=float(self.sparsity),
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            callbacks=self._callbacks(),
            iterator_train__shuffle=True,
            dataset=_PatchBatches,
            iterator_train__collate_fn=_collate_batch,
            train_split=None,
            device=self.device_,
            verbose=int(self.verbose),
        )

    def _callbacks(self):
        if self.lr_schedule == "cosine":
            return [("lr_schedule", LRScheduler(policy=CosineAnnealingLR,
                                                T_max=self.max_epochs))]
        return None

    def _train(self, images, seed):
        """Train a fresh skorch net on all patches of ``images``."""
        patches, index = self._patches(images)
        net = self._make_net()
        with torch_seeded(seed, self.device_):
            net.fit({"patches": patches, "index": index}, None)
        net.module_.eval()
        return net

    def _reconstruct(self, net, images):
        """Reconstructions at the input size, in chunks of images (bounded memory)."""
        module = net.module_
        module.eval()
        device = net.device
        height, width = images.shape[1:3]
        small_shape = self.working_shape_ + images.shape[3:]
        per_chunk = max(1, _INFER_PATCHES // self.n_patches_)
        out = np.empty_like(images, dtype=np.float32)
        with torch.no_grad():
            for chunk in iter_batches(len(images), per_chunk):
                patches, index = self._patches(images[chunk])
                patches = torch.from_numpy(patches).to(device)
                index = torch.from_numpy(index).to(device)
                # One forward pass per image: BLAS results for a row can depend on its
                # position in the batch, so this keeps an image's residuals independent of
                # the other images in X (sample order and subset invariance, bit for bit).
                recon = np.concatenate([
                    module(patches[i : i + self.n_patches_], index[i : i + self.n_patches_])[0]
                    .cpu().numpy()
                    for i in range(0, len(patches), self.n_patches_)
                ]).astype(np.float32, copy=False)
                m = len(range(*chunk.indices(len(images))))
                if images.ndim == 3:
                    recon = recon.reshape(m, self.n_patches_, *self.patch_shape_)
                else:
                    recon = recon.reshape(m, self.n_patches_, self._n_channels,
                                          *self.patch_shape_)
                small = reassemble_patches(recon, small_shape, self.patch_shape_, self.stride_)
                out[chunk] = upsize(small, (height, width))
        return out

    def _residuals(self, net, images):
        return self._expose(residual_map(images, self._reconstruct(net, images), self.residual,
                                         signed=self.signed))

    def _expose(self, out):
        """The residual map ``out`` (modified in place) times ``gain_``, clipped to [0, 1]."""
        if self.gain is None:
            return out
        return np.clip(out * np.float32(self.gain_), -1 if self.signed else 0, 1, out=out)

    def _fit_gain(self, images, residuals=None):
        """``gain_``: the factor that maps the 99th percentile of the training residuals to 1.

        Read from the autoencoder fitted on all training images (the one ``transform``
        uses), on an evenly strided sample of at most ``_GAIN_SAMPLE`` pixels per image;
        ``residuals``, when given, are these images' unscaled residual maps already.
        """
        if self.gain is None:
            return 1.0
        if self.gain != "auto":
            return float(self.gain)
        step = max(1, images[0].size // _GAIN_SAMPLE)
        sample = []
        for chunk in iter_batches(len(images), max(1, _INFER_PATCHES // self.n_patches_)):
            if residuals is None:
                r = residual_map(images[chunk], self._reconstruct(self.net_, images[chunk]),
                                 self.residual, signed=self.signed)
            else:
                r = residuals[chunk]
            sample.append(np.abs(r.reshape(len(r), -1)[:, ::step]).ravel())
        return exposure_gain(np.concatenate(sample))


def exposure_gain(sample):
    """``gain="auto"``: the factor that maps the ``_GAIN_QUANTILE`` of ``sample`` (residual
    values, at most ``_GAIN_SAMPLE`` per image) to 1; 1 when it is 0 (a perfect
    reconstruction has nothing to expose)."""
    level = float(np.quantile(sample, _GAIN_QUANTILE))
    return 1.0 / level if level > 0 else 1.0


def residual_map(images, reconstructions, kind="absolute", *, signed=False):
    """Per-pixel residual of ``images`` against their ``reconstructions`` (float32).

    ``kind`` and ``signed`` are the ``residual`` and ``signed`` parameters of
    :class:`CPCAEResidualMap`.
    """
    if signed:
        diff = np.subtract(images, reconstructions, dtype=np.float32)
        if kind == "absolute":
            return diff
        if kind == "relative":
            return np.clip(diff / np.maximum(reconstructions, 0.05), -1, 1).astype(
                np.float32, copy=False)
        raise ValueError(f"signed=True needs residual='absolute' or 'relative', got {kind!r}.")
    if kind == "squared":
        return np.square(images - reconstructions, dtype=np.float32)
    if kind == "relative":
        out = np.abs(images - reconstructions) / np.maximum(reconstructions, 0.05)
        return np.clip(out, 0, 1).astype(np.float32, copy=False)
    if kind == "log":
        out = np.abs(np.log(np.maximum(images, 0) + 0.02) - np.log(reconstructions + 0.02)) / 2
        return np.clip(out, 0, 1).astype(np.float32, copy=False)
    return np.abs(images - reconstructions, dtype=np.float32)


def _warn_out_of_range(estimator, images):
    """Warn (in fit and after it) when pixel values leave [0, 1]: the package's one rule."""
    warn_outside_unit_range(
        estimator, images,
        "the residuals include the distance to [0, 1] (the decoder ends with a sigmoid)",
        stacklevel=4,
    )
