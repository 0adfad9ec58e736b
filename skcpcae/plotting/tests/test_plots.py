"""Tests of skcpcae.plotting: every figure renders to a non-trivial PNG."""

import numpy as np
import pytest

from skcpcae.datasets import make_parts
from skcpcae.plotting import (
    overlay_heatmap,
    plot_anomaly_overlay,
    plot_embedding_tsne,
    plot_reconstruction_triplets,
    plot_roc_pr,
    plot_score_histogram,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _save_and_check(fig, path):
    """Save ``fig`` as PNG; check it is a valid PNG whose pixels are not all one colour."""
    fig.savefig(path, dpi=80)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    pixels = plt.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert float(pixels[..., :3].var()) > 1e-4
    return pixels


@pytest.fixture(scope="module")
def parts():
    X, y, masks = make_parts(6, n_anomalies=2, size=(32, 32), random_state=0,
                             return_masks=True)
    return X, y, masks


def test_overlay_heatmap_colours_hot_region_red_and_keeps_shape(parts):
    X, _, masks = parts
    amap = masks[-1].astype(float)
    rgb = overlay_heatmap(X[-1], amap, alpha=0.6)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    hot = rgb[masks[-1]].astype(int)
    cold = rgb[~masks[-1]].astype(int)
    # hot pixels: red dominates blue; cold pixels: blue dominates red
    assert (hot[:, 0] - hot[:, 2]).mean() > 50
    assert (cold[:, 2] - cold[:, 0]).mean() > 20


def test_overlay_heatmap_accepts_uint8_rgb_and_fixed_scale():
    image = np.full((5, 6, 3), 200, np.uint8)
    amap = np.zeros((5, 6))
    # with vmax far above the map, the whole map is "cold": same colour everywhere
    rgb = overlay_heatmap(image, amap, vmin=0.0, vmax=10.0, alpha=0.5)
    assert rgb.shape == (5, 6, 3)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == 1
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # blue-ish
    with pytest.raises(ValueError, match="alpha"):
        overlay_heatmap(image, amap, alpha=2.0)
    with pytest.raises(ValueError, match="image is"):
        overlay_heatmap(image, np.zeros((4, 4)))


def test_plot_anomaly_overlay_png(parts, tmp_path):
    X, _, masks = parts
    ax = plot_anomaly_overlay(X[-1], masks[-1].astype(float), title="defect")
    assert ax.get_title() == "defect"
    _save_and_check(ax.figure, tmp_path / "overlay.png")


def test_plot_anomaly_overlay_on_given_axes_without_pyplot(parts, tmp_path):
    X, _, masks = parts
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    out = plot_anomaly_overlay(X[0], masks[-1].astype(float), ax=ax, colorbar=False)
    assert out is ax
    _save_and_check(fig, tmp_path / "overlay_fig.png")


def test_plot_reconstruction_triplets_png(parts, tmp_path):
    X, y, _ = parts
    rng = np.random.default_rng(0)
    recon = np.clip(X + rng.normal(0, 0.02, X.shape), 0, 1)
    maps = np.abs(X - recon)
    axes = plot_reconstruction_triplets(X, recon, maps, n=3,
                                        titles=[f"y={v}" for v in y])
    assert axes.shape == (3, 3)
    assert [a.get_title() for a in axes[0]] == ["input", "reconstruction", "anomaly map"]
    assert axes[1, 0].get_ylabel() == "y=0"
    _save_and_check(axes[0, 0].figure, tmp_path / "triplets.png")


def test_plot_reconstruction_triplets_rejects_mismatched_lengths(parts):
    X, _, _ = parts
    with pytest.raises(ValueError, match="same number"):
        plot_reconstruction_triplets(X, X[:3], X, n=2)


def test_plot_roc_pr_png_and_legends(tmp_path):
    y = np.r_[np.zeros(20), np.ones(10)].astype(int)
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0, 1, 20), rng.normal(2, 1, 10)]
    axes = plot_roc_pr(y, s, label="cpcae")
    roc_labels = axes[0].get_legend_handles_labels()[1]
    pr_labels = axes[1].get_legend_handles_labels()[1]
    assert any(lab.startswith("cpcae, AUROC = 0.") for lab in roc_labels)
    assert any(lab.startswith("cpcae, AP = 0.") for lab in pr_labels)
    # a second model on the same axes: one more curve, still one chance line
    plot_roc_pr(y, -s, ax=axes, label="inverted")
    roc_labels = axes[0].get_legend_handles_labels()[1]
    assert sum(lab.startswith("chance") for lab in roc_labels) == 1
    assert any(lab.startswith("inverted, AUROC = 0.") for lab in roc_labels)
    _save_and_check(axes[0].figure, tmp_path / "roc_pr.png")


