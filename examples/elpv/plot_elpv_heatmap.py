"""
Where is the defect? Residual heatmaps on ELPV solar cells
==========================================================

The CPCAE pipeline fitted on good monocrystalline cells of the ELPV dataset (real
electroluminescence images, 300x300, already aligned), then applied to a good test cell and
to the first three defective test cells (defect probability 1, in dataset order, not
picked by their score). Each panel overlays the autoencoder's residual map on the cell;
the title gives the pipeline's anomaly score and decision.

The pipeline is the ``"aligned"`` preset (no registration, the cells are aligned):
adaptive gamma → CPCAE residual map → parallel + cascade pooling on EfficientNet-Lite0 →
scaler + k-NN inside the KDE threshold (``alpha = 0.05``). To keep the run short, the
autoencoder trains for 10 epochs instead of 20. The script takes a few minutes on a CPU,
so it is not part of the test suite.

.. image:: /_static/elpv_heatmap.png
   :alt: residual heatmaps on a good and three defective ELPV solar cells

ELPV images: Buerhop-Lutz et al. (2018), Deitsch et al. (2019), licensed CC BY-NC-SA 4.0,
from the PyPI package ``elpv-dataset`` (``pip install "skcpcae[elpv]"``); nothing is
downloaded at run time.

Running the script writes the figure to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

# sphinx_gallery_thumbnail_path = '_static/elpv_heatmap.png'

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
# Data: the project's ELPV protocol
# ---------------------------------
# Good mono cells (defect probability 0) shuffled with ``default_rng(0)``: the first half
# is the training set; the test set is the other half plus every defective cell.

data = load_elpv("mono")
print(f"training cells: {len(data.X_train)}, test cells: {len(data.X_test)} "
      f"({int(data.y_test.sum())} defective)")

# %%
# Fit on good cells only

pipe = make_preset("aligned", cpcaeresidualmap__max_epochs=10)
start = time.perf_counter()
pipe.fit(data.X_train)
print(f"fitted {' → '.join(pipe.named_steps)} in {time.perf_counter() - start:.0f} s")

# %%
# Score four test cells and compute their residual maps
# -----------------------------------------------------
# ``pipe[:2]`` is adaptive gamma + the autoencoder: its output is the residual map, at the
# size of the cell. The maps are smoothed a little (Gaussian, sigma = 3 px, as
# ``skcpcae score --heatmaps`` does by default for 300x300 images) and share one colour scale.

good = np.flatnonzero(data.y_test == 0)[:1]
defective = np.flatnonzero(data.y_test == 1)[:3]
idx = np.r_[good, defective]
cells = data.X_test[idx]
anomaly = -pipe.score_samples(cells)
decision = np.where(pipe.predict(cells) == -1, "defect", "ok")
maps = pipe[:2].transform(cells)
maps = np.stack([cv2.GaussianBlur(m, (0, 0), 3.0) for m in maps])
vmax = float(maps.max())
threshold = pipe[-1].threshold_

fig, axes = plt.subplots(2, 4, figsize=(13, 6.6), constrained_layout=True)
for col, i in enumerate(idx):
    label = "good" if data.y_test[i] == 0 else f"defective (p = {data.proba_test[i]:.0f})"
    axes[0, col].imshow(data.X_test[i], cmap="gray", vmin=0, vmax=1)
    axes[0, col].set_title(f"test cell {i}: {label}", fontsize=10)
    axes[0, col].set_axis_off()
    plot_anomaly_overlay(data.X_test[i], maps[col], ax=axes[1, col], vmin=0.0, vmax=vmax,
                         colorbar=col == 3)
    axes[1, col].set_title(f"score {anomaly[col]:.3g}: {decision[col]}", fontsize=10)
fig.suptitle(f"CPCAE residual maps on ELPV mono cells (threshold on the anomaly score "
             f"{threshold:.3g}). Images: Buerhop-Lutz et al. 2018, Deitsch et al. 2019, "
             "CC BY-NC-SA 4.0", fontsize=10)
fig.savefig(OUT / "elpv_heatmap.png", dpi=72)
for col, i in enumerate(idx):
    print(f"test cell {i}: label {data.y_test[i]}, anomaly score {anomaly[col]:.4g}, "
          f"{decision[col]}")
print(f"wrote {OUT / 'elpv_heatmap.png'}")
