# SPDX-License-Identifier: BSD-3-Clause
"""Ready-made pipelines ("presets"): the paper's CPCAE pipeline and its comparators."""

from sklearn.pipeline import make_pipeline

__all__ = [
    "PRESETS",
    "make_best_pipeline",
    "make_cpcae_pipeline",
    "make_deep_feature_pipeline",
    "make_preset",
    "make_union_pipeline",
]


def _preprocessing_steps(register, gamma):
    """``[ECCRegistrar] [AdaptiveGamma]``, as asked."""
    from .preprocessing import AdaptiveGamma, ECCRegistrar

    return ([ECCRegistrar()] if register else []) + ([AdaptiveGamma()] if gamma else [])


def _assemble(steps, params):
    """``make_pipeline(*steps)`` with the ``step__param`` overrides applied."""
    pipe = make_pipeline(*steps)
    if params:
        pipe.set_params(**params)
    return pipe


def _scoring_steps(n_neighbors, threshold, alpha, random_state, peak_weight=0.0):
    """FlooredStandardScaler → k-NN, thresholded as one unit.

    The scaler sits *inside* the threshold wrapper: the wrapper cross-fits everything it wraps,
    so the held-out scores its KDE sees come from a scaler that never saw those samples. With
    the scaler outside, the promised false-alarm rate doubles on ELPV (benchmarks/threshold.py).
    The scaler's floor keeps near-dead CNN channels (fired by one or two training images)
    from dominating the distances: without it, leave-one-out scores reach 1e16, the threshold
    at alpha = 0.01 lands among them, and an exported model drifts by 1e-3 in relative score.
    """
    from .outlier import FusedKNNScorer, KDEThresholdClassifier, KNNAnomalyScorer
    from .preprocessing import FlooredStandardScaler

    scorer = (FusedKNNScorer(n_neighbors=n_neighbors, weight=peak_weight) if peak_weight
              else KNNAnomalyScorer(n_neighbors=n_neighbors))
    if not threshold:
        return [FlooredStandardScaler(), scorer]
    inner = make_pipeline(FlooredStandardScaler(), scorer)
    return [KDEThresholdClassifier(inner, alpha=alpha, random_state=random_state)]


