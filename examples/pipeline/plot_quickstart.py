"""
Quickstart: fit the CPCAE pipeline on good parts, score a labelled test set
===========================================================================

The whole method of Saeedi & Giusti (2023) as one scikit-learn pipeline, built by
:func:`skcpcae.make_cpcae_pipeline`: registration → adaptive gamma → conditional patch
autoencoder (residual maps) → deep-feature pooling → scaler + k-NN scorer inside the KDE
threshold. It is fitted on **good parts only**, then scores a test set of good parts and parts
with subtle pasted defects (blobs, scratches, cracks). For comparison, the paper's "deep
feature" baseline (the same CNN on the raw image, global max pooling, k-NN) is fitted on the
same images.

The settings are small so that the script runs in seconds on a CPU: 96x96 images, the
autoencoder works on 64x64 downsized images with 16x16 patches and trains for 10 epochs.
For real parts use the defaults (see the user guide).

.. image:: /_static/pipeline_quickstart_roc_pr.png
   :alt: ROC and precision-recall curves of the CPCAE pipeline and the deep-feature baseline

Running the script writes the figure to ``docs/_static/`` (or to the folder named by the
``SKCPCAE_EXAMPLES_OUT`` environment variable).
"""

# sphinx_gallery_thumbnail_path = '_static/pipeline_quickstart_roc_pr.png'

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skcpcae import make_cpcae_pipeline, make_deep_feature_pipeline, persistence  # noqa: E402
from skcpcae.datasets import make_parts, paste_defect  # noqa: E402
from skcpcae.metrics import evaluate  # noqa: E402
from skcpcae.plotting import plot_roc_pr  # noqa: E402

try:
    _ROOT = Path(__file__).resolve().parents[2]
except NameError:  # run without a file (e.g. pasted into a console)
    _ROOT = Path.cwd()
OUT = Path(os.environ.get("SKCPCAE_EXAMPLES_OUT", _ROOT / "docs" / "_static"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Data: good parts to fit on, a labelled test set
# ------------------------------------------------
# Every part is moved by a small random rigid motion (up to 4 % of the size and 3 degrees),
# so registration has work to do. The test set holds 30 new good parts and 30 good parts
# with a faint defect pasted on (intensity change 0.12 on a [0, 1] scale).

motion = dict(size=(96, 96), max_shift=0.04, max_rotation=3.0)
X_train, _ = make_parts(40, random_state=0, **motion)
X_new, _ = make_parts(60, random_state=1, **motion)
kinds = ["blob", "scratch", "crack"] * 10
X_defect = np.stack([
    paste_defect(x, kind=kind, strength=0.12, random_state=i)
    for i, (x, kind) in enumerate(zip(X_new[30:], kinds, strict=True))
])
X_test = np.concatenate([X_new[:30], X_defect])
y_test = np.r_[np.zeros(30, int), np.ones(30, int)]  # 0 good, 1 defective
print(f"train: {X_train.shape}, test: {X_test.shape} ({y_test.sum()} defective)")

# %%
# The pipeline
# ------------
# ``step__param`` overrides go to the named step, as with ``Pipeline.set_params``.

pipe = make_cpcae_pipeline(
    cpcaeresidualmap__input_size=64,
    cpcaeresidualmap__patch_size=16,
    cpcaeresidualmap__max_epochs=10,
    random_state=0,
)
print(" → ".join(name for name, _ in pipe.steps))
pipe.fit(X_train)  # good parts only

# %%
# Predictions follow scikit-learn's outlier convention: ``predict`` gives +1 (good) or -1
# (defective), ``score_samples`` is higher for more normal images, and the anomaly score
# used by the metrics and plots is its opposite.

pred = pipe.predict(X_test)
anomaly = -pipe.score_samples(X_test)
print("predicted defective:", int((pred == -1).sum()), "of", len(X_test))
report = evaluate(pipe, X_test, y_test)
print(
    f"CPCAE pipeline: AUROC {report['auroc']:.3f}, AP {report['average_precision']:.3f}, "
    f"false-alarm rate {report['false_alarm_rate']:.3f}, recall {report['recall']:.3f}"
)

# %%
# The deep-feature baseline on the same images

baseline = make_deep_feature_pipeline(threshold=True).fit(X_train)
report_b = evaluate(baseline, X_test, y_test)
print(
    f"deep feature:   AUROC {report_b['auroc']:.3f}, AP {report_b['average_precision']:.3f}, "
    f"false-alarm rate {report_b['false_alarm_rate']:.3f}, recall {report_b['recall']:.3f}"
)

# %%
# ROC and precision-recall curves (defective = positive)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
plot_roc_pr(y_test, anomaly, ax=axes, label="CPCAE pipeline")
plot_roc_pr(y_test, -baseline.score_samples(X_test), ax=axes, label="deep feature")
fig.suptitle("Synthetic parts, faint defects: 40 good parts to fit on, 30 + 30 to test",
             fontsize=10)
fig.savefig(OUT / "pipeline_quickstart_roc_pr.png", dpi=80)

# %%
# Save and load
# -------------
# :func:`skcpcae.persistence.save` stores the fitted pipeline with the versions it was made
# with and a SHA-256 of its content (checked on load). ``.skops`` files load without
# running any code; a ``.joblib`` file is a pickle, read only with ``allow_pickle=True``
# (load only files you trust). The reloaded pipeline gives the same scores.

with tempfile.TemporaryDirectory() as tmp:
    path = persistence.save(pipe, Path(tmp) / "parts.skops")
    same = persistence.load(path)
    assert np.array_equal(same.score_samples(X_test), pipe.score_samples(X_test))
    print(f"saved and reloaded {path.name}: identical scores")
print(f"wrote {OUT / 'pipeline_quickstart_roc_pr.png'}")
