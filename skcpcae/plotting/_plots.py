# SPDX-License-Identifier: BSD-3-Clause
"""Figures of images: heatmap overlays, the inspection figure and reconstruction triplets
(the figures of scores and embeddings are in ``_scores.py``).

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


