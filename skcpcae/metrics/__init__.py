"""Image AUROC / AP (anomalous = positive), pixel AUROC and GridSearchCV scorers."""

from ._image import (
    anomaly_scores,
    auroc_scorer,
    average_precision_scorer,
    evaluate,
    image_auroc,
    image_average_precision,
    pixel_auroc,
    to_anomaly_labels,
)

__all__ = [
    "anomaly_scores",
    "auroc_scorer",
    "average_precision_scorer",
    "evaluate",
    "image_auroc",
    "image_average_precision",
    "pixel_auroc",
    "to_anomaly_labels",
]
