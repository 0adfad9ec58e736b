"""
Where is the defect? Patch-distance heatmaps of the ``best`` preset on ELPV
===========================================================================

The ``best`` preset (:func:`skcpcae.make_best_pipeline`) fitted on good monocrystalline
cells of the ELPV dataset, then applied to the same four test cells as the residual-map
example: a good cell and the first three defective cells (defect probability 1, in dataset
order, not picked by their score).

Each cell becomes a 19x19 grid of patch features (EfficientNet-Lite0 stages 3 and 4, one
patch per 16 pixels); every patch is compared with the patches *at the same place* on the
20 good training cells that look most like this cell as a whole; its mean distance to the
3 nearest, standardised by the mean and spread of the good cells' own distances at that
place (so that the busbars and edges, where good cells differ most, do not light up), is
the heatmap: 0 is a typical good patch there, 5 is five of that place's spreads above it.
The image score is three quarters the mean of the 30 largest standardised patch
distances and one quarter a global score (the distance of the cell's mean patch feature to
the good cells'), each standardised by the good cells' own scores. The fit takes seconds
(nothing is trained: the
backbone is pretrained and the scorer keeps the training maps), so the whole script runs in
well under a minute on a CPU.

.. image:: /_static/elpv_patch_heatmap.png
   :alt: patch-distance heatmaps on a good and three defective ELPV solar cells

ELPV images: Buerhop-Lutz et al. (2018), Deitsch et al. (2019), licensed CC BY-NC-SA 4.0,
from the PyPI package ``elpv-dataset`` (``pip install "skcpcae[elpv]"``); nothing is
downloaded at run time.

Running the script writes the figure to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

import os
import time
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skcpcae import make_preset  # noqa: E402
from skcpcae.datasets import load_elpv  # noqa: E402
from skcpcae.plotting import plot_anomaly_overlay  # noqa: E402

try:
    _ROOT = Path(__file__).resolve().parents[2]
except NameError:  # run without a file (e.g. pasted into a console)
    _ROOT = Path.cwd()
OUT = Path(os.environ.get("SKCPCAE_EXAMPLES_OUT", _ROOT / "docs" / "_static"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Fit on good cells only
# ----------------------
# The project's ELPV protocol: the first half of the shuffled good cells.

data = load_elpv("mono")
pipe = make_preset("best")
start = time.perf_counter()
pipe.fit(data.X_train)
print(f"fitted {' → '.join(pipe.named_steps)} on {len(data.X_train)} cells in "
      f"{time.perf_counter() - start:.0f} s")

# %%
# Scores, decisions and maps
# --------------------------
# ``pipe[:-1]`` turns cells into patch-feature maps; the last step's ``anomaly_map`` gives
# the standardised patch distances on the 19x19 grid (below 0, shown in the coldest colour:
# closer to the good cells than usual), upsampled here to the cell (bilinear) and smoothed
# a little (sigma = 3 px, as ``skcpcae score --heatmaps`` does for 300x300 images).

good = np.flatnonzero(data.y_test == 0)[:1]
defective = np.flatnonzero(data.y_test == 1)[:3]
idx = np.r_[good, defective]
cells = data.X_test[idx]
anomaly = -pipe.score_samples(cells)
decision = np.where(pipe.predict(cells) == -1, "defect", "ok")
grid = pipe[-1].anomaly_map(pipe[:-1].transform(cells))
maps = np.stack([cv2.GaussianBlur(cv2.resize(m, cells.shape[2:0:-1]), (0, 0), 3.0)
                 for m in grid])
vmax = float(maps.max())

fig, axes = plt.subplots(2, 4, figsize=(13, 6.6), constrained_layout=True)
for col, i in enumerate(idx):
    label = "good" if data.y_test[i] == 0 else f"defective (p = {data.proba_test[i]:.0f})"
    axes[0, col].imshow(data.X_test[i], cmap="gray", vmin=0, vmax=1)
    axes[0, col].set_title(f"test cell {i}: {label}", fontsize=10)
    axes[0, col].set_axis_off()
    plot_anomaly_overlay(data.X_test[i], maps[col], ax=axes[1, col], vmin=0.0, vmax=vmax,
                         colorbar=col == 3)
    axes[1, col].set_title(f"score {anomaly[col]:.3g}: {decision[col]}", fontsize=10)
fig.suptitle(f"Standardised patch distances of the best preset on ELPV mono cells (threshold on the "
             f"anomaly score {pipe[-1].threshold_:.3g}). Images: Buerhop-Lutz et al. 2018, "
             "Deitsch et al. 2019, CC BY-NC-SA 4.0", fontsize=10)
fig.savefig(OUT / "elpv_patch_heatmap.png", dpi=72)
for col, i in enumerate(idx):
    print(f"test cell {i}: label {data.y_test[i]}, anomaly score {anomaly[col]:.4g}, "
          f"{decision[col]}")
print(f"wrote {OUT / 'elpv_patch_heatmap.png'}")
