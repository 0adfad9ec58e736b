# SPDX-License-Identifier: BSD-3-Clause
"""The chain of a fitted pipeline, read without running it: its steps, the step that decides
and its threshold, where anomaly maps would come from, the image layout it was fitted on.

:mod:`skcpcae.inspection` (public), the command line, the batch scorer and the plots all ask
these questions here, so that none of them walks a pipeline class by class.
"""

# scikit-learn is imported inside the functions: the command line imports this module, and
# `skcpcae score model.onnx` must run where only the light runtime is installed.

_METHODS = ("auto", "model", "occlusion")


# ----------------------------------------------------------------------------- the steps


def named_steps(model):
    """``[(name, step), ...]`` of a pipeline (without 'passthrough' / None), or the model."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return [("model", model)]
    return [(n, s) for n, s in steps if s is not None and s != "passthrough"]


def _flat_steps(estimator):
    """The estimators of a (nested) pipeline in order, without ``None``/'passthrough'.

    Nested pipelines are expanded; a FeatureUnion stays one step.
    """
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        out = []
        for _, step in estimator.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            out.extend(_flat_steps(step))
        return out
    return [estimator]


def final_estimator(estimator):
    """The step that decides: the last step of a (nested) pipeline, or the estimator itself.

    Parameters
    ----------
    estimator : estimator or Pipeline
        A fitted estimator or pipeline.

    Returns
    -------
    final : estimator
        The last step of a pipeline, or ``estimator`` itself.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> from skcpcae.inspection import final_estimator
    >>> inner = make_pipeline(StandardScaler(), KNNAnomalyScorer())
    >>> type(final_estimator(make_pipeline(StandardScaler(), inner))).__name__
    'KNNAnomalyScorer'
    """
    steps = _flat_steps(estimator)
    if not steps:
        raise ValueError("The pipeline has no steps (all are None or 'passthrough').")
    return steps[-1]


def decision_threshold(estimator):
    """Threshold on the anomaly score (``-score_samples``, higher = more anomalous).

    An image is a defect when its anomaly score is above the threshold. It is
    ``threshold_`` where the detector has one (:class:`~skcpcae.outlier.KDEThresholdClassifier`),
    else ``-offset_`` (scikit-learn's outlier detectors: ``decision_function = score_samples -
    offset_``), else 0 for a detector with ``decision_function`` only (its anomaly score is
    ``-decision_function``).

    Parameters
    ----------
    estimator : fitted outlier detector or Pipeline ending in one
        The model whose threshold is read.

    Returns
    -------
    threshold : float or None
        None when the detector has no threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import LocalOutlierFactor
    >>> from skcpcae.inspection import decision_threshold
    >>> lof = LocalOutlierFactor(n_neighbors=3, novelty=True).fit(np.random.rand(20, 2))
    >>> decision_threshold(lof) == -lof.offset_
    True
    """
    return threshold_of(final_estimator(estimator))


def threshold_of(final):
    """:func:`decision_threshold` of one detector (not a pipeline): ``threshold_``, else
    ``-offset_``, else 0 for ``decision_function`` only, else None."""
    value = getattr(final, "threshold_", None)
    if value is not None:
        return float(value)
    if hasattr(final, "score_samples") and getattr(final, "offset_", None) is not None:
        return -float(final.offset_)
    if not hasattr(final, "score_samples") and hasattr(final, "decision_function"):
        return 0.0
    return None



def fitted_layout(model):
    """``(size, color)`` the model was fitted on, from its first image stage: ``(None,
    "auto")`` for a model fitted on tables or one-pixel-high images."""
    shape = getattr(named_steps(model)[0][1], "image_shape_", None)
    if shape is None or len(shape) < 2 or shape[0] == 1:
        return None, "auto"
    color = "rgb" if len(shape) == 3 and shape[2] == 3 else "gray"
    return (int(shape[0]), int(shape[1])), color


def reads_files(model):
    """Whether the model starts with an ImageReader (it takes file paths, not arrays)."""
    from .datasets import ImageReader

    return isinstance(named_steps(model)[0][1], ImageReader)


def validate_steps(pipe):
    """Run each step's own parameter validation (what its ``fit`` does first), so that a
    bad parameter is refused before the images are read."""
    estimators = [pipe] + [v for v in pipe.get_params(deep=True).values()
                           if hasattr(v, "get_params") and not isinstance(v, type)]
    for est in estimators:
        validate = getattr(est, "_validate_params", None)  # scikit-learn's, as in fit
        # (FeatureUnion and Pipeline declare no constraints: their steps are checked here)
        if validate is not None and hasattr(est, "_parameter_constraints"):
            validate()


def set_verbose(model, verbose):
    """Set ``verbose`` on the pipeline's skcpcae steps that have one."""
    for _, step in named_steps(model):
        if type(step).__module__.startswith("skcpcae") and "verbose" in step.get_params(
            deep=False
        ):
            step.set_params(verbose=verbose)


