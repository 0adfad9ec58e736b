"""
The KDE decision threshold: training scores, threshold, false alarms
====================================================================

:class:`~skcpcae.outlier.KDEThresholdClassifier` wraps an outlier detector and sets its
decision threshold from a kernel density estimate (KDE) of the anomaly scores of the
training samples (Saeedi & Giusti 2023, eq. 7). This project reads eq. 7 as a quantile:
with ``F`` the KDE's cumulative distribution, a sample is flagged when its anomaly score
exceeds ``t = F^-1(1 - alpha) - beta``, so that ``alpha`` is the expected false-alarm rate.

That promise holds only if the training scores look like the scores of *new* good parts.
The figure compares, on deep features of synthetic parts, the pipeline's last unit
``StandardScaler → KNNAnomalyScorer`` thresholded three ways:

* left, ``cv=5`` (the default) with the scaler *inside* the wrapper: every training score
  comes from a scaler and a k-NN fitted on the other four folds (out of sample);
* middle, ``cv=5`` with the scaler *outside*: the k-NN is cross-fitted but the scaler has
  seen the held-out folds;
* right, ``cv=None``: the detector scores the samples it was fitted on, which a k-NN
  finds among their own neighbours: the scores are optimistically low, the threshold lands
  too low and new good parts are flagged more often than ``alpha``.

.. image:: /_static/threshold_histogram.png
   :alt: histograms of training and test anomaly scores with the KDE and the threshold

Running the script writes the figure to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

# sphinx_gallery_thumbnail_path = '_static/threshold_histogram.png'

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skcpcae.datasets import make_parts  # noqa: E402
from skcpcae.embedding import DeepPoolEmbedder  # noqa: E402
from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer  # noqa: E402
from skcpcae.plotting import plot_score_histogram  # noqa: E402

try:
    _ROOT = Path(__file__).resolve().parents[2]
except NameError:  # run without a file (e.g. pasted into a console)
    _ROOT = Path.cwd()
OUT = Path(os.environ.get("SKCPCAE_EXAMPLES_OUT", _ROOT / "docs" / "_static"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Deep features of good and defective parts
# -----------------------------------------
# 100 good parts to fit on; 200 new good parts to measure the false-alarm rate; 30
# defective parts to measure the recall.

X_fit, _ = make_parts(100, size=(64, 64), random_state=0)
X_test, y_test = make_parts(200, n_anomalies=30, size=(64, 64), random_state=1)
embedder = DeepPoolEmbedder(pooling="max").fit(X_fit)
Z_train, Z_test = embedder.transform(X_fit), embedder.transform(X_test)

# %%
# Three ways to fit the same detector
# -----------------------------------
# 1. ``KDEThresholdClassifier(make_pipeline(StandardScaler(), knn), cv=5)``: the pipeline's
#    choice; each held-out fold is scored by a scaler *and* a k-NN that never saw it.
# 2. ``make_pipeline(StandardScaler(), KDEThresholdClassifier(knn, cv=5))``: the scaler was
#    fitted on every training sample, the held-out folds included.
# 3. ``KDEThresholdClassifier(make_pipeline(StandardScaler(), knn), cv=None)``: in-sample
#    scores.
#
# The anomaly scores of new samples are the same in 1 and 2 (only the threshold differs);
# the false-alarm rate is measured on the 200 new good parts.

alpha = 0.05


def knn():
    return KNNAnomalyScorer(n_neighbors=15)


variants = {
    "scaler inside, cv=5": KDEThresholdClassifier(
        make_pipeline(StandardScaler(), knn()), alpha=alpha, cv=5, random_state=0),
    "scaler outside, cv=5": make_pipeline(
        StandardScaler(), KDEThresholdClassifier(knn(), alpha=alpha, cv=5, random_state=0)),
    "cv=None (in-sample)": KDEThresholdClassifier(
        make_pipeline(StandardScaler(), knn()), alpha=alpha, cv=None),
}
fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), constrained_layout=True)
for ax, (name, model) in zip(axes, variants.items(), strict=True):
    model.fit(Z_train)
    pred = model.predict(Z_test)
    far = np.mean(pred[y_test == 0] == -1)
    recall = np.mean(pred[y_test == 1] == -1)
    print(f"{name:22s} false-alarm rate on 200 new good parts {far:.3f} "
          f"(alpha = {alpha}), recall {recall:.2f}")
    plot_score_histogram(model, test_scores=-model.score_samples(Z_test), test_labels=y_test,
                         ax=ax, title=f"{name}: {far:.1%} false alarms")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8, loc="upper right")
fig.suptitle(f"KDEThresholdClassifier(StandardScaler → k-NN, alpha = {alpha}) on deep "
             "features of synthetic parts: 100 to fit, 200 new good and 30 defective to test",
             fontsize=10)
fig.savefig(OUT / "threshold_histogram.png", dpi=72)
print(f"wrote {OUT / 'threshold_histogram.png'}")