def make_cpcae_pipeline(
    *,
    register=True,
    gamma=True,
    threshold=True,
    n_neighbors=3,
    peak_weight="auto",
    peak_polarity="dark",
    peak_sigma=2.0,
    alpha=0.05,
    random_state=0,
    verbose=0,
    **params,
):
    """The paper's pipeline: ECC → gamma → CPCAE residual map → deep pooling → scaler → k-NN.

    The residual map's peak is fused into the score (``peak_weight``, below).

    The residual map is the *relative* residual ``|x - x_hat| / x_hat``, exposed for the CNN
    (``gain="auto"``: the 99th percentile of the training residuals maps to 1, since a raw
    residual map is a nearly black image), and it is embedded from EfficientNet-Lite0's
    mid-level stages 2 and 3 (strides 8 and 16) with the parallel+cascade head: the
    configuration ranked first on validation data by ``benchmarks/select_cpcae.py``
    (its tables are in ``docs/benchmarks.md``).

    **The residual map's peak.** A pooled embedding averages a small defect away. With
    ``peak_weight > 0`` (the default) the autoencoder's map is kept signed
    (``CPCAEResidualMap(signed=True, gain=None)``) and read twice, in a
    :class:`~sklearn.pipeline.FeatureUnion`: exposed for the CNN as before
    (:class:`~skcpcae.residuals.ResidualExposure`, then the embedder), and as one score
    column, the largest value of its dark part smoothed and standardized per pixel position
    (:class:`~skcpcae.residuals.ResidualPeak`). The last step,
    :class:`~skcpcae.outlier.FusedKNNScorer`, averages the embedding's k-NN score and the
    peak, each in units of its training scores. The peak of the *dark* residual, fused at
    weight 0.5, ranked first on six fit / validation splits of ELPV's training cells and was
    ahead of the embedding alone on every split, mono and poly
    (``benchmarks/select_cpcae.py --phase peak``); after adaptive gamma (the ``paper``
    preset) weight 0.25 ranked first (``--phase peak --gamma``). ``peak_weight=0`` builds the pipeline
    without it (``CPCAEResidualMap(gain="auto") → DeepPoolEmbedder → scaler → k-NN``); both
    forms export to ONNX (:func:`skcpcae.export.to_onnx`).

    Parameters
    ----------
    register : bool, default=True
        Start with :class:`~skcpcae.preprocessing.ECCRegistrar` (skip for pre-aligned data).
    gamma : bool, default=True
        Include :class:`~skcpcae.preprocessing.AdaptiveGamma`.
    threshold : bool, default=True
        Wrap scaler + k-NN in :class:`~skcpcae.outlier.KDEThresholdClassifier` so that
        ``predict`` uses the KDE threshold (false-alarm rate ``alpha``). Without it the
        pipeline ends ``FlooredStandardScaler → KNNAnomalyScorer``.
    n_neighbors : int, default=3
        ``k`` of the k-NN scorer (eq. 6). The paper uses 15; on ELPV's validation cells
        ``k=3`` ranked first for the residual embedding (a bank of a few hundred images:
        a large ``k`` averages the nearest normals with far ones), see
        ``benchmarks/select_cpcae.py --phase scorer``.
    peak_weight : float in [0, 1] or "auto", default="auto"
        Weight of the residual map's peak in the score (0: the embedding's k-NN alone,
        without the peak branch). ``"auto"``: 0.5 on the map of the image itself, 0.25 after
        :class:`~skcpcae.preprocessing.AdaptiveGamma` (``gamma=True``), each the first on
        validation data for that input (``benchmarks/select_cpcae.py --phase peak`` and
        ``--phase peak --gamma``: after the gamma correction, the peak helps mono cells and
        costs poly cells, so it weighs less).
    peak_polarity : {"dark", "bright", "both"}, default="dark"
        The part of the signed residual whose peak is read: where the image is darker than
        its reconstruction (cracks, dead areas of electroluminescence images; ranked first
        on ELPV), brighter, or either (parts whose defects may be bright).
    peak_sigma : float, default=2.0
        Gaussian smoothing of the map before its peak is read, in pixels of the input.
    alpha : float, default=0.05
        Target false-alarm rate of the threshold.
    random_state : int, default=0
        Seed of the autoencoder and of the threshold's cross-fitting.
    verbose : int, default=0
        Progress of the slow stages.
    **params : dict
        ``step__param`` overrides, applied with ``set_params`` (e.g.
        ``cpcaeresidualmap__max_epochs=5``). The steps inside the peak branch's
        :class:`~sklearn.pipeline.FeatureUnion` keep their short names here
        (``deeppoolembedder__stages=(3,)``), and ``knnanomalyscorer__`` reaches the fused
        scorer that takes its place; on the built pipeline their paths are
        ``featureunion__embedding__deeppoolembedder__...``, ``featureunion__residualpeak__...``
        and ``...__fusedknnscorer__...``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The unfitted pipeline; ``fit`` it on normal images.
    """
    from sklearn.pipeline import FeatureUnion

    from .embedding import DeepPoolEmbedder
    from .residuals import CPCAEResidualMap, ResidualExposure, ResidualPeak

    if isinstance(peak_weight, str) and peak_weight == "auto":
        peak_weight = 0.25 if gamma else 0.5
    elif isinstance(peak_weight, str) or not 0 <= peak_weight <= 1:
        raise ValueError(f"peak_weight must be in [0, 1] or 'auto', got {peak_weight!r}.")
    steps = _preprocessing_steps(register, gamma)
    # Defaults from benchmarks/select_cpcae.py (validation data only): the relative residual,
    # exposed for the CNN (gain="auto"), embedded from stages 2+3 under the parallel+cascade
    # head, scored with k=3; its dark peak fused at weight 0.5 (--phase peak).
    embedder = DeepPoolEmbedder(stages=(2, 3), pooling="parallel_cascade",
                                random_state=random_state, verbose=verbose)
    if not peak_weight:
        steps.append(CPCAEResidualMap(residual="relative", gain="auto",
                                      random_state=random_state, verbose=verbose))
        steps.append(embedder)
    else:
        steps.append(CPCAEResidualMap(residual="relative", gain=None, signed=True,
                                      random_state=random_state, verbose=verbose))
        steps.append(FeatureUnion([
            ("embedding", make_pipeline(ResidualExposure(), embedder)),
            ("residualpeak", ResidualPeak(peak_polarity, sigma=peak_sigma,
                                          random_state=random_state)),
        ]))
        # the embedder's and the peak's overrides keep the short names they have without
        # the union (``deeppoolembedder__stages=...``, ``residualpeak__sigma=...``)
        params = {_UNION_PATHS.get(key.split("__", 1)[0], "") + key: value
                  for key, value in params.items()}
        # the k-NN's overrides keep their path of the pipeline without the peak
        # (``kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors=5``)
        params = {key.replace("knnanomalyscorer__", "fusedknnscorer__"): value
                  for key, value in params.items()}
    steps.extend(_scoring_steps(n_neighbors, threshold, alpha, random_state, peak_weight))
    return _assemble(steps, params)


#: Where the steps of the CPCAE presets' peak branch sit (``make_cpcae_pipeline``).
_UNION_PATHS = {
    "deeppoolembedder": "featureunion__embedding__",
    "residualexposure": "featureunion__embedding__",
    "residualpeak": "featureunion__",
}


