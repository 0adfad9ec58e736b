# SPDX-License-Identifier: BSD-3-Clause
"""Figures of scores and embeddings: ROC / PR curves, the t-SNE of embeddings and the
training-score histogram behind the KDE threshold (the conventions of :mod:`._plots`:
optional ``ax``, matplotlib imported inside)."""


import numpy as np

from ._plots import _new_axes

__all__ = ["plot_embedding_tsne", "plot_roc_pr", "plot_score_histogram"]


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

