"""Figures: heatmap overlays, reconstruction triplets, ROC / PR curves, t-SNE of embeddings
and the training-score histogram behind the KDE threshold.

matplotlib is optional: ``pip install "skcpcae[plot]"``. :func:`overlay_heatmap` needs
numpy only.
"""

from ._plots import (
    overlay_heatmap,
    plot_anomaly_overlay,
    plot_inspection,
    plot_reconstruction_triplets,
)
from ._scores import plot_embedding_tsne, plot_roc_pr, plot_score_histogram

__all__ = [
    "overlay_heatmap",
    "plot_anomaly_overlay",
    "plot_embedding_tsne",
    "plot_inspection",
    "plot_reconstruction_triplets",
    "plot_roc_pr",
    "plot_score_histogram",
]
