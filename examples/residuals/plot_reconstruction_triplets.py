"""
Residual maps of the conditional patch autoencoder
==================================================

:class:`~skcpcae.residuals.CPCAEResidualMap` is fitted on good parts; it reconstructs each
image patch by patch (every patch conditioned on its position in the grid) and returns the
per-pixel residual ``|x - x_hat|`` at the input size. A good part is reconstructed well
everywhere; on a defective part the defect is not reconstructed and stands out in the
residual map. The figure shows input / reconstruction / residual-map triplets, in the style
of Figs. 11 and 12 of Saeedi & Giusti (2023), with the true defect outlined.

The second figure compares the residuals of the training images in-sample
(``fit(X).transform(X)``), out of fold (``CPCAEResidualMap(cv=3).fit_transform(X)``) and
those of new good parts: the check to make before choosing ``cv``.

.. image:: /_static/residuals_triplets.png
   :alt: input, reconstruction and residual map of good and defective parts

.. image:: /_static/residuals_crossfit.png
   :alt: mean residual of training images in-sample, out-of-fold and of new good parts

Running the script writes the figures to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

# sphinx_gallery_thumbnail_path = '_static/residuals_triplets.png'

import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skcpcae.datasets import make_parts  # noqa: E402
from skcpcae.plotting import plot_reconstruction_triplets  # noqa: E402
from skcpcae.residuals import CPCAEResidualMap  # noqa: E402

try:
    _ROOT = Path(__file__).resolve().parents[2]
except NameError:  # run without a file (e.g. pasted into a console)
    _ROOT = Path.cwd()
OUT = Path(os.environ.get("SKCPCAE_EXAMPLES_OUT", _ROOT / "docs" / "_static"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Fit on good parts
# -----------------
# 128x128 parts, downsized to 64x64 and cut into 16x16 patches with stride 8 (half the
# patch): a 7x7 grid of 49 overlapping patches, so the one-hot condition has 49 entries.
# With ``cv=3``, ``fit_transform`` trains the autoencoder on all images (kept in ``net_``
# and used by ``transform``) and three more on two thirds of the images each, which give
# the out-of-fold residual maps of the training images.

X_train, _ = make_parts(40, size=(128, 128), random_state=0)
X_test, y_test, masks = make_parts(1, n_anomalies=3, size=(128, 128), random_state=1,
                                   return_masks=True)

cpcae = CPCAEResidualMap(input_size=64, patch_size=16, max_epochs=12, cv=3, random_state=0)
start = time.perf_counter()
R_out_of_fold = cpcae.fit_transform(X_train)
print(f"fit_transform in {time.perf_counter() - start:.1f} s on {cpcae.device_}: working "
      f"size {cpcae.working_shape_}, patches {cpcae.patch_shape_}, stride {cpcae.stride_}, "
      f"{cpcae.n_patches_} patches per image")
loss = cpcae.net_.history[:, "train_loss"]
print(f"training loss: first epoch {loss[0]:.5f}, last epoch {loss[-1]:.5f}")

# %%
# Input / reconstruction / residual map
# -------------------------------------
# One good part and the three kinds of defect. The residual maps share one colour scale;
# the white outline is the true defect mask.

recon = cpcae.reconstruct(X_test)
residuals = cpcae.transform(X_test)
names = ["good"] + ["defect: " + k for k in ("blob", "scratch", "crack")]
axes = plot_reconstruction_triplets(X_test, recon, residuals, n=4, titles=names)
for row, mask in zip(axes, masks, strict=True):
    if mask.any():
        row[2].contour(mask, levels=[0.5], colors="white", linewidths=0.8)
fig = axes[0, 0].figure
fig.savefig(OUT / "residuals_triplets.png", dpi=72)
for name, r, m in zip(names, residuals, masks, strict=True):
    inside = f", inside the defect {r[m].mean():.3f}" if m.any() else ""
    print(f"{name:16s} mean residual {r.mean():.3f}{inside}")

# %%
# Cross-fitting: are the training maps optimistic?
# ------------------------------------------------
# Mean residual per image for: the training images, in-sample (``transform`` of the
# images ``net_`` was trained on, what ``fit(X).transform(X)`` gives); the same images out
# of fold (what ``fit_transform`` returned); and 40 new good parts. A later stage fitted
# on the training maps should see maps like those of new parts. How far the in-sample maps
# fall below depends on how much the autoencoder memorises its training images (size of
# the training set, epochs, sparsity); out-of-fold maps come from autoencoders trained on
# fewer images. Compare the three on your own parts before choosing ``cv``.

X_new, _ = make_parts(40, size=(128, 128), random_state=2)
groups = {
    "training images,\nin-sample": cpcae.transform(X_train).mean(axis=(1, 2)),
    "training images,\nout of fold (cv=3)": R_out_of_fold.mean(axis=(1, 2)),
    "new good parts": cpcae.transform(X_new).mean(axis=(1, 2)),
}
fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
ax.boxplot(list(groups.values()), showmeans=True)
ax.set_xticks(range(1, len(groups) + 1), list(groups))
for i, values in enumerate(groups.values(), start=1):
    ax.scatter(np.full(values.size, i) + np.linspace(-0.12, 0.12, values.size), values,
               s=8, alpha=0.5, color="tab:blue")
ax.set_ylabel("mean |x - x_hat| per image")
ax.set_title("CPCAEResidualMap: residuals of good parts (40 per group)", fontsize=10)
ax.grid(axis="y", alpha=0.3)
fig.savefig(OUT / "residuals_crossfit.png", dpi=80)
for name, values in groups.items():
    print(f"{name.replace(chr(10), ' '):38s} median {np.median(values):.4f}")
print(f"wrote {OUT / 'residuals_triplets.png'} and {OUT / 'residuals_crossfit.png'}")
