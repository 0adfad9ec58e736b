"""Image AUROC / AP (anomalous = positive), pixel AUROC / AUPRO and GridSearchCV scorers."""

from ._image import (
    anomaly_scores,
    auroc_scorer,
    average_precision_scorer,
    evaluate,
    image_auroc,
    image_average_precision,
    to_anomaly_labels,
)
from ._pixel import aupro, pixel_auroc, pro_curve

__all__ = [
    "anomaly_scores",
    "aupro",
    "auroc_scorer",
    "average_precision_scorer",
    "evaluate",
    "image_auroc",
    "image_average_precision",
    "pixel_auroc",
    "pro_curve",
    "to_anomaly_labels",
]
