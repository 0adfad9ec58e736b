# SPDX-License-Identifier: BSD-3-Clause
"""Figures for anomaly detection: heatmap overlays, reconstruction triplets, ROC / PR curves,
t-SNE of embeddings and the score histogram behind the KDE threshold.

matplotlib is an optional dependency (``pip install "skcpcae[plot]"``); it is imported inside
the functions that draw. :func:`overlay_heatmap` needs numpy only (the command line uses it to
write PNG overlays without matplotlib).

Every drawing function takes an optional ``ax`` (or ``axes``) and returns what it drew on. When
no axes are given a new figure is made with ``matplotlib.pyplot.subplots``, as scikit-learn's
``*Display.plot`` does; pass axes of a :class:`matplotlib.figure.Figure` to stay away from
pyplot entirely.
"""

import numbers

import numpy as np

__all__ = [
    "overlay_heatmap",
    "plot_anomaly_overlay",
    "plot_inspection",
    "plot_reconstruction_triplets",
    "plot_roc_pr",
    "plot_embedding_tsne",
    "plot_score_histogram",
]

_INSTALL_HINT = (
    'skcpcae.plotting needs matplotlib; install it with  pip install "skcpcae[plot]"  '
    "(or  pip install matplotlib)."
)


def _import_pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(_INSTALL_HINT) from exc
    return plt


def _new_axes(nrows=1, ncols=1, *, figsize=None, squeeze=True):
    plt = _import_pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=squeeze,
                             layout="constrained")
    return fig, axes


# ----------------------------------------------------------------------------- pure numpy


def _jet(x):
    """Matplotlib's ``jet`` colormap as a closed form: ``x`` in [0, 1] → RGB floats in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4.0 * x - 3.0), 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * x - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - np.abs(4.0 * x - 1.0), 0.0, 1.0)
    return np.stack([r, g, b], axis=-1)


def _as_float_image(image, name="image"):
    """An image as float32 in [0, 1] with the documented dtype conversions."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    elif img.dtype == np.bool_ or img.dtype.kind in "iuf":
        img = img.astype(np.float32)
    else:
        raise TypeError(f"{name} must be a numeric array, got dtype {img.dtype}.")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(
            f"{name} must have shape (height, width), (height, width, 3) or "
            f"(height, width, 4); got {img.shape}."
        )
    if img.ndim == 3:
        img = img[..., :3]
    return img


