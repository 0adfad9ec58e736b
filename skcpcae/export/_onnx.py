# SPDX-License-Identifier: BSD-3-Clause
"""``to_onnx``: a fitted pipeline as one ONNX graph, checked against the pipeline itself."""

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ExportReport", "ParityError", "to_onnx"]

#: Key of the JSON metadata in the ONNX file's ``metadata_props`` (read by skcpcae.runtime).
METADATA_KEY = "skcpcae"
INPUT_DTYPES = ("float32", "uint8")


class ParityError(ValueError):
    """The exported graph does not score the sample as the Python pipeline does.

    Attributes
    ----------
    report : ExportReport
        The measured differences (nothing was written).
    """

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


@dataclass
class ExportReport:
    """What :func:`to_onnx` wrote and how closely the graph matches the pipeline.

    Attributes
    ----------
    path : str or None
        The ONNX file (None when nothing was written).
    rtol : float
        Largest relative score difference accepted.
    max_rel_diff : float
        Largest ``|s_onnx - s_python| / max(|s_python|, |threshold|)`` over the sample's
        anomaly scores (a score far below the threshold, such as 0 for a training image
        that the memory holds, is compared at the threshold's scale).
    max_abs_diff : float
        Largest absolute anomaly-score difference.
    max_map_rel_diff : float or None
        Largest anomaly-map difference, relative to the sample's largest map value.
    n_decisions_differ : int
        Sample images whose decision (+1 / -1) differs.
    n_sample : int
        Images in the parity sample.
    threshold : float
        The threshold on the anomaly score (``-offset_`` of the final step).
    input_shape : tuple of int
        Shape of one input image.
    input_dtype : str
        ``"float32"`` (values in [0, 1]) or ``"uint8"``.
    steps : list of str
        The pipeline's steps, as exported.
    preset : str or None
        The preset recorded at fit, when there is one.
    outputs : list of str
        Names of the graph's outputs.
    skcpcae_version : str
    opset : int
    """

    path: str | None
    rtol: float
    max_rel_diff: float
    max_abs_diff: float
    max_map_rel_diff: float | None
    n_decisions_differ: int
    n_sample: int
    threshold: float
    input_shape: tuple
    input_dtype: str
    steps: list = field(default_factory=list)
    preset: str | None = None
    outputs: list = field(default_factory=list)
    skcpcae_version: str = ""
    opset: int = 17

    @property
    def passed(self):
        """Whether the parity check passed."""
        return self.max_rel_diff <= self.rtol and self.n_decisions_differ == 0

    def summary(self):
        """One line with the parity figures."""
        return (f"parity on {self.n_sample} image(s): max relative score difference "
                f"{self.max_rel_diff:.3g} (tolerance {self.rtol:g}), "
                f"{self.n_decisions_differ} decision(s) differ")

    def to_metadata(self):
        """The JSON-able dict stored in the ONNX file."""
        meta = asdict(self)
        meta.pop("path")
        meta["input_shape"] = list(self.input_shape)
        return meta


# -------------------------------------------------------------------------- the pipeline


def _flatten(pipeline):
    """``(name, step)`` pairs of a pipeline, nested pipelines spliced in."""
    from sklearn.pipeline import Pipeline

    if isinstance(pipeline, Pipeline):
        out = []
        for name, step in pipeline.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            out.extend(_flatten(step) if isinstance(step, Pipeline) else [(name, step)])
        return out
    return [(type(pipeline).__name__.lower(), pipeline)]


def _unsupported(name, step, why=""):
    return NotImplementedError(
        f"Step {name!r} ({type(step).__name__}) cannot be exported to ONNX{why}. Exportable: "
        "[CPCAEResidualMap ->] DeepPatchEmbedder or DeepPoolEmbedder, StandardScaler, then "
        "PatchKNNScorer or KNNAnomalyScorer, optionally wrapped in KDEThresholdClassifier "
        "(the `best`, `deep-feature` and `aligned` presets; the last with its residual peak: "
        "a FeatureUnion of ResidualExposure -> DeepPoolEmbedder and ResidualPeak, then "
        "FusedKNNScorer). Registration (ECCRegistrar), "
        "AdaptiveGamma and file reading stay outside the graph: apply them before and "
        "export the rest."
    )


