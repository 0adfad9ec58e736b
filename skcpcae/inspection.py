# SPDX-License-Identifier: BSD-3-Clause
"""What a fitted pipeline says about each image: scores, decision, threshold, anomaly maps
at the input size, and defect locations in numbers.

One module for the introspection that the command line, the plots and the benchmark need, so
that none of them walks a pipeline class by class:

* :func:`inspect_images` runs a fitted pipeline once and returns anomaly scores, decisions,
  the threshold and per-pixel anomaly maps with the images they lie on;
* :func:`anomaly_maps` returns the maps only;
* :func:`final_estimator`, :func:`decision_threshold` and :func:`map_source` answer "which
  step decides", "where is its threshold" and "where would maps come from";
* :func:`location_summary` and :func:`defect_mask` turn one map into numbers: its maximum and
  position, the defective area at a threshold and the bounding boxes of the defect regions.

Where maps come from, in the order of the chain (the step nearest to the decision wins):

* a :class:`~skcpcae.residuals.CPCAEResidualMap` step: its residual ``|x - x_hat|``, averaged
  over channels (also inside a :class:`~sklearn.pipeline.FeatureUnion` branch);
* any step with an ``anomaly_map`` method (the detectors of :mod:`skcpcae.baselines`,
  :class:`~skcpcae.outlier.PatchKNNScorer`, and :class:`~skcpcae.outlier.KDEThresholdClassifier`
  wrapping one): maps on a coarser grid (one cell per patch) are upsampled bilinearly;
* otherwise, for pipelines that take images, *occlusion*: the drop of the image's anomaly score
  when one cell of a ``grid x grid`` partition is replaced by a blurred copy of itself
  (Zeiler & Fergus 2014); it costs ``grid ** 2`` extra scorings per image.

Registration (a step whose ``transform_with_info`` reports ``warps``, as
:class:`~skcpcae.preprocessing.ECCRegistrar` does) moves the image; a map computed after it
lies over the *registered* image. With ``frame="input"`` (the default) the warp is undone, so
the map lies over the pixels of the image given; with ``frame="registered"`` the registered
image is returned beside the map instead.
"""

import numbers

import numpy as np
from sklearn.pipeline import FeatureUnion
from sklearn.utils import Bunch

# the chain, read without running it, and one map in numbers: their own modules, public here
from ._locations import defect_mask, location_summary
from ._steps import (
    _METHODS,
    _chain_source,
    _check_choice,
    _flat_steps,
    _makes_residuals,
    _map_step_name,
    decision_threshold,
    final_estimator,
    map_source,
    residual_for_map,
)

__all__ = [
    "anomaly_maps",
    "decision_threshold",
    "defect_mask",
    "final_estimator",
    "inspect_images",
    "location_summary",
    "map_source",
]

_FRAMES = ("input", "registered")


# ----------------------------------------------------------------------------- running


class _Run:
    """State of one pass of a batch through the chain."""

    def __init__(self):
        self.images = None  # the first image-valued array (the input frame)
        self.registered = None  # the output of the last registration step
        self.warps = None  # cumulative warps (n, 3, 3) of the registration steps so far
        self.map = None
        self.map_warps = None  # warps in force where the map was made
        self.source = None

    def see(self, X):
        if self.images is None and _is_image_batch(X):
            self.images = np.asarray(X)

    def tap(self, maps, source):
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim == 4:
            maps = maps.mean(axis=3)
        if maps.ndim != 3:  # a table: not a map
            return
        self.map, self.map_warps, self.source = maps, self.warps, source


def _is_image_batch(X):
    return isinstance(X, np.ndarray) and X.ndim in (3, 4) and X.shape[1] > 1


def _record_registration(run, info, Xt):
    warps = None if info is None else info.get("warps")
    if warps is None or not _is_image_batch(Xt):
        return
    warps = np.asarray(warps, dtype=np.float64)
    if warps.ndim != 3 or warps.shape[0] != Xt.shape[0]:
        return
    if warps.shape[1:] == (2, 3):
        warps = np.concatenate([warps, np.tile([[[0.0, 0.0, 1.0]]], (len(warps), 1, 1))], 1)
    # out2(p) = out1(W2 p) = in(W1 W2 p)
    run.warps = warps if run.warps is None else run.warps @ warps
    run.registered = Xt