def test_plot_roc_pr_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        plot_roc_pr([0, 0, 0], [0.1, 0.2, 0.3])


def test_plot_embedding_tsne_png(tmp_path):
    rng = np.random.default_rng(0)
    Z = np.r_[rng.normal(0, 1, (20, 8)), rng.normal(4, 1, (8, 8))]
    y = np.r_[np.zeros(20, int), np.ones(8, int)]
    ax = plot_embedding_tsne(Z, y, random_state=0)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["normal (20)", "anomalous (8)"]
    _save_and_check(ax.figure, tmp_path / "tsne.png")


def test_plot_embedding_tsne_reproducible():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(12, 4))
    y = np.r_[np.zeros(8, int), np.ones(4, int)]
    a = plot_embedding_tsne(Z, y, random_state=3)
    b = plot_embedding_tsne(Z, y, random_state=3)
    pa = np.vstack([c.get_offsets() for c in a.collections])
    pb = np.vstack([c.get_offsets() for c in b.collections])
    np.testing.assert_allclose(pa, pb)


class _FakeThreshold:
    """Duck-typed stand-in with the attributes of a fitted KDEThresholdClassifier."""

    def __init__(self, scores):
        from sklearn.neighbors import KernelDensity

        self.train_scores_ = scores
        self.kde_ = KernelDensity(bandwidth=0.3).fit(scores[:, None])
        self.threshold_ = float(np.quantile(scores, 0.95))
        self.offset_ = -self.threshold_


def test_plot_score_histogram_from_estimator_attributes_png(tmp_path):
    rng = np.random.default_rng(0)
    est = _FakeThreshold(rng.normal(1.0, 0.3, 60))
    test_s = np.r_[rng.normal(1.0, 0.3, 10), rng.normal(3.0, 0.3, 5)]
    ax = plot_score_histogram(est, test_scores=test_s, test_labels=[0] * 10 + [1] * 5)
    labels = ax.get_legend_handles_labels()[1]
    assert "KDE" in labels
    assert any(lab.startswith("threshold = ") for lab in labels)
    assert "test anomalous (5)" in labels
    assert ax.get_xlabel().startswith("anomaly score")
    _save_and_check(ax.figure, tmp_path / "hist.png")


def test_plot_score_histogram_from_array_and_bad_input(tmp_path):
    ax = plot_score_histogram(np.linspace(0, 1, 30), threshold=0.9)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["training (30)", "threshold = 0.9"]
    _save_and_check(ax.figure, tmp_path / "hist_array.png")
    with pytest.raises(TypeError, match="KDEThresholdClassifier"):
        plot_score_histogram(object())


