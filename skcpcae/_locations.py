# SPDX-License-Identifier: BSD-3-Clause
"""One anomaly map in numbers: the defective pixels at a threshold, the map's maximum and its
position, the defective area and the bounding boxes of the defect regions (re-exported by
:mod:`skcpcae.inspection`)."""

import numbers

import numpy as np


def defect_mask(anomaly_map, threshold):
    """The pixels of a map above a threshold (defective).

    Parameters
    ----------
    anomaly_map : array-like of shape (height, width)
        One anomaly map.
    threshold : float
        In the map's units (see ``map_threshold`` of :func:`inspect_images`).

    Returns
    -------
    mask : ndarray of shape (height, width), bool
        True where the map exceeds the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.inspection import defect_mask
    >>> defect_mask(np.array([[0.0, 2.0], [1.0, 3.0]]), 1.0).tolist()
    [[False, True], [False, True]]
    """
    amap = _check_map(anomaly_map)
    return amap > _check_threshold(threshold)


def location_summary(anomaly_map, threshold=None, *, max_regions=None):
    """Where a map says the defect is, in numbers.

    Parameters
    ----------
    anomaly_map : array-like of shape (height, width)
        Higher = more anomalous (one map of :func:`anomaly_maps`).
    threshold : float or None, default=None
        Pixels above it are defective, in the map's units. Without it only the maximum is
        reported.
    max_regions : int or None, default=None
        Keep the ``max_regions`` regions of largest peak value (``n_regions`` still counts
        them all).

    Returns
    -------
    summary : dict
        ``map_max`` (float), ``map_max_row``, ``map_max_col`` (int, the first pixel holding
        the maximum), ``height``, ``width``; with a threshold also ``map_threshold``,
        ``defect_area`` (pixels above the threshold), ``defect_fraction`` (of the image),
        ``n_regions`` (8-connected regions of such pixels) and ``regions``: one dict per
        region, by decreasing peak, with ``row``, ``col``, ``height``, ``width`` (its
        bounding box: top-left pixel and size), ``area`` (pixels), ``peak`` (largest map
        value) and ``peak_row``, ``peak_col``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.inspection import location_summary
    >>> m = np.zeros((6, 8)); m[1:3, 2:5] = 1.0; m[4, 7] = 2.0
    >>> s = location_summary(m, 0.5)
    >>> s["map_max"], s["map_max_row"], s["map_max_col"], s["defect_area"], s["n_regions"]
    (2.0, 4, 7, 7, 2)
    >>> [(r["row"], r["col"], r["height"], r["width"]) for r in s["regions"]]
    [(4, 7, 1, 1), (1, 2, 2, 3)]
    """
    amap = _check_map(anomaly_map)
    h, w = amap.shape
    flat_idx = int(np.argmax(amap))
    row, col = divmod(flat_idx, w)
    summary = {"map_max": float(amap[row, col]), "map_max_row": int(row),
               "map_max_col": int(col), "height": int(h), "width": int(w)}
    if threshold is None:
        return summary
    threshold = _check_threshold(threshold)
    if max_regions is not None and (not isinstance(max_regions, numbers.Integral)
                                    or max_regions < 0):
        raise ValueError(f"max_regions must be a non-negative integer or None, got "
                         f"{max_regions!r}.")
    mask = amap > threshold
    area = int(mask.sum())
    regions = _regions(amap, mask) if area else []
    summary.update(map_threshold=threshold, defect_area=area,
                   defect_fraction=area / float(h * w), n_regions=len(regions),
                   regions=regions if max_regions is None else regions[:max_regions])
    return summary


def _regions(amap, mask):
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    regions = []
    if n <= 1:
        return regions
    lab = labels.ravel()
    values = amap.ravel()
    order = np.argsort(lab, kind="stable")
    bounds = np.searchsorted(lab[order], np.arange(n + 1))
    w = amap.shape[1]
    for k in range(1, n):
        idx = order[bounds[k]:bounds[k + 1]]
        best = idx[np.argmax(values[idx])]
        x, y, bw, bh, area = (int(v) for v in stats[k])
        regions.append({"row": y, "col": x, "height": bh, "width": bw, "area": area,
                        "peak": float(values[best]), "peak_row": int(best // w),
                        "peak_col": int(best % w)})
    regions.sort(key=lambda r: (-r["peak"], r["row"], r["col"]))
    return regions


def _check_map(anomaly_map):
    amap = np.asarray(anomaly_map, dtype=np.float64)
    if amap.ndim != 2 or amap.size == 0:
        raise ValueError(f"anomaly_map must have shape (height, width); got {amap.shape}.")
    if not np.all(np.isfinite(amap)):
        raise ValueError("anomaly_map holds NaN or infinite values.")
    return amap


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not np.isfinite(
            threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    return float(threshold)