def _to_rgb(image):
    img = _as_float_image(image)
    img = np.clip(np.nan_to_num(img), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def _as_map(anomaly_map, shape=None):
    amap = np.asarray(anomaly_map, dtype=np.float32)
    if amap.ndim == 3 and amap.shape[2] in (1, 3, 4):
        amap = amap[..., :3].mean(axis=2) if amap.shape[2] > 1 else amap[..., 0]
    if amap.ndim != 2:
        raise ValueError(
            f"anomaly_map must have shape (height, width); got {np.shape(anomaly_map)}."
        )
    if shape is not None and amap.shape != tuple(shape):
        raise ValueError(
            f"anomaly_map has shape {amap.shape} but the image is {tuple(shape)} "
            "(height, width); compute the map at the image size (CPCAEResidualMap does)."
        )
    return np.nan_to_num(amap)


def _limits(amap, vmin, vmax):
    lo = float(np.min(amap)) if vmin is None else float(vmin)
    hi = float(np.max(amap)) if vmax is None else float(vmax)
    if not hi > lo:
        hi = lo + 1e-12
    return lo, hi


def overlay_heatmap(image, anomaly_map, *, alpha=0.5, vmin=None, vmax=None):
    """Blend an anomaly map, coloured with the ``jet`` colormap, onto an image (numpy only).

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3)
        Gray or RGB image, float in [0, 1] or ``uint8``.
    anomaly_map : ndarray of shape (height, width)
        Higher = more anomalous (e.g. a residual map of
        :class:`~skcpcae.residuals.CPCAEResidualMap`).
    alpha : float in [0, 1], default=0.5
        Weight of the heatmap in the blend.
    vmin, vmax : float, default=None
        Map values shown as the coldest and the hottest colour; default: the map's own
        minimum and maximum. Fix them to compare several images on one scale.

    Returns
    -------
    overlay : ndarray of shape (height, width, 3), uint8
        RGB image, ready for ``skcpcae.datasets.save_image`` or ``cv2.imwrite`` (after
        ``[..., ::-1]`` for OpenCV's BGR order).

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.plotting import overlay_heatmap
    >>> image = np.full((4, 4), 0.5)
    >>> amap = np.zeros((4, 4)); amap[0, 0] = 1.0
    >>> rgb = overlay_heatmap(image, amap, alpha=1.0)
    >>> rgb.shape, rgb.dtype.name
    ((4, 4, 3), 'uint8')
    >>> rgb[0, 0].tolist(), rgb[3, 3].tolist()  # hottest is dark red, coldest dark blue
    ([128, 0, 0], [0, 0, 128])
    """
    if not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    rgb = _to_rgb(image)
    amap = _as_map(anomaly_map, rgb.shape[:2])
    lo, hi = _limits(amap, vmin, vmax)
    heat = _jet((amap - lo) / (hi - lo))
    out = (1.0 - alpha) * rgb + alpha * heat
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- matplotlib


def plot_anomaly_overlay(
    image,
    anomaly_map,
    *,
    ax=None,
    alpha=0.5,
    cmap="jet",
    vmin=None,
    vmax=None,
    colorbar=True,
    title=None,
):
    """Show an anomaly map as a semi-transparent heatmap over its image.

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3)
        Gray or RGB image, float in [0, 1] or ``uint8``.
    anomaly_map : ndarray of shape (height, width)
        Higher = more anomalous.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    alpha : float, default=0.5
        Opacity of the heatmap.
    cmap : str or Colormap, default="jet"
        Colormap of the heatmap.
    vmin, vmax : float, default=None
        Colour limits of the heatmap (default: the map's range).
    colorbar : bool, default=True
        Add a colour bar labelled "anomaly".
    title : str, default=None
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.
    """
    rgb = _to_rgb(image)
    amap = _as_map(anomaly_map, rgb.shape[:2])
    if ax is None:
        _, ax = _new_axes(figsize=(4.5, 4))
    lo, hi = _limits(amap, vmin, vmax)
    ax.imshow(rgb, interpolation="nearest")
    im = ax.imshow(amap, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi, interpolation="bilinear")
    if colorbar:
        from matplotlib.cm import ScalarMappable

        # an opaque colour bar (the overlay's alpha would wash it out)
        ax.figure.colorbar(ScalarMappable(norm=im.norm, cmap=im.cmap), ax=ax,
                           fraction=0.046, pad=0.04, label="anomaly")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


def plot_inspection(
    image,
    anomaly_map,
    *,
    name=None,
    score=None,
    threshold=None,
    decision=None,
    map_threshold=None,
    vmin=None,
    vmax=None,
    units="anomaly map",
    alpha=0.5,
    cmap="jet",
    axes=None,
):
    """Plot one image as a person reads it: the image and its anomaly map.

    The anomaly map has a colour bar; the file name, score, threshold and decision are
    written on the figure.

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3)
        Gray or RGB image, float in [0, 1] or ``uint8``.
    anomaly_map : ndarray of shape (height, width)
        Higher = more anomalous, over ``image`` (see ``skcpcae.inspection.anomaly_maps``).
    name : str, default=None
        File name shown in the title.
    score, threshold : float, default=None
        The image's anomaly score and the model's threshold on it
        (``skcpcae.inspection.decision_threshold``).
    decision : str, default=None
        E.g. ``"ok"`` / ``"defect"``; by default ``score > threshold`` when both are given.
    map_threshold : float, default=None
        Threshold in the map's units: marked on the colour bar, and the defect region (pixels
        above it) outlined in white.
    vmin, vmax : float, default=None
        Colour limits; default: this map's own range (per-image scaling). Give the same
        values to every image of a run to compare them on one scale.
    units : str, default="anomaly map"
        Label of the colour bar (the map's units, e.g. ``"CPCAEResidualMap residual"``).
    alpha : float, default=0.5
        Opacity of the map over the image.
    cmap : str, default="jet"
        Colormap.
    axes : pair of matplotlib Axes, default=None
        ``(ax_image, ax_map)``; a new figure when None.

    Returns
    -------
    axes : ndarray of two matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from skcpcae.plotting import plot_inspection
    >>> amap = np.zeros((16, 16)); amap[4:8, 4:8] = 2.0
    >>> fig = Figure()
    >>> axes = plot_inspection(np.full((16, 16), 0.5), amap, name="a.png", score=3.1,
    ...                        threshold=2.5, map_threshold=1.0, axes=fig.subplots(1, 2))
    >>> fig.texts[0].get_text()
    'a.png: DEFECT (score 3.1 > threshold 2.5)'
    """
    rgb = _to_rgb(image)
    amap = _as_map(anomaly_map, rgb.shape[:2])
    if axes is None:
        fig, axes = _new_axes(1, 2, figsize=(8.5, 4))
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError("axes must be a pair of axes (ax_image, ax_map).")
    ax_img, ax_map = axes
    fig = ax_img.figure
    lo, hi = _limits(amap, vmin, vmax)
    ax_img.imshow(rgb, interpolation="nearest")
    ax_img.set_title("image")
    ax_map.imshow(rgb, interpolation="nearest")
    im = ax_map.imshow(amap, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi,
                       interpolation="bilinear")
    from matplotlib.cm import ScalarMappable

    bar = fig.colorbar(ScalarMappable(norm=im.norm, cmap=im.cmap), ax=ax_map, fraction=0.046,
                       pad=0.04)
    bar.set_label(units)
    if map_threshold is not None:
        if lo <= map_threshold <= hi:
            bar.ax.axhline(map_threshold, color="white", lw=2)
            bar.ax.axhline(map_threshold, color="black", lw=1, ls="--")
        if np.any(amap > map_threshold) and np.any(amap <= map_threshold):
            ax_map.contour(amap > map_threshold, levels=[0.5], colors="white", linewidths=1.2)
    peak = np.unravel_index(int(np.argmax(amap)), amap.shape)
    ax_map.plot(peak[1], peak[0], marker="+", color="white", ms=12, mew=2)
    ax_map.set_title(f"anomaly map (max {float(amap.max()):.4g}"
                     + (f", defect pixels > {map_threshold:.4g}" if map_threshold is not None
                        else "") + ")", fontsize="medium")
    for ax in axes:
        ax.set_axis_off()
    if decision is None and score is not None and threshold is not None:
        decision = "defect" if score > threshold else "ok"
    parts = []
    if decision is not None:
        parts.append(str(decision).upper())
    if score is not None:
        comparison = ""
        if threshold is not None:
            sign = ">" if score > threshold else "<="
            comparison = f" {sign} threshold {threshold:.4g}"
        parts.append(f"(score {score:.4g}{comparison})")
    head = f"{name}: " if name else ""
    text = head + " ".join(parts) if parts else (name or "")
    if text:
        color = "tab:red" if str(decision).lower() == "defect" else "black"
        fig.suptitle(text, color=color, fontsize="large")
    return axes


def plot_reconstruction_triplets(
    images,
    reconstructions,
    anomaly_maps,
    *,
    n=4,
    axes=None,
    titles=None,
    cmap="jet",
    vmin=None,
    vmax=None,
):
    """Plot rows of input / reconstruction / anomaly map (Saeedi & Giusti 2023, Figs. 11-12).

    Parameters
    ----------
    images : array-like of shape (n_samples, height, width[, 3])
        Inputs of the autoencoder.
    reconstructions : array-like, same shape as ``images``
        Their reconstructions (e.g. ``CPCAEResidualMap.reconstruct(images)``).
    anomaly_maps : array-like of shape (n_samples, height, width[, channels])
        Residual maps (channels are averaged).
    n : int, default=4
        Number of rows (the first ``n`` samples).
    axes : ndarray of matplotlib Axes of shape (n, 3), default=None
        Axes to draw on; a new figure when None.
    titles : list of str, default=None
        One label per row (e.g. file names or "good"/"defect"), shown left of the row.
    cmap : str, default="jet"
        Colormap of the anomaly maps.
    vmin, vmax : float, default=None
        Colour limits of the anomaly maps; by default one scale for all rows (the range of
        the ``n`` maps shown), so that good and defective parts can be compared.

    Returns
    -------
    axes : ndarray of matplotlib Axes of shape (n, 3)
        One row per image: input, reconstruction, residual.
    """
    images = np.asarray(images)
    reconstructions = np.asarray(reconstructions)
    anomaly_maps = np.asarray(anomaly_maps)
    if not (len(images) == len(reconstructions) == len(anomaly_maps)):
        raise ValueError(
            "images, reconstructions and anomaly_maps must have the same number of samples; "
            f"got {len(images)}, {len(reconstructions)}, {len(anomaly_maps)}."
        )
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    n = min(int(n), len(images))
    if n == 0:
        raise ValueError("Nothing to plot: no samples were given.")
    if axes is None:
        _, axes = _new_axes(n, 3, figsize=(7.5, 2.4 * n + 0.4), squeeze=False)
    axes = np.asarray(axes, dtype=object).reshape(n, 3)
    maps = [_as_map(anomaly_maps[i], _to_rgb(images[i]).shape[:2]) for i in range(n)]
    lo, hi = _limits(np.stack(maps), vmin, vmax)
    for i in range(n):
        img = _to_rgb(images[i])
        rec = _to_rgb(reconstructions[i])
        axes[i, 0].imshow(img, interpolation="nearest")
        axes[i, 1].imshow(rec, interpolation="nearest")
        im = axes[i, 2].imshow(maps[i], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        axes[i, 2].figure.colorbar(im, ax=axes[i, 2], fraction=0.046, pad=0.04)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            axes[i, 0].set_ylabel(str(titles[i]))
    for ax, label in zip(axes[0], ("input", "reconstruction", "anomaly map"), strict=True):
        ax.set_title(label)
    return axes


def plot_roc_pr(y_true, anomaly_score, *, ax=None, label=None, threshold=None):
    """ROC and precision-recall curves, anomalous = positive, with AUROC / AP in the legends.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 normal / 1 anomalous, or +1 normal / -1 anomalous.
    anomaly_score : array-like of shape (n_samples,)
        Higher = more anomalous (e.g. ``-pipe.score_samples(X)``).
    ax : pair of matplotlib Axes, default=None
        ``(ax_roc, ax_pr)``; they may belong to two figures. A new figure with two panels
        when None.
    label : str, default=None
        Name of the model in the legends (several calls on the same axes compare models).
    threshold : float, default=None
        The model's threshold on the anomaly score
        (``skcpcae.inspection.decision_threshold``): its operating point (a sample is
        flagged when its score is above it) is marked on both curves, with its false-positive
        rate, recall and precision in the legends.

    Returns
    -------
    axes : ndarray of two matplotlib Axes
        ``(ax_roc, ax_pr)``.
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    from ..metrics import to_anomaly_labels

    y = to_anomaly_labels(y_true)
    s = np.asarray(anomaly_score, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"anomaly_score has shape {s.shape}, y_true has {y.shape}.")
    if len(np.unique(y)) < 2:
        raise ValueError("ROC / PR curves need both normal and anomalous samples in y_true.")
    if ax is None:
        _, ax = _new_axes(1, 2, figsize=(9, 4))
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError("ax must be a pair of axes (ax_roc, ax_pr).")
    ax_roc, ax_pr = axes
    fpr, tpr, _ = roc_curve(y, s)
    auroc = float(roc_auc_score(y, s))
    prefix = f"{label}, " if label else ""
    line, = ax_roc.plot(fpr, tpr, lw=2, label=f"{prefix}AUROC = {auroc:.3f}")
    point = None
    if threshold is not None:
        flagged = s > float(threshold)
        tp, fp = int(np.sum(flagged & (y == 1))), int(np.sum(flagged & (y == 0)))
        point = (fp / max(1, int(np.sum(y == 0))), tp / max(1, int(np.sum(y == 1))),
                 tp / max(1, tp + fp))
        ax_roc.plot(point[0], point[1], "o", ms=9, mfc="none", mew=2, color=line.get_color(),
                    label=f"threshold {float(threshold):.4g}: FPR {point[0]:.3f}, "
                    f"TPR {point[1]:.3f}")
    if not _has_chance_line(ax_roc):  # the first curve on these axes draws the chance level
        ax_roc.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="chance (0.5)")
    ax_roc.set_xlabel("false positive rate (good parts flagged)")
    ax_roc.set_ylabel("true positive rate (defects found)")
    ax_roc.set_title("ROC curve")
    ax_roc.set_xlim(-0.01, 1.01)
    ax_roc.set_ylim(-0.01, 1.01)
    ax_roc.legend(loc="lower right")
    ax_roc.grid(alpha=0.3)

    precision, recall, _ = precision_recall_curve(y, s)
    ap = float(average_precision_score(y, s))
    step, = ax_pr.step(recall, precision, where="post", lw=2, label=f"{prefix}AP = {ap:.3f}")
    if point is not None:
        ax_pr.plot(point[1], point[2], "o", ms=9, mfc="none", mew=2, color=step.get_color(),
                   label=f"threshold {float(threshold):.4g}: recall {point[1]:.3f}, "
                   f"precision {point[2]:.3f}")
    if not _has_chance_line(ax_pr):
        prevalence = float(y.mean())
        ax_pr.axhline(prevalence, ls="--", color="gray", lw=1,
                      label=f"chance ({prevalence:.2f})")
    ax_pr.set_xlabel("recall (defects found)")
    ax_pr.set_ylabel("precision (flagged that are defects)")
    ax_pr.set_title("Precision-recall curve")
    ax_pr.set_xlim(-0.01, 1.01)
    ax_pr.set_ylim(-0.01, 1.05)
    ax_pr.legend(loc="lower left")
    ax_pr.grid(alpha=0.3)
    return axes


def _has_chance_line(ax):
    return any(str(line.get_label()).startswith("chance") for line in ax.get_lines())


def _label_names(y):
    y = np.asarray(y)
    values = np.unique(y)
    names = {v: str(v) for v in values.tolist()}
    as_set = set(values.tolist())
    if y.dtype.kind in "biu" or y.dtype == bool:
        if as_set <= {0, 1}:
            names = {0: "normal", 1: "anomalous"}
        elif as_set <= {-1, 1}:
            names = {1: "normal", -1: "anomalous"}
    return values, names


def plot_embedding_tsne(embeddings, y, *, ax=None, random_state=0, perplexity=None,
                        title="t-SNE of the embeddings"):
    """2-D t-SNE of embeddings, coloured by label (Saeedi & Giusti 2023, Figs. 9-10).

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        E.g. the output of :class:`~skcpcae.embedding.DeepPoolEmbedder` (``pipe[:-1]``).
    y : array-like of shape (n_samples,)
        Labels: 0 / 1 are shown as "normal" / "anomalous" (also +1 / -1); any other values
        (e.g. defect types) are shown as they are.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    random_state : int, default=0
        Seed of :class:`sklearn.manifold.TSNE`.
    perplexity : float, default=None
        The t-SNE perplexity; default ``min(30, (n_samples - 1) / 3)``.
    title : str, default="t-SNE of the embeddings"
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.
    """
    from sklearn.manifold import TSNE

    Z = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(y)
    if Z.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n_samples, n_features); got {Z.shape}.")
    if len(y) != len(Z):
        raise ValueError(f"y has {len(y)} labels for {len(Z)} embeddings.")
    if len(Z) < 4:
        raise ValueError(f"t-SNE needs at least 4 samples; got {len(Z)}.")
    if perplexity is None:
        perplexity = min(30.0, (len(Z) - 1) / 3.0)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca",
              random_state=random_state).fit_transform(Z)
    if ax is None:
        _, ax = _new_axes(figsize=(5.5, 5))
    values, names = _label_names(y)
    markers = "o^sDvP*X"
    for i, v in enumerate(values.tolist()):
        sel = y == v
        ax.scatter(xy[sel, 0], xy[sel, 1], s=22, alpha=0.8, marker=markers[i % len(markers)],
                   label=f"{names.get(v, v)} ({int(sel.sum())})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(title)
    ax.legend(loc="best")
    return ax


def _find_threshold_estimator(estimator):
    """The KDEThresholdClassifier-like object: itself, or the last step of a pipeline."""
    est = estimator
    if hasattr(est, "steps") and not hasattr(est, "train_scores_"):
        est = est.steps[-1][1]
    if not hasattr(est, "train_scores_"):
        raise TypeError(
            "plot_score_histogram needs training anomaly scores: pass an array of scores, a "
            "fitted KDEThresholdClassifier, or a pipeline ending in one; got "
            f"{type(estimator).__name__}."
        )
    return est


def _kde_density(kde, grid):
    """Evaluate a fitted KDE (skcpcae's 1-D KDE or scipy ``gaussian_kde`` via ``pdf``,
    sklearn's ``KernelDensity`` via ``score_samples``, or a callable)."""
    if hasattr(kde, "pdf"):
        return np.asarray(kde.pdf(grid), dtype=float)
    if hasattr(kde, "score_samples"):
        return np.exp(kde.score_samples(grid[:, None]))
    if callable(kde):
        return np.asarray(kde(grid), dtype=float)
    raise TypeError(f"Cannot evaluate a KDE of type {type(kde).__name__}.")


def plot_score_histogram(
    threshold_estimator_or_scores,
    *,
    threshold=None,
    test_scores=None,
    test_labels=None,
    ax=None,
    bins="auto",
    log_scale="auto",
    title="Training anomaly scores and threshold",
):
    """Histogram of the training anomaly scores, their KDE and the decision threshold.

    Parameters
    ----------
    threshold_estimator_or_scores : KDEThresholdClassifier, Pipeline or array-like
        A fitted :class:`~skcpcae.outlier.KDEThresholdClassifier` (its ``train_scores_``,
        ``kde_`` and ``threshold_`` are drawn), a pipeline ending in one, or an array of
        anomaly scores (higher = more anomalous).
    threshold : float, default=None
        Threshold on the anomaly score; taken from the estimator when one is given.
    test_scores : array-like of shape (n_test,), default=None
        Anomaly scores of other samples to overlay (e.g. a labelled test set).
    test_labels : array-like of shape (n_test,), default=None
        0 / 1 labels of ``test_scores``; they are drawn as two histograms when given.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when None.
    bins : int or str, default="auto"
        Histogram bins (``numpy.histogram_bin_edges``), shared by all histograms.
    log_scale : bool or "auto", default="auto"
        Draw ``log10`` of the scores (histograms, KDE and threshold all in log units).
        ``"auto"`` does so when every score is positive and they span more than three
        orders of magnitude, as k-NN squared distances often do.
    title : str, default="Training anomaly scores and threshold"
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.
    """
    if log_scale not in (True, False, "auto"):
        raise ValueError(f"log_scale must be True, False or 'auto'; got {log_scale!r}.")
    kde = None
    if isinstance(threshold_estimator_or_scores, (np.ndarray, list, tuple)):
        scores = np.asarray(threshold_estimator_or_scores, dtype=float).ravel()
    else:
        est = _find_threshold_estimator(threshold_estimator_or_scores)
        scores = np.asarray(est.train_scores_, dtype=float).ravel()
        kde = getattr(est, "kde_", None)
        if threshold is None:
            from ..inspection import decision_threshold

            threshold = decision_threshold(est)
    if scores.size == 0:
        raise ValueError("No scores to plot.")
    if test_scores is not None:
        test_scores = np.asarray(test_scores, dtype=float).ravel()
    all_scores = [scores] + ([test_scores] if test_scores is not None else [])
    values = np.concatenate(all_scores + ([[threshold]] if threshold is not None else []))
    positive = bool(np.all(values > 0))
    if log_scale == "auto":
        log_scale = positive and float(values.max()) / float(values.min()) > 1e3
    elif log_scale and not positive:
        raise ValueError("log_scale=True needs positive anomaly scores (and threshold).")
    # with log_scale everything is drawn in log10 units, densities included
    fwd = np.log10 if log_scale else (lambda v: v)
    scores_u = fwd(scores)
    test_u = fwd(test_scores) if test_scores is not None else None
    threshold_u = float(fwd(threshold)) if threshold is not None else None
    values_u = fwd(values)
    lo, hi = float(values_u.min()), float(values_u.max())
    span = hi - lo if hi > lo else max(1.0, abs(hi))
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    edges = np.histogram_bin_edges(np.concatenate([fwd(v) for v in all_scores]), bins=bins,
                                   range=(lo, hi))
    if ax is None:
        _, ax = _new_axes(figsize=(8, 4))
    ax.hist(scores_u, bins=edges, density=True, alpha=0.5, color="tab:blue",
            label=f"training ({scores.size})")
    if test_u is not None:
        if test_labels is None:
            ax.hist(test_u, bins=edges, density=True, histtype="step", lw=2,
                    color="tab:purple", label=f"test ({test_u.size})")
        else:
            from ..metrics import to_anomaly_labels

            lab = to_anomaly_labels(test_labels)
            if lab.shape != test_u.shape:
                raise ValueError(
                    f"test_labels has {lab.size} labels for {test_u.size} test scores."
                )
            for value, name, color in ((0, "test normal", "tab:green"),
                                       (1, "test anomalous", "tab:red")):
                sel = test_u[lab == value]
                if sel.size:
                    ax.hist(sel, bins=edges, density=True, histtype="step", lw=2,
                            color=color, label=f"{name} ({sel.size})")
    if kde is not None:
        grid = np.linspace(lo, hi, 400)
        if log_scale:  # density of log10(score): p(10**u) * 10**u * ln(10)
            density = _kde_density(kde, 10.0**grid) * 10.0**grid * np.log(10.0)
        else:
            density = _kde_density(kde, grid)
        if np.all(np.isfinite(density)):  # a degenerate KDE (zero bandwidth) has atoms
            ax.plot(grid, density, color="tab:blue", lw=2, label="KDE")
    if threshold is not None:
        ax.axvline(threshold_u, color="black", ls="--", lw=2,
                   label=f"threshold = {threshold:.4g}")
    ax.set_xlabel(("log10 " if log_scale else "")
                  + "anomaly score (higher = more anomalous)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return ax
