"""
t-SNE of deep-feature embeddings: raw images vs. residual maps
==============================================================

:class:`~skcpcae.embedding.DeepPoolEmbedder` turns an image into one feature vector with a
pretrained CNN (EfficientNet-Lite0 with offline ImageNet weights by default) and a pooling
head. This example embeds a labelled test set of synthetic parts twice and draws a 2-D
t-SNE of each embedding, in the style of Figs. 9 and 10 of Saeedi & Giusti (2023):

* left: the raw images, global max pooling (the paper's "deep feature" baseline);
* right: the residual maps of a :class:`~skcpcae.residuals.CPCAEResidualMap` fitted on good
  parts, with the ``"parallel_cascade"`` pooling head of the CPCAE pipeline.

Both embeddings are standardised with the statistics of the training set, as the pipeline's
``StandardScaler`` does. t-SNE is a picture, not a metric: it helps to see whether defective
parts leave the cloud of good ones, not how well a detector will do.

.. image:: /_static/embedding_tsne.png
   :alt: t-SNE of embeddings of raw images and of residual maps

Running the script writes the figure to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

# sphinx_gallery_thumbnail_path = '_static/embedding_tsne.png'

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skcpcae.datasets import make_parts, paste_defect  # noqa: E402
from skcpcae.embedding import DeepPoolEmbedder, pooled_n_features  # noqa: E402
from skcpcae.plotting import plot_embedding_tsne  # noqa: E402
from skcpcae.residuals import CPCAEResidualMap  # noqa: E402

try:
    _ROOT = Path(__file__).resolve().parents[2]
except NameError:  # run without a file (e.g. pasted into a console)
    _ROOT = Path.cwd()
OUT = Path(os.environ.get("SKCPCAE_EXAMPLES_OUT", _ROOT / "docs" / "_static"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Data
# ----
# 40 good parts to fit on; a test set of 30 good parts and 10 parts with each kind of
# faint defect. The labels are the defect kinds, which
# :func:`~skcpcae.plotting.plot_embedding_tsne` shows as they are.

X_train, _ = make_parts(40, size=(96, 96), random_state=0)
X_new, _ = make_parts(60, size=(96, 96), random_state=1)
kinds = np.array(["good"] * 30 + ["blob", "scratch", "crack"] * 10)
X_test = np.stack([
    x if kind == "good" else paste_defect(x, kind=kind, strength=0.15, random_state=i)
    for i, (x, kind) in enumerate(zip(X_new, kinds, strict=True))
])

# %%
# Raw images, global max pooling
# ------------------------------
# ``pooling="max"`` keeps one value per channel of the backbone's last feature map: 1280 for
# EfficientNet-Lite0.

raw = DeepPoolEmbedder(pooling="max").fit(X_train)
Z_raw_train, Z_raw = raw.transform(X_train), raw.transform(X_test)
print(f"raw images, max pooling: {Z_raw.shape[1]} features per image")

# %%
# Residual maps, parallel + cascade pooling
# -----------------------------------------
# ``"parallel_cascade"`` concatenates global max, global average and a 2x2 grid of
# max-then-average pooled cells: ``(2 + 2 * 2) * 1280 = 7680`` features.

cpcae = CPCAEResidualMap(input_size=64, patch_size=16, max_epochs=10, random_state=0)
R_train = cpcae.fit_transform(X_train)
R_test = cpcae.transform(X_test)
res = DeepPoolEmbedder(pooling="parallel_cascade").fit(R_train)
Z_res_train, Z_res = res.transform(R_train), res.transform(R_test)
print(f"residual maps, parallel_cascade pooling: {Z_res.shape[1]} features per image "
      f"(pooled_n_features: {pooled_n_features('parallel_cascade', 1280)})")

# %%
# The two t-SNE maps

fig, axes = plt.subplots(1, 2, figsize=(11, 5), constrained_layout=True)
for ax, Z_fit, Z, title in (
    (axes[0], Z_raw_train, Z_raw, "raw images, max pooling (deep-feature baseline)"),
    (axes[1], Z_res_train, Z_res, "CPCAE residual maps, parallel + cascade pooling"),
):
    Z = StandardScaler().fit(Z_fit).transform(Z)
    plot_embedding_tsne(Z, kinds, ax=ax, random_state=0, title=title)
    ax.title.set_fontsize(10)
fig.savefig(OUT / "embedding_tsne.png", dpi=72)
print(f"wrote {OUT / 'embedding_tsne.png'}")