def make_deep_feature_pipeline(*, n_neighbors=15, pooling="max", threshold=False, alpha=0.05,
                               random_state=0, verbose=0, **params):
    """Build the paper's "deep feature" comparator.

    Pretrained CNN on the raw image → max pool → scaler → k-NN (k = 15).

    Parameters
    ----------
    n_neighbors : int, default=15
        ``k`` of the k-NN scorer.
    pooling : str, default="max"
        Pooling head of :class:`~skcpcae.embedding.DeepPoolEmbedder`.
    threshold : bool, default=False
        Wrap scaler + k-NN in :class:`~skcpcae.outlier.KDEThresholdClassifier`.
    alpha : float, default=0.05
        Target false-alarm rate of the threshold.
    random_state : int, default=0
        Seed of the random initialisations and of the threshold's cross-fitting.
    verbose : int, default=0
        Progress of the slow stages.
    **params : dict
        ``step__param`` overrides, applied with ``set_params``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The unfitted pipeline; ``fit`` it on normal images.
    """
    from .embedding import DeepPoolEmbedder

    steps = [DeepPoolEmbedder(pooling=pooling, random_state=random_state, verbose=verbose),
             *_scoring_steps(n_neighbors, threshold, alpha, random_state)]
    return _assemble(steps, params)


def make_union_pipeline(*, register=False, gamma=False, threshold=True, n_neighbors=15,
                        alpha=0.05, cv=5, random_state=0, verbose=0, **params):
    """Raw-image and CPCAE residual-map embeddings in a ``FeatureUnion``, then k-NN.

    The best *pooled-embedding* pipeline found by ``benchmarks/select_preset.py``
    (validation data only). A :class:`~sklearn.pipeline.FeatureUnion` of two embeddings,
    both from the mid-level stages 3 and 4 (strides 16 and 32) of EfficientNet-Lite0:

    * the image itself, with the parallel+cascade pooling head;
    * the CPCAE residual map (cross-fitted with ``cv``), with global max + average pooling;

    then ``FlooredStandardScaler → k-NN`` (thresholded by the KDE when ``threshold``). Mid-level
    features see cracks and spots that the 1280-channel head map of the paper's comparator
    averages away; the residual branch adds what the autoencoder could not reconstruct.

    Parameters
    ----------
    register, gamma : bool, default=False
        Put :class:`~skcpcae.preprocessing.ECCRegistrar` / :class:`~skcpcae.preprocessing.AdaptiveGamma` first. The
        selection ran on ELPV, whose cells are aligned and evenly lit; turn these on for parts
        that move or shine.
    threshold : bool, default=True
        Wrap scaler + k-NN in :class:`~skcpcae.outlier.KDEThresholdClassifier`, as in
        :func:`make_cpcae_pipeline`.
    n_neighbors : int, default=15
        ``k`` of the k-NN scorer.
    alpha : float, default=0.05
        Target false-alarm rate of the threshold.
    cv : int or None, default=5
        Cross-fitting folds of the autoencoder.
    random_state : int, default=0
        Seed of the random initialisations and of the threshold's cross-fitting.
    verbose : int, default=0
        Progress of the slow stages.
    **params : dict
        ``step__param`` overrides, applied with ``set_params``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The unfitted pipeline; ``fit`` it on normal images.
    """
    from sklearn.pipeline import make_union

    from .embedding import DeepPoolEmbedder
    from .residuals import CPCAEResidualMap

    steps = _preprocessing_steps(register, gamma)
    union = make_union(
        DeepPoolEmbedder(stages=(3, 4), pooling="parallel_cascade",
                         random_state=random_state, verbose=verbose),
        make_pipeline(
            # the residual as selected for this preset (benchmarks/select_preset.py)
            CPCAEResidualMap(residual="absolute", gain=None, cv=cv,
                             random_state=random_state, verbose=verbose),
            DeepPoolEmbedder(stages=(3, 4), pooling="max+avg", random_state=random_state,
                             verbose=verbose),
        ),
    )
    steps.append(union)
    steps.extend(_scoring_steps(n_neighbors, threshold, alpha, random_state))
    return _assemble(steps, params)