def _transform(step, X, run, want_map):
    """``step.transform(X)``, tapping maps (residual steps, FeatureUnion branches)."""
    if want_map and isinstance(step, FeatureUnion) and _map_step_name(step) is not None:
        return _transform_union(step, X, run)
    if hasattr(step, "transform_with_info"):  # registration reports its warps
        Xt, info = step.transform_with_info(X)
    else:
        Xt, info = step.transform(X), None
    run.see(Xt)
    _record_registration(run, info, Xt)
    if want_map and _makes_residuals(step):
        run.tap(residual_for_map(step, Xt), _map_step_name(step))
    return Xt


def _transform_union(union, X, run):
    """FeatureUnion.transform, with the map of the first branch that makes one."""
    weights = union.transformer_weights or {}
    outputs, tapped = [], False
    for name, branch in union.transformer_list:
        if branch is None or (isinstance(branch, str) and branch == "drop"):
            continue
        if isinstance(branch, str) and branch == "passthrough":
            out = X
        elif not tapped and _chain_source(_flat_steps(branch), include_last=True):
            out = X
            for step in _flat_steps(branch):
                out = _transform(step, out, run, want_map=True)
            tapped = run.map is not None
        else:
            out = branch.transform(X)
        if not isinstance(out, np.ndarray):
            return union.transform(X)  # sparse or pandas output: let the union stack it
        if name in weights:
            out = out * weights[name]
        outputs.append(out.reshape(len(out), -1) if out.ndim > 2 else out)
    return np.hstack(outputs)


def _score(final, Xt):
    from .metrics import anomaly_scores

    return anomaly_scores(final, Xt)


def _predict(final, Xt):
    if hasattr(final, "predict"):
        return np.asarray(final.predict(Xt))
    return None


def _forward(steps, X, *, want_map, run=None):
    """Run ``X`` through ``steps``: ``(Xt for the final step, run state)``."""
    run = _Run() if run is None else run
    run.see(X)
    Xt = X
    for step in steps[:-1]:
        Xt = _transform(step, Xt, run, want_map)
    final = steps[-1]
    if want_map and hasattr(final, "anomaly_map"):
        run.tap(final.anomaly_map(Xt), f"{type(final).__name__}.anomaly_map")
    return Xt, run


def _resize_maps(maps, hw):
    if maps.shape[1:3] == tuple(hw):
        return maps
    import cv2

    h, w = hw
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])