def _peak_union(name, union, cpcae):
    """``(embedder step, exposure, peak module)`` of the CPCAE presets' FeatureUnion.

    The union reads the signed residual map twice: ``ResidualExposure -> DeepPoolEmbedder``
    (the embedding columns) and ``ResidualPeak`` (the last column), in that order.
    """
    from scipy.ndimage import gaussian_filter1d
    from sklearn.pipeline import FeatureUnion

    from ..residuals import ResidualExposure, ResidualPeak
    from . import _modules

    branches = [(n, b) for n, b in union.transformer_list
                if not (isinstance(b, str) and b == "drop")] if isinstance(
                    union, FeatureUnion) else []
    layout = ("ResidualExposure -> DeepPoolEmbedder, then ResidualPeak, unweighted, after "
              "CPCAEResidualMap(signed=True)")
    if (len(branches) != 2 or not isinstance(branches[1][1], ResidualPeak)
            or union.transformer_weights or not getattr(cpcae, "signed", False)):
        raise _unsupported(name, union, f"; the one FeatureUnion exported is {layout}")
    chain = _flatten(branches[0][1])
    exposure = None
    if chain and isinstance(chain[0][1], ResidualExposure):
        exp = chain[0][1]
        exposure = (exp.polarity, None if exp.gain is None else exp.gain_)
        chain = chain[1:]
    if len(chain) != 1 or exposure is None:
        raise _unsupported(name, union, f"; the one FeatureUnion exported is {layout}")
    peak = branches[1][1]
    smooth = {}
    if peak.sigma > 0:  # scipy's filter along one axis is a matrix: read it off the identity
        for axis, n in (("h", peak.mean_.shape[0]), ("w", peak.mean_.shape[1])):
            smooth[f"smooth_{axis}"] = gaussian_filter1d(
                np.eye(n, dtype=np.float64), peak.sigma, axis=0)
    module = _modules.ResidualPeakScore(peak.mean_, peak.scale_, polarity=peak.polarity,
                                        **smooth)
    return chain[0], exposure, module


def _adaptive_steps():
    from ..preprocessing import AdaptiveGamma, ECCRegistrar

    return (ECCRegistrar, AdaptiveGamma)


def _refuse_adaptive(pipeline, steps):
    """Refuse registration and gamma with the way out: export the rest, apply them before.

    Both adapt to each image (ECC iterations to convergence; Canny edges, hole filling and a
    fitted curve per image), which a fixed graph cannot replay with the parity the export
    promises, so they stay outside it.
    """
    from sklearn.pipeline import Pipeline

    adaptive = _adaptive_steps()
    found = [(name, step) for name, step in steps if isinstance(step, adaptive)]
    if not found:
        return
    name, step = found[0]
    names = ", ".join(type(s).__name__ for _, s in found)
    it = "them" if len(found) > 1 else "it"
    how = f"export the pipeline without {it} and apply {it} before scoring"
    if isinstance(pipeline, Pipeline):
        top = [s for _, s in pipeline.steps]
        k = 0
        while k < len(top) and isinstance(top[k], adaptive):
            k += 1
        if k == len(found) and k < len(top):
            how += (f": to_onnx(pipeline[{k}:], path, sample=pipeline[:{k}].transform(images)), "
                    f"then score pipeline[:{k}].transform(new_images) with the file")
    raise NotImplementedError(
        f"Step {name!r} ({type(step).__name__}) cannot be exported to ONNX: {names} "
        f"adapt{'' if len(found) > 1 else 's'} to each image (ECC iterations; edges, hole filling and a fitted gamma curve) and "
        f"stay outside the graph; {how}.")


def _resize_matrix(n_in, n_out, interpolation):
    """``R`` (n_out, n_in) with ``cv2.resize`` along one axis equal to ``R @ x``."""
    import cv2

    eye = np.eye(n_in, dtype=np.float32)
    return cv2.resize(eye, (n_in, n_out), interpolation=interpolation).reshape(n_out, n_in)


