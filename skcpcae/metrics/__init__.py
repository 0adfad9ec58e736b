"""Image AUROC / AP (anomalous = positive), pixel AUROC / AUPRO and GridSearchCV scorers."""

from ._image import (
    anomaly_scores,
    auroc_scorer,
    average_precision_scorer,
    balanced_accuracy_scorer,
    evaluate,
    f1_scorer,
    get_scorer,
    get_scorer_names,
    image_auroc,
    image_average_precision,
    precision_scorer,
    recall_scorer,
    to_anomaly_labels,
)
from ._pixel import aupro, pixel_auroc, pro_curve

__all__ = [
    "anomaly_scores",
    "aupro",
    "auroc_scorer",
    "average_precision_scorer",
    "balanced_accuracy_scorer",
    "evaluate",
    "f1_scorer",
    "get_scorer",
    "get_scorer_names",
    "image_auroc",
    "image_average_precision",
    "pixel_auroc",
    "precision_scorer",
    "pro_curve",
    "recall_scorer",
    "to_anomaly_labels",
]
