# SPDX-License-Identifier: BSD-3-Clause
"""The work of ``skcpcae evaluate``: the labelled data (folders with masks, or the MVTec AD
layout) and the report (image and pixel metrics)."""

import numpy as np

from ._errors import CLIError
from ._inputs import _expand_inputs, _first_size, _load, _read_masks


def _evaluation_data(use_folders, good, defect, masks, mvtec, category, *, size_hw, color,
                     reads_files, verbose):
    """``(X, y, masks, data)`` of ``skcpcae evaluate``: the images (or their paths for a model
    that reads files), the labels (1 = defect), the defect masks or None, and what the report
    records about the data."""
    if use_folders:
        good_paths = _expand_inputs(good, role="good-image")
        defect_paths = _expand_inputs(defect, role="defect-image")
        paths = good_paths + defect_paths
        X = paths if reads_files else _load(paths, size=size_hw, color=color,
                                            verbose=verbose)
        y = np.r_[np.zeros(len(good_paths), int), np.ones(len(defect_paths), int)]
        data = {"good": [str(g) for g in good], "defect": [str(d) for d in defect]}
        masks_test = None
        if masks is not None:
            masks_test = _read_masks(masks, good_paths, defect_paths,
                                     size_hw or _first_size(X))
            data["masks"] = str(masks)
    else:
        from ..datasets import load_mvtec_ad

        try:
            bunch = load_mvtec_ad(mvtec, category, size=size_hw, color=color,
                                  verbose=verbose)
        except (OSError, ValueError) as exc:
            raise CLIError(f"Cannot read the MVTec AD data: {exc}") from None
        X = bunch.paths_test if reads_files else bunch.X_test
        y = bunch.y_test
        masks_test = bunch.masks_test
        data = {"mvtec": str(mvtec), "category": category}
    return X, y, masks_test, data


def _evaluation_report(pipe, X, y, masks_test, model, data):
    """``(report, anomaly_score, threshold)`` of ``skcpcae evaluate``: image metrics from
    :func:`skcpcae.metrics.evaluate`, pixel AUROC and AUPRO when there are masks."""
    from ..inspection import final_estimator, inspect_images
    from ..metrics import evaluate as evaluate_report

    pixel = masks_test is not None
    try:
        res = inspect_images(pipe, X, maps=pixel)
        report = evaluate_report(final_estimator(pipe), res.final_input, y)
        s = res.anomaly_score
    except ValueError as exc:
        raise CLIError(f"Cannot evaluate on these images: {exc}") from None
    threshold = res.threshold
    report = {"model": str(model), "data": data, "threshold": threshold, **report}
    if pixel:
        from ..metrics import aupro, pixel_auroc

        if res.anomaly_maps.shape != masks_test.shape:
            raise CLIError(f"The anomaly maps are {res.anomaly_maps.shape[1:]} but the "
                           f"masks {masks_test.shape[1:]} (height x width).")
        if not masks_test.any():
            raise CLIError("The masks mark no defect pixel: pixel metrics need some.")
        report.update(pixel_auroc=pixel_auroc(masks_test, res.anomaly_maps),
                      aupro=aupro(masks_test, res.anomaly_maps, max_fpr=0.3),
                      aupro_max_fpr=0.3, map_source=res.map_source)
    return report, s, threshold