def _residual_module(cpcae, input_dtype):
    """The :class:`~._modules.ResidualMap` of a fitted ``CPCAEResidualMap``."""
    import copy

    import cv2

    from . import _modules

    shape = tuple(int(s) for s in cpcae.image_shape_)
    if len(shape) < 2 or shape[0] == 1:
        raise NotImplementedError(
            f"CPCAEResidualMap was fitted on a table (one-pixel-high images, shape {shape}), "
            "not on images; only image pipelines are exported.")
    (height, width), (hs, ws) = shape[:2], tuple(int(v) for v in cpcae.working_shape_)
    corners = np.asarray(cpcae.patch_corners_, dtype=np.int64)
    tops, lefts = np.unique(corners[:, 0]), np.unique(corners[:, 1])
    grid = np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2)
    if not np.array_equal(grid, corners):  # patch_grid always makes a full, row-major grid
        raise NotImplementedError(
            "CPCAEResidualMap's patch_corners_ are not a row-major grid of tops x lefts; "
            "this patch layout is not exported.")
    resized = (hs, ws) != (height, width)
    down = ((_resize_matrix(height, hs, cv2.INTER_AREA),
             _resize_matrix(width, ws, cv2.INTER_AREA)) if resized else None)
    up = ((_resize_matrix(hs, height, cv2.INTER_LINEAR),
           _resize_matrix(ws, width, cv2.INTER_LINEAR)) if resized else None)
    autoencoder = copy.deepcopy(cpcae.net_.module_).to("cpu").float().eval()
    return _modules.ResidualMap(
        autoencoder, down=down, up=up, tops=tops, lefts=lefts,
        patch_shape=cpcae.patch_shape_, working_shape=(hs, ws), residual=cpcae.residual,
        gain=None if cpcae.gain is None else cpcae.gain_, uint8=input_dtype == "uint8",
        signed=getattr(cpcae, "signed", False))