# ----------------------------------------------------------------------------- map sources


def _residual_types():
    try:
        from .residuals import CPCAEResidualMap
    except ImportError:  # pragma: no cover - torch missing
        return ()
    return (CPCAEResidualMap,)


def _makes_residuals(step):
    return isinstance(step, _residual_types())


def residual_for_map(step, maps):
    """The residual ``maps`` of ``step`` as an anomaly map shows them: a signed residual
    (``CPCAEResidualMap(signed=True)``, the CPCAE presets with their peak) by its size."""
    return abs(maps) if getattr(step, "signed", False) else maps


def _map_step_name(step):
    from sklearn.pipeline import FeatureUnion

    if _makes_residuals(step):
        return f"{type(step).__name__} residual"
    if isinstance(step, FeatureUnion):
        for _, branch in step.transformer_list:
            if branch is None or isinstance(branch, str):
                continue
            name = _chain_source(_flat_steps(branch), include_last=True)
            if name is not None:
                return name
        return None
    if hasattr(step, "anomaly_map"):
        return f"{type(step).__name__}.anomaly_map"
    return None


def _chain_source(steps, include_last):
    """Name of the step nearest the end of ``steps`` that gives a map, or None."""
    found = None
    for i, step in enumerate(steps):
        if i == len(steps) - 1 and not include_last:
            if hasattr(step, "anomaly_map"):
                found = f"{type(step).__name__}.anomaly_map"
            break
        name = _map_step_name(step)
        if name is not None:
            found = name
    return found


def _takes_images(steps):
    """Whether the fitted chain reads images (file paths or (n, H, W[, C]) arrays)."""
    first = steps[0]
    try:
        from .datasets import ImageReader
    except ImportError:  # pragma: no cover
        ImageReader = ()
    if isinstance(first, ImageReader):
        return True
    shape = getattr(first, "image_shape_", None)
    return shape is not None and len(shape) >= 2 and shape[0] > 1


def map_source(pipeline, method="auto"):
    """Where :func:`anomaly_maps` would take the maps of ``pipeline`` from.

    Parameters
    ----------
    pipeline : fitted estimator or Pipeline
        The fitted model whose maps are looked for.
    method : {"auto", "model", "occlusion"}, default="auto"
        As in :func:`anomaly_maps`.

    Returns
    -------
    source : str or None
        E.g. ``"CPCAEResidualMap residual"``, ``"PatchKNNScorer.anomaly_map"``,
        ``"KDEThresholdClassifier.anomaly_map"`` or ``"occlusion"``; None when no map can
        be made (a model on tables, or ``method="model"`` for a model without maps).
    """
    _check_choice(method, _METHODS, "method")
    steps = _flat_steps(pipeline)
    if method != "occlusion":
        found = _chain_source(steps, include_last=False)
        if found is not None or method == "model":
            return found
    return "occlusion" if _takes_images(steps) else None


def _check_choice(value, choices, name):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