def test_plot_score_histogram_log_scale_for_wide_positive_scores(tmp_path):
    rng = np.random.default_rng(0)
    est = _FakeThreshold(rng.lognormal(0.0, 0.5, 60))
    test_s = np.r_[rng.lognormal(0.0, 0.5, 10), [1e4, 1e6]]
    ax = plot_score_histogram(est, test_scores=test_s)
    assert ax.get_xlabel().startswith("log10 anomaly score")
    threshold_line = [ln for ln in ax.get_lines() if ln.get_label().startswith("threshold")][0]
    np.testing.assert_allclose(threshold_line.get_xdata()[0], np.log10(est.threshold_))
    # the KDE is a density of log10(score): it integrates to about 1 over the plotted range
    kde_line = [ln for ln in ax.get_lines() if ln.get_label() == "KDE"][0]
    x, d = kde_line.get_xdata(), kde_line.get_ydata()
    assert 0.9 < float(np.sum((d[1:] + d[:-1]) / 2 * np.diff(x))) < 1.1
    _save_and_check(ax.figure, tmp_path / "hist_log.png")
    assert plot_score_histogram(est, test_scores=test_s, log_scale=False).get_xlabel() \
        .startswith("anomaly score")
    with pytest.raises(ValueError, match="positive"):
        plot_score_histogram(np.r_[-1.0, 1.0], log_scale=True)


def test_plot_score_histogram_real_kde_threshold_pipeline(tmp_path):
    outlier = pytest.importorskip("skcpcae.outlier")
    if not hasattr(outlier, "KDEThresholdClassifier"):
        pytest.fail("skcpcae.outlier.KDEThresholdClassifier is not available yet")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    pipe = make_pipeline(
        StandardScaler(),
        outlier.KDEThresholdClassifier(outlier.KNNAnomalyScorer(n_neighbors=5), random_state=0),
    ).fit(X)
    ax = plot_score_histogram(pipe)
    labels = ax.get_legend_handles_labels()[1]
    assert "KDE" in labels and any(lab.startswith("threshold") for lab in labels)
    _save_and_check(ax.figure, tmp_path / "hist_real.png")


def test_plot_inspection_writes_name_score_decision_and_colour_bar(parts, tmp_path):
    from skcpcae.plotting import plot_inspection

    X = parts[0]
    amap = np.zeros(X[0].shape[:2])
    amap[5:12, 8:20] = 3.0
    fig = Figure(figsize=(8, 4), layout="constrained")
    axes = plot_inspection(X[0], amap, name="cell_07.png", score=12.5, threshold=10.0,
                           map_threshold=1.5, units="patch distance",
                           axes=fig.subplots(1, 2))
    title = fig.texts[0].get_text()
    assert title == "cell_07.png: DEFECT (score 12.5 > threshold 10)"
    bar_axes = [ax for ax in fig.axes if ax not in list(axes)]
    assert len(bar_axes) == 1 and bar_axes[0].get_ylabel() == "patch distance"
    # the map threshold is drawn on the colour bar, the defect region outlined
    assert any(abs(line.get_ydata()[0] - 1.5) < 1e-9 for line in bar_axes[0].get_lines())
    assert axes[1].collections  # the contour
    _save_and_check(fig, tmp_path / "inspection.png")
    fig = Figure()
    plot_inspection(X[0], amap, name="ok.png", score=2.0, threshold=10.0,
                    axes=fig.subplots(1, 2))
    assert fig.texts[0].get_text() == "ok.png: OK (score 2 <= threshold 10)"


def test_plot_roc_pr_marks_the_operating_point(tmp_path):
    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    s = np.r_[np.linspace(0, 1, 50), np.linspace(0.5, 1.5, 50)]
    ax_roc, ax_pr = plot_roc_pr(y, s, threshold=0.9)
    fp = int(np.sum(s[:50] > 0.9))
    tp = int(np.sum(s[50:] > 0.9))
    marker = [ln for ln in ax_roc.get_lines() if ln.get_marker() == "o"]
    assert len(marker) == 1
    assert marker[0].get_xdata()[0] == pytest.approx(fp / 50)
    assert marker[0].get_ydata()[0] == pytest.approx(tp / 50)
    pr_marker = [ln for ln in ax_pr.get_lines() if ln.get_marker() == "o"]
    assert pr_marker[0].get_ydata()[0] == pytest.approx(tp / (tp + fp))
    assert any("threshold 0.9" in t.get_text() for t in ax_roc.get_legend().get_texts())