def _warp_maps(maps, warps, *, inverse):
    """Move maps between frames. ``inverse=False``: registered → input (undo the warp)."""
    import cv2

    out = np.empty_like(maps)
    h, w = maps.shape[1:3]
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    for i, (m, warp) in enumerate(zip(maps, warps, strict=True)):
        if np.allclose(warp[2], (0.0, 0.0, 1.0)):
            out[i] = cv2.warpAffine(m, warp[:2], (w, h), flags=flags,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        else:
            out[i] = cv2.warpPerspective(m, warp, (w, h), flags=flags,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def _smooth(maps, sigma):
    if not sigma:
        return maps
    import cv2

    return np.stack([cv2.GaussianBlur(m, (0, 0), float(sigma)) for m in maps])


def _occlusion(steps, run, scores, grid):
    """Occlusion maps in the input frame: score drop when a cell is blurred out."""
    import cv2

    images = run.images
    start = 0
    try:
        from .datasets import ImageReader
    except ImportError:  # pragma: no cover
        ImageReader = ()
    if isinstance(steps[0], ImageReader):
        start = 1  # occlude the decoded images, not the file names
    rest = steps[start:]
    n, h, w = images.shape[:3]
    rows = np.linspace(0, h, grid + 1).round().astype(int)
    cols = np.linspace(0, w, grid + 1).round().astype(int)
    sigma = max(1.0, min(h, w) / grid / 2.0)
    cells = np.zeros((n, grid, grid), np.float32)
    for i in range(n):
        img = np.asarray(images[i], dtype=np.float32)
        blurred = cv2.GaussianBlur(img, (0, 0), sigma).reshape(img.shape)
        batch = np.repeat(img[None], grid * grid, axis=0)
        for r in range(grid):
            for c in range(grid):
                sl = (r * grid + c, slice(rows[r], rows[r + 1]), slice(cols[c], cols[c + 1]))
                batch[sl] = blurred[sl[1:]]
        Xt, _ = _forward(rest, batch, want_map=False)
        occluded = _score(rest[-1], Xt)
        cells[i] = (scores[i] - occluded).reshape(grid, grid)
    return _resize_maps(cells, (h, w))


def inspect_images(pipeline, X, *, maps=True, method="auto", frame="input", sigma=0.0,
                   grid=8):
    """Run a fitted pipeline once on ``X``: scores, decisions, threshold and anomaly maps.

    Parameters
    ----------
    pipeline : fitted estimator or Pipeline
        Ends in an outlier detector (``score_samples`` or ``decision_function``).
    X : array-like of shape (n_samples, height, width[, channels]), or file paths
        What the pipeline takes (file paths when it starts with an
        :class:`~skcpcae.datasets.ImageReader`).
    maps : bool, default=True
        Also compute the anomaly maps.
    method : {"auto", "model", "occlusion"}, default="auto"
        Where maps come from: ``"model"``, the pipeline's own maps (a residual step or an
        ``anomaly_map`` method; an error when it has none); ``"occlusion"``, the drop of the
        anomaly score when a cell of a ``grid x grid`` partition is blurred out (any pipeline
        that takes images, ``grid ** 2`` extra scorings per image); ``"auto"``, the model's
        own maps when it has some, else occlusion.
    frame : {"input", "registered"}, default="input"
        ``"input"``: maps lie over the images given (a registration warp is undone; pixels
        of the input that the registered image does not cover get 0). ``"registered"``: maps
        lie over the registered images, returned as ``images``.
    sigma : float or "auto", default=0.0
        Standard deviation, in pixels, of a Gaussian smoothing of the maps (0: none;
        ``"auto"``: the image's shorter side / 64, at least 1, as ``skcpcae score`` does).
    grid : int, default=8
        Cells per side of the occlusion partition.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        - ``anomaly_score`` : ndarray of shape (n_samples,), higher = more anomalous
          (``-score_samples``, or ``-decision_function``);
        - ``prediction`` : ndarray of shape (n_samples,) of +1 / -1, or None;
        - ``threshold`` : float or None, see :func:`decision_threshold`;
        - ``anomaly_maps`` : ndarray of shape (n_samples, height, width), float32, higher =
          more anomalous, in the units of their source; None without ``maps``;
        - ``images`` : ndarray of shape (n_samples, height, width[, channels]), the images
          the maps lie over (None when the input was not images);
        - ``map_source`` : str or None, see :func:`map_source`;
        - ``map_threshold`` : float or None, the threshold in the maps' units when it is
          known: the image threshold when the maps are the final detector's own and every
          image's score lies within its map's range (the score is an average of map values,
          as for the PatchCore detector), or what the scorer's ``map_threshold`` method
          gives (:meth:`~skcpcae.outlier.PatchKNNScorer.map_threshold`, also when its
          score is fused with a global one);
        - ``final_input`` : what the final step received (``pipeline[:-1].transform(X)``,
          e.g. the embeddings), for further use without another pass.

    Examples
    --------
    >>> from skcpcae.baselines import VariationDetector
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.inspection import inspect_images
    >>> X, y = make_parts(10, n_anomalies=2, size=(32, 32), random_state=0)
    >>> det = VariationDetector().fit(X[:10])
    >>> res = inspect_images(det, X[10:])
    >>> res.anomaly_maps.shape, res.map_source
    ((2, 32, 32), 'VariationDetector.anomaly_map')
    """
    _check_choice(method, _METHODS, "method")
    _check_choice(frame, _FRAMES, "frame")
    if not (sigma == "auto" or (isinstance(sigma, numbers.Real) and sigma >= 0)):
        raise ValueError(f"sigma must be a number >= 0 or 'auto', got {sigma!r}.")
    if not isinstance(grid, numbers.Integral) or isinstance(grid, bool) or grid < 1:
        raise ValueError(f"grid must be a positive integer, got {grid!r}.")
    steps = _flat_steps(pipeline)
    final = steps[-1]
    if not (hasattr(final, "score_samples") or hasattr(final, "decision_function")):
        raise TypeError(
            f"The last step, {type(final).__name__}, is not an anomaly detector (it has "
            "neither score_samples nor decision_function)."
        )
    source = map_source(pipeline, method) if maps else None
    if maps and source is None:
        raise ValueError(_no_map_message(pipeline, method))
    X = _as_input(X, steps)
    want_model_map = maps and source != "occlusion"
    Xt, run = _forward(steps, X, want_map=want_model_map)
    scores = _score(final, Xt)
    result = Bunch(anomaly_score=scores, prediction=_predict(final, Xt),
                   threshold=decision_threshold(final), anomaly_maps=None,
                   images=run.images, map_source=source, map_threshold=None,
                   final_input=Xt)
    if not maps:
        return result
    if source == "occlusion":
        if run.images is None:
            raise ValueError(_no_map_message(pipeline, method))
        out = _occlusion(steps, run, scores, grid)
        if frame == "registered" and run.warps is not None:
            out = _warp_maps(out, run.warps, inverse=True)
            result.images = run.registered
    else:
        if run.map is None:  # pragma: no cover - map_source promised one
            raise ValueError(_no_map_message(pipeline, method))
        raw = run.map
        result.map_threshold = _shared_threshold(run, final, scores, result.threshold)
        base = run.images if run.images is not None else None
        hw = base.shape[1:3] if base is not None else raw.shape[1:3]
        out = _resize_maps(raw, hw)
        if run.map_warps is not None:
            if frame == "input":
                out = _warp_maps(out, run.map_warps, inverse=False)
            else:
                result.images = run.registered
        elif frame == "registered" and run.registered is not None:
            # the map was made before the registration: move it onto the registered image
            out = _warp_maps(out, run.warps, inverse=True)
            result.images = run.registered
    if sigma == "auto":
        sigma = max(1.0, min(out.shape[1:3]) / 64.0)
    result.anomaly_maps = _smooth(np.ascontiguousarray(out, dtype=np.float32), sigma)
    return result


def _as_input(X, steps):
    """Arrays as float images (uint8 / uint16 scaled as every stage does); file paths as is."""
    try:
        from .datasets import ImageReader
    except ImportError:  # pragma: no cover
        ImageReader = ()
    if isinstance(steps[0], ImageReader):
        return X
    X = np.asarray(X)
    if X.dtype == np.uint8:
        return X.astype(np.float32) / np.float32(255.0)
    if X.dtype == np.uint16:
        return X.astype(np.float32) / np.float32(65535.0)
    return X


def _shared_threshold(run, final, scores, threshold):
    if threshold is None or run.source != f"{type(final).__name__}.anomaly_map":
        return None
    scorer = getattr(final, "estimator_", final)
    if hasattr(scorer, "map_threshold"):  # the scorer knows how its score relates to its map
        return scorer.map_threshold(threshold)
    flat = run.map.reshape(len(run.map), -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    tol = 1e-5 * np.maximum(1.0, np.abs(hi))
    if np.all((scores >= lo - tol) & (scores <= hi + tol)):
        return float(threshold)
    return None


def anomaly_maps(pipeline, X, *, method="auto", frame="input", sigma=0.0, grid=8,
                 return_images=False):
    """Per-pixel anomaly maps of a fitted pipeline, at the size of its input images.

    See :func:`inspect_images` (this is its ``anomaly_maps``, and its ``images`` with
    ``return_images=True``) and the module docstring for where the maps come from.

    Parameters
    ----------
    pipeline : fitted estimator or Pipeline
        The fitted model (a map-producing step or a pipeline holding one).
    X : array-like of shape (n_samples, height, width[, channels]), or file paths
        The images to map.
    method : {"auto", "model", "occlusion"}, default="auto"
    frame : {"input", "registered"}, default="input"
    sigma : float or "auto", default=0.0
        Gaussian smoothing of the maps, as in :func:`inspect_images`.
    grid : int, default=8
        Grid of the location summary, as in :func:`inspect_images`.
    return_images : bool, default=False
        Also return the images the maps lie over.

    Returns
    -------
    maps : ndarray of shape (n_samples, height, width), float32
        Higher = more anomalous.
    images : ndarray of shape (n_samples, height, width[, channels])
        Only with ``return_images``.

    Examples
    --------
    >>> from skcpcae.baselines import VariationDetector
    >>> from skcpcae.datasets import make_parts
    >>> from skcpcae.inspection import anomaly_maps
    >>> X, _ = make_parts(10, size=(32, 32), random_state=0)
    >>> anomaly_maps(VariationDetector().fit(X), X[:3]).shape
    (3, 32, 32)
    """
    res = inspect_images(pipeline, X, method=method, frame=frame, sigma=sigma, grid=grid)
    if return_images:
        return res.anomaly_maps, res.images
    return res.anomaly_maps


def _no_map_message(pipeline, method):
    name = type(final_estimator(pipeline)).__name__
    if method == "model":
        return (f"No anomaly maps: no step of this model ({name} last) makes one (a "
                "CPCAEResidualMap step or an anomaly_map method); use method='occlusion'.")
    return (f"No anomaly maps: this model ({name} last) makes none and does not take images "
            "(occlusion maps need image input).")