def _build_module(pipeline, input_dtype):
    """The :class:`~._modules.ExportedPipeline` of a fitted pipeline, and a description."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.validation import check_is_fitted

    from ..embedding import DeepPatchEmbedder, DeepPoolEmbedder
    from ..outlier import (
        FusedKNNScorer,
        KDEThresholdClassifier,
        KNNAnomalyScorer,
        PatchKNNScorer,
    )
    from ..residuals import CPCAEResidualMap
    from . import _modules

    check_is_fitted(pipeline)
    steps = _flatten(pipeline)
    if not steps:
        raise ValueError("The pipeline has no step to export.")
    _refuse_adaptive(pipeline, steps)
    final_name, final = steps[-1]
    threshold_step = final
    if isinstance(final, KDEThresholdClassifier):
        steps = steps[:-1] + _flatten(final.estimator_)
        final_name, final = steps[-1]
    if not hasattr(threshold_step, "offset_"):
        raise _unsupported(final_name, threshold_step, " (it has no offset_, no threshold)")
    threshold = -float(threshold_step.offset_)

    residual = peak = exposure = None
    if isinstance(steps[0][1], CPCAEResidualMap) and len(steps) > 1:
        cpcae = steps[0][1]
        residual = _residual_module(cpcae, input_dtype)
        input_shape = tuple(int(s) for s in cpcae.image_shape_)
        steps = steps[1:]
        if hasattr(steps[0][1], "transformer_list") or getattr(cpcae, "signed", False):
            embed_step, exposure, peak = _peak_union(*steps[0], cpcae)
            steps = [embed_step] + steps[1:]
    first_name, embedder = steps[0]
    if not isinstance(embedder, DeepPoolEmbedder):  # DeepPatchEmbedder is a subclass
        raise _unsupported(first_name, embedder, " as the first step" if residual is None
                           else " after CPCAEResidualMap")
    shape = tuple(int(s) for s in embedder.image_shape_)
    if len(shape) < 2 or shape[0] == 1:
        raise NotImplementedError(
            f"{type(embedder).__name__} was fitted on a table (one-pixel-high images, shape "
            f"{shape}), not on images; only image pipelines are exported.")
    if residual is not None and shape != input_shape:  # pragma: no cover - one fit sets both
        raise ValueError(f"CPCAEResidualMap returns images of shape {input_shape}, but "
                         f"{type(embedder).__name__} was fitted on {shape}.")
    if tuple(embedder._target_size(*shape[:2])) != shape[:2]:
        raise NotImplementedError(
            f"Step {first_name!r} ({type(embedder).__name__}) resizes its input (input_size="
            f"{embedder.input_size!r}, images of {shape[0]}x{shape[1]}): the antialiased "
            "resize is not exported. Resize the images to the backbone's input size before "
            "the pipeline (and refit), then export.")
    backbone = embedder.backbone_.to("cpu").float()
    common = dict(final=embedder.stages is None, name=embedder.backbone)
    patches = isinstance(embedder, DeepPatchEmbedder)
    if patches:
        embed = _modules.PatchEmbed(backbone, local_size=embedder.local_size, **common)
    else:
        embed = _modules.PoolEmbed(backbone, pooling=embedder.pooling, **common)
    # after a residual step the embedder sees its float maps, whatever the graph's input
    preprocess = _modules.Preprocess(embedder.mean_, embedder.std_,
                                     uint8=input_dtype == "uint8" and residual is None)

    tabular = []
    for name, step in steps[1:-1]:
        if isinstance(step, StandardScaler) and not patches:
            tabular.append(_modules.Standardize(
                step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None,
                # after the peak's FeatureUnion the rows are float64 (its float64 column)
                float64_roundings=peak is None and _scaler_roundings(step) == "float64",
                float64=peak is not None))
        else:
            raise _unsupported(name, step)
    if isinstance(final, PatchKNNScorer) and patches:
        normed = getattr(final, "position_norm", None) is not None
        scorer = _modules.LocalPatchKNN(
            final.memory_, n_neighbors=final.n_neighbors_, radius=final.radius,
            top_k=final.top_k, global_features=getattr(final, "global_features_", None),
            n_retrieve=getattr(final, "n_retrieve", None),
            global_weight=getattr(final, "global_weight", 0.0),
            score_center=getattr(final, "score_center_", (0.0, 0.0)),
            score_scale=getattr(final, "score_scale_", (1.0, 1.0)),
            position_center=final.position_center_ if normed else None,
            position_scale=final.position_scale_ if normed else None)
    elif isinstance(final, FusedKNNScorer) and peak is not None and final.n_scores == 1:
        knn = final.knn_
        scorer = _modules.FusedKNN(knn.nn_._fit_X, n_neighbors=knn.n_neighbors_,
                                   n_scores=final.n_scores, weight=final.weight,
                                   center=final.center_, scale=final.scale_)
    elif isinstance(final, KNNAnomalyScorer) and not patches and peak is None:
        if final.metric != "euclidean":
            raise _unsupported(final_name, final, f" with metric={final.metric!r} (only "
                               "'euclidean')")
        bank = getattr(final.nn_, "_fit_X", None)
        if bank is None:  # pragma: no cover - scikit-learn has kept _fit_X for years
            raise _unsupported(final_name, final, " (its training rows are not found)")
        scorer = _modules.MeanSquaredKNN(bank, n_neighbors=final.n_neighbors_)
    else:
        raise _unsupported(final_name, final, f" after {type(embedder).__name__}")
    module = _modules.ExportedPipeline(preprocess, embed, tabular, scorer, threshold,
                                       residual=residual, peak=peak,
                                       exposure=exposure).eval()
    names = [type(s).__name__ for _, s in _flatten(pipeline)]
    if isinstance(threshold_step, KDEThresholdClassifier):
        names = names[:-1] + [f"KDEThresholdClassifier({' -> '.join(type(s).__name__ for _, s in _flatten(threshold_step.estimator_))})"]  # noqa: E501
    map_source = "scorer" if patches else ("residual" if residual is not None else None)
    return module, {"steps": names, "threshold": threshold, "input_shape": shape,
                    "has_map": map_source}


def _scaler_roundings(scaler):
    """``"float32"`` or ``"float64"``: how a fitted StandardScaler transforms float32 rows.

    scikit-learn >= 1.8 computes ``(X - float32(mean_)) / float32(scale_)`` in float32;
    earlier releases compute each operation with the float64 attribute and store the result
    in float32. The two differ in the last bit of many values, which a nearly constant
    feature (a tiny ``scale_``) turns into a visible share of a distance, so the graph replays
    the one this scaler does: found on probe rows, bit for bit.
    """
    d = int(scaler.n_features_in_)
    mean = np.asarray(scaler.mean_ if scaler.with_mean else np.zeros(d), np.float64)
    scale = np.asarray(scaler.scale_ if scaler.with_std else np.ones(d), np.float64)
    rng = np.random.default_rng(0)
    probe = (mean + np.abs(mean) * rng.uniform(-1, 1, (4, d))
             + scale * rng.normal(0, 3, (4, d))).astype(np.float32)
    got = np.asarray(scaler.transform(probe))
    as32 = (probe - mean.astype(np.float32)) / scale.astype(np.float32)
    as64 = ((probe.astype(np.float64) - mean).astype(np.float32).astype(np.float64)
            / scale).astype(np.float32)
    miss32 = int(np.sum(got != as32))
    miss64 = int(np.sum(got != as64))
    return "float64" if miss64 < miss32 else "float32"


# -------------------------------------------------------------------------- parity


def _as_input(sample, input_dtype, shape):
    """The sample as the graph's input (and as the pipeline gets it)."""
    sample = np.asarray(sample)
    if sample.ndim == len(shape):
        sample = sample[None]
    if tuple(sample.shape[1:]) != shape:
        raise ValueError(f"sample images have shape {tuple(sample.shape[1:])}; the pipeline "
                         f"was fitted on {shape}.")
    if len(sample) == 0:
        raise ValueError("sample holds no image; parity needs at least one.")
    if input_dtype == "uint8":
        if sample.dtype != np.uint8:
            raise TypeError(f"input_dtype='uint8' needs a uint8 sample; got {sample.dtype}.")
        return sample
    if sample.dtype == np.uint8:
        return sample.astype(np.float32) / np.float32(255.0)
    return sample.astype(np.float32)


