"""
The paper's baselines beside the CPCAE pipeline
===============================================

Saeedi & Giusti (2023, Sec. 4.4) compare their method with simpler detectors;
:mod:`skcpcae.baselines` ships them as scikit-learn outlier detectors, each with an
``anomaly_map`` method, so one harness compares them all:

* :class:`~skcpcae.baselines.VariationDetector`: per-pixel mean and standard deviation of
  the good parts; score = sum of squared z-scores;
* :class:`~skcpcae.baselines.NearestImageDetector`: squared L2 distance to the most similar
  good image;
* :class:`~skcpcae.baselines.AEL2Detector`: the same conditional patch autoencoder, score =
  summed squared residual;
* :class:`~skcpcae.baselines.PatchCoreDetector`: nearest-neighbour distance of local CNN
  features (Roth et al. 2022), not in the paper;
* the CPCAE pipeline (:func:`skcpcae.make_cpcae_pipeline`, without registration and gamma
  here, since the synthetic parts are aligned and evenly lit).

All are fitted on the same 40 good parts and tested on 30 good parts and 30 with faint
defects. Settings are small so that the script runs in seconds; the comparison on real
images is in the benchmarks page.

.. image:: /_static/baselines_comparison.png
   :alt: ROC curves and anomaly maps of the baselines and the CPCAE pipeline

Running the script writes the figure to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

# sphinx_gallery_thumbnail_path = '_static/baselines_comparison.png'

import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from skcpcae import make_cpcae_pipeline  # noqa: E402
from skcpcae.baselines import (  # noqa: E402
    AEL2Detector,
    NearestImageDetector,
    PatchCoreDetector,
    VariationDetector,
)
from skcpcae.datasets import make_parts, paste_defect  # noqa: E402
from skcpcae.metrics import image_auroc, image_average_precision  # noqa: E402
from skcpcae.residuals import CPCAEResidualMap  # noqa: E402

try:
    _ROOT = Path(__file__).resolve().parents[2]
except NameError:  # run without a file (e.g. pasted into a console)
    _ROOT = Path.cwd()
OUT = Path(os.environ.get("SKCPCAE_EXAMPLES_OUT", _ROOT / "docs" / "_static"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Data

X_train, _ = make_parts(40, size=(96, 96), random_state=0)
X_new, _ = make_parts(60, size=(96, 96), random_state=1)
kinds = ["blob", "scratch", "crack"] * 10
X_defect = np.stack([
    paste_defect(x, kind=kind, strength=0.12, random_state=i)
    for i, (x, kind) in enumerate(zip(X_new[30:], kinds, strict=True))
])
X_test = np.concatenate([X_new[:30], X_defect])
y_test = np.r_[np.zeros(30, int), np.ones(30, int)]

# %%
# The detectors
# -------------
# Every detector has ``fit``, ``score_samples`` (higher = more normal), ``predict`` (+1 /
# -1) and, except the pipeline, ``anomaly_map``.

small_ae = dict(input_size=64, patch_size=16, max_epochs=10, random_state=0)
cpcae = make_cpcae_pipeline(register=False, gamma=False, random_state=0,
                            **{f"cpcaeresidualmap__{k}": v for k, v in small_ae.items()})
detectors = {
    "Variation": VariationDetector(),
    "NN image": NearestImageDetector(),
    "AE (L2)": AEL2Detector(CPCAEResidualMap(residual="squared", **small_ae)),
    "PatchCore": PatchCoreDetector(random_state=0),
    "CPCAE pipeline": cpcae,
}

shown = [30, 32]  # a blob and a crack
maps, curves = {}, {}
for name, det in detectors.items():
    start = time.perf_counter()
    det.fit(X_train)
    anomaly = -det.score_samples(X_test)
    seconds = time.perf_counter() - start
    auroc = image_auroc(y_test, anomaly)
    ap = image_average_precision(y_test, anomaly)
    print(f"{name:15s} AUROC {auroc:.3f}  AP {ap:.3f}  (fit + score {seconds:.1f} s)")
    curves[name] = (*roc_curve(y_test, anomaly)[:2], auroc)
    if name == "CPCAE pipeline":
        maps[name] = det[0].transform(X_test[shown])  # the residual map of its first step
    else:
        maps[name] = det.anomaly_map(X_test[shown])

# %%
# ROC curves and anomaly maps
# ---------------------------
# Each detector's maps are on its own colour scale (their units differ); the two rows share
# it.

fig = plt.figure(figsize=(16, 5.2), layout="constrained")
grid = fig.add_gridspec(2, 2 + len(detectors), width_ratios=[2.4, 1] + [1] * len(detectors))
ax_roc = fig.add_subplot(grid[:, 0])
for name, (fpr, tpr, auroc) in curves.items():
    ax_roc.plot(fpr, tpr, lw=2, label=f"{name}: AUROC {auroc:.3f}")
ax_roc.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
ax_roc.set_xlabel("false positive rate (good parts flagged)")
ax_roc.set_ylabel("true positive rate (defects found)")
ax_roc.set_title("ROC: 30 good + 30 faint defects", fontsize=10)
ax_roc.legend(fontsize=8, loc="lower right")
for row, i in enumerate(shown):
    ax = fig.add_subplot(grid[row, 1])
    ax.imshow(X_test[i], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"input: {kinds[i - 30]}", fontsize=10)
    ax.set_axis_off()
    for col, (name, m) in enumerate(maps.items(), start=2):
        ax = fig.add_subplot(grid[row, col])
        ax.imshow(m[row], cmap="jet", vmin=0, vmax=float(m.max()))
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
fig.savefig(OUT / "baselines_comparison.png", dpi=72)
print(f"wrote {OUT / 'baselines_comparison.png'}")

# %%
# Reading the result
# ------------------
# These synthetic parts are perfectly aligned, evenly lit and differ only by pixel noise and
# a faint shading, so a pixel-wise model of "good" (Variation, nearest image) is hard to
# beat: that is what the pixel baselines assume. Real parts move, reflect and vary from lot
# to lot; the comparison on real images (ELPV solar cells) is in ``docs/benchmarks.md``
# (``python benchmarks/run.py``).