def make_best_pipeline(*, register=False, gamma=False, threshold=True, stages=(3, 4),
                       n_neighbors=3, radius=0, top_k=30, n_retrieve=20, global_weight=0.25,
                       position_norm="zscore", alpha=0.05, random_state=0, verbose=0,
                       **params):
    """The best pipeline found by ``benchmarks/select_patch.py`` (validation data only).

    Patch features of the image (EfficientNet-Lite0 stages 3 and 4, strides 16 and 32,
    averaged over 3x3 neighbourhoods: :class:`~skcpcae.embedding.DeepPatchEmbedder`), each
    compared with the patches *at the same place* on the normal parts
    (:class:`~skcpcae.outlier.PatchKNNScorer`: mean distance to the 3 nearest); the image
    score is the mean of its ``top_k = 30`` worst patch distances (of 361 on a 300x300
    image), thresholded by the KDE when ``threshold``. The patch
    distances are the anomaly map (``anomaly_map``, and ``skcpcae score --heatmaps``).

    The conditioning on position is the idea of the paper's conditional autoencoder,
    moved to the nearest-neighbour search: a patch is judged against what is normal at its
    place, not anywhere on the part. It needs aligned parts (``register=True`` for parts
    that move, or ``radius`` for small shifts). On validation data it beat every pooled
    embedding, with or without the CPCAE residual map (``benchmarks/select_preset.py``,
    ``benchmarks/select_patch.py``); :func:`make_union_pipeline` is the best of those.

    Parameters
    ----------
    register, gamma : bool, default=False
        Put :class:`~skcpcae.preprocessing.ECCRegistrar` / :class:`~skcpcae.preprocessing.AdaptiveGamma` first.
    threshold : bool, default=True
        Wrap the scorer in :class:`~skcpcae.outlier.KDEThresholdClassifier` (false-alarm
        rate ``alpha``). The embedder stays outside the wrapper: it learns nothing, so the
        cross-fitting need not repeat it.
    stages : tuple of int, default=(3, 4)
        Backbone stages of :class:`~skcpcae.embedding.DeepPatchEmbedder`.
    n_neighbors : int, default=3
        Nearest normal patches averaged by :class:`~skcpcae.outlier.PatchKNNScorer`.
    radius : int, default=0
        Neighbourhood, in patches, searched around each place (for small shifts).
    top_k : int, default=30
        Worst patch distances averaged into the image score.
    n_retrieve : int or None, default=20
        Normal parts each part is compared with (the nearest by mean patch feature);
        ``None``: all of them.
    global_weight : float, default=0.25
        Weight of the global score in the image score (0: the patch score alone).
    position_norm : {"zscore"} or None, default="zscore"
        Standardise each patch distance by the normal parts' distances at its place (chosen
        on validation data: ``benchmarks/select_patch_ideas.py --phase position``); the
        anomaly map is then in units of each place's normal spread.
    alpha : float, default=0.05
        Target false-alarm rate of the threshold.
    random_state : int, default=0
        Seed of the random initialisations and of the threshold's cross-fitting.
    verbose : int, default=0
        Progress of the slow stages.
    **params : dict
        ``step__param`` overrides, applied with ``set_params``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The unfitted pipeline; ``fit`` it on normal images.
    """
    from .embedding import DeepPatchEmbedder
    from .outlier import KDEThresholdClassifier, PatchKNNScorer

    steps = _preprocessing_steps(register, gamma)
    steps.append(DeepPatchEmbedder(stages=stages, random_state=random_state, verbose=verbose))
    scorer = PatchKNNScorer(n_neighbors=n_neighbors, radius=radius, top_k=top_k,
                            n_retrieve=n_retrieve, global_weight=global_weight,
                            position_norm=position_norm)
    if threshold:
        scorer = KDEThresholdClassifier(scorer, alpha=alpha, random_state=random_state)
    steps.append(scorer)
    return _assemble(steps, params)


#: The named presets, ``{name: (factory, default keyword arguments)}``, shared by
#: :func:`make_preset` and ``skcpcae fit --preset NAME``.
PRESETS = {
    "paper": (make_cpcae_pipeline, {}),
    # No registration (the parts come aligned) and no gamma: AdaptiveGamma before the
    # autoencoder lowered validation AUROC on ELPV (benchmarks/select_cpcae.py, "gamma-first").
    "aligned": (make_cpcae_pipeline, {"register": False, "gamma": False}),
    "deep-feature": (make_deep_feature_pipeline, {"threshold": True}),
    "union": (make_union_pipeline, {}),
    "best": (make_best_pipeline, {}),
}


def make_preset(name, **params):
    """Build a named preset; ``params`` are ``step__param`` overrides.

    Presets: ``"paper"`` (the full pipeline), ``"aligned"`` (no registration, for parts that
    are already aligned such as ELPV cells), ``"deep-feature"`` (the comparator, thresholded),
    ``"union"`` (:func:`make_union_pipeline`: raw-image and residual-map embeddings of
    mid-level features), ``"best"`` (:func:`make_best_pipeline`: position-conditioned patch
    k-NN on mid-level features); both chosen on validation data.

    Parameters
    ----------
    name : {"paper", "aligned", "deep-feature", "union", "best"}
        The preset.
    **params : dict
        Keyword arguments of the preset's factory, or ``step__param`` overrides.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The unfitted pipeline.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    factory, defaults = PRESETS[name]
    return factory(**defaults, **params)