def _python_outputs(pipeline, X, has_map):
    """Anomaly scores, decisions and map (``has_map``: None, "scorer" or "residual")."""
    from .._steps import residual_for_map

    scores = -np.asarray(pipeline.score_samples(X), dtype=np.float64)
    decisions = np.asarray(pipeline.predict(X)).astype(np.int64)
    amap = None
    if has_map == "residual":  # as skcpcae.anomaly_maps: the residual, channels averaged
        step = _flatten(pipeline)[0][1]
        amap = residual_for_map(step, np.asarray(step.transform(X), dtype=np.float32))
        amap = amap.mean(axis=3) if amap.ndim == 4 else amap
    elif has_map:
        Xt = X
        for _, step in pipeline.steps[:-1]:
            Xt = step.transform(Xt)
        amap = np.asarray(pipeline.steps[-1][1].anomaly_map(Xt))
    return scores, decisions, amap


def _session(model_bytes, n_threads=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if n_threads:
        options.intra_op_num_threads = int(n_threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def relative_difference(a, b, floor=0.0):
    """Largest ``|a - b| / max(|b|, floor)`` (0 where equal; ``inf`` where the divisor is 0).

    The parity check uses the threshold's magnitude as ``floor``: a training image scored
    against a memory that holds it (``n_neighbors=1``) is at distance 0 in Python and at a
    float32 rounding of the backbone from it in the graph, which only a scale can judge.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(same, 0.0, np.abs(a - b) / np.maximum(np.abs(b), float(floor)))
    return float(np.nan_to_num(rel, nan=np.inf).max())


def _floor(threshold):
    """Divisor floor of the relative score difference: ``|threshold|`` (0 if not finite)."""
    return abs(threshold) if np.isfinite(threshold) else 0.0


# -------------------------------------------------------------------------- export


def to_onnx(pipeline, path, *, sample, rtol=1e-4, opset=17, input_dtype="float32",
            overwrite=False, verbose=0):
    """Export a fitted pipeline to one ONNX file that scores as the pipeline does.

    The graph holds everything the pipeline uses at prediction time: the CPCAE residual map
    when the pipeline starts with one (downsize, patches, the conditional autoencoder,
    overlap averaging, upsize, residual and gain), the embedder's input handling (``uint8``
    scaled by 1/255, gray repeated to three channels, the backbone's normalisation), the
    backbone, the patch aggregation or the pooling head, the scaler, the memory bank of the
    k-NN scorer (a constant), the ``top_k`` reduction and the threshold.
    Before anything is written, the graph (under onnxruntime) and the pipeline score
    ``sample``; the file is refused when an anomaly score differs by more than ``rtol``
    (relative) or a decision differs.

    Read more in the :ref:`User Guide <export>`.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted pipeline: ``DeepPatchEmbedder -> PatchKNNScorer`` (the ``best`` preset) or
        ``DeepPoolEmbedder -> [StandardScaler ->] KNNAnomalyScorer`` (``deep-feature``),
        the scorer optionally wrapped in ``KDEThresholdClassifier``, optionally after a
        ``CPCAEResidualMap`` (``aligned``; its residual map is then the ``anomaly_map``
        output). Registration and gamma correction adapt to each image and are not
        exported (``NotImplementedError`` naming the step): export ``pipeline[k:]``, the
        steps after them (the ``paper`` preset: ``pipeline[2:]``, with
        ``sample=pipeline[:2].transform(images)``), and apply them before scoring.
    path : str or path-like
        The ``.onnx`` file to write.
    sample : array-like of shape (n_samples, height, width[, channels])
        Images at the fitted size for the parity check, e.g. a few training images; uint8
        when ``input_dtype="uint8"``.
    rtol : float, default=1e-4
        Largest accepted relative difference of the anomaly scores.
    opset : int, default=17
        ONNX opset.
    input_dtype : {"float32", "uint8"}, default="float32"
        The graph's input: floats in [0, 1], or 8-bit images (scaled by 1/255 inside).
    overwrite : bool, default=False
        Replace an existing ``path``.
    verbose : int, default=0
        Print the parity figures when positive.

    Returns
    -------
    report : ExportReport
        Parity figures and what was written (also stored, as JSON, under the key
        ``"skcpcae"`` of the file's ``metadata_props``).

    Raises
    ------
    NotImplementedError
        A step of the pipeline has no ONNX counterpart.
    ParityError
        The graph does not score ``sample`` as the pipeline does (no file is written).
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    import io

    import onnx
    import torch

    from .._components.atomic import write_atomic
    from .._version import __version__

    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {INPUT_DTYPES}; got {input_dtype!r}.")
    if not (isinstance(rtol, (int, float)) and rtol >= 0):
        raise ValueError(f"rtol must be a non-negative number; got {rtol!r}.")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    module, desc = _build_module(pipeline, input_dtype)
    X = _as_input(sample, input_dtype, desc["input_shape"])
    outputs = ["anomaly_score", "decision"] + (["anomaly_map"] if desc["has_map"] else [])
    example = torch.from_numpy(np.ascontiguousarray(X[: min(2, len(X))]))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
        torch.onnx.export(
            module, (example,), buffer, input_names=["images"], output_names=outputs,
            dynamic_axes={name: {0: "n"} for name in ["images", *outputs]},
            opset_version=int(opset), do_constant_folding=True, dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    got = _session(model.SerializeToString()).run(None, {"images": X})
    py_scores, py_decisions, py_map = _python_outputs(pipeline, X, desc["has_map"])
    map_diff = None
    if py_map is not None:
        scale = float(np.abs(py_map).max()) or 1.0
        map_diff = float(np.abs(got[2].astype(np.float64) - py_map).max() / scale)
    report = ExportReport(
        path=None, rtol=float(rtol),
        max_rel_diff=relative_difference(got[0], py_scores, _floor(desc["threshold"])),
        max_abs_diff=float(np.abs(got[0].astype(np.float64) - py_scores).max()),
        max_map_rel_diff=map_diff,
        n_decisions_differ=int(np.sum(got[1] != py_decisions)),
        n_sample=int(len(X)), threshold=desc["threshold"], input_shape=desc["input_shape"],
        input_dtype=input_dtype, steps=desc["steps"],
        preset=(getattr(pipeline, "fit_record_", None) or {}).get("preset"),
        outputs=outputs, skcpcae_version=__version__, opset=int(opset),
    )
    if verbose:
        print(report.summary())  # noqa: T201  (asked for with verbose)
    if not report.passed:
        raise ParityError(
            f"Refused to write {str(path)!r}: the ONNX graph does not score as the pipeline "
            f"({report.summary()}).", report)
    meta = report.to_metadata()
    entries = {METADATA_KEY: json.dumps(meta), "skcpcae_version": __version__,
               "parity_rtol": repr(report.rtol), "parity_max_rel_diff": repr(report.max_rel_diff),
               "threshold": repr(report.threshold), "steps": " -> ".join(report.steps),
               "input_shape": "x".join(map(str, report.input_shape)),
               "input_dtype": input_dtype}
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name = "skcpcae"
    model.producer_version = __version__
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, model.SerializeToString(), overwrite=True, fsync=False)
    report.path = os.fspath(path)
    return report
