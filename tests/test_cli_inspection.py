"""The command line's maps, locations and pixel metrics (skcpcae.inspection, metrics)."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from skcpcae import cli
from skcpcae.datasets import load_images, make_parts, save_image

pytest.importorskip("matplotlib")


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=True)


def _write(folder, images, prefix):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        save_image(folder / f"{prefix}_{i:02d}.png", img)
    return folder


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def best_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_maps")
    X, _ = make_parts(12, size=(32, 32), random_state=0)
    Xd, _ = make_parts(0, n_anomalies=3, size=(32, 32), random_state=1)
    good, defect = _write(root / "good", X, "good"), _write(root / "defect", Xd, "bad")
    path = root / "best.skops"
    result = invoke("fit", good, "-o", path, "--preset", "best",
                    "--set", "deeppatchembedder__weights=None",
                    "--set", "deeppatchembedder__stages=[2]",
                    "--set", "kdethresholdclassifier__cv=3", "--quiet")
    assert result.exit_code == 0, result.output
    return path, defect


def test_heatmap_png_says_name_score_threshold_and_decision(best_model, tmp_path):
    path, defect = best_model
    out = tmp_path / "r"
    result = invoke("score", path, defect, "-o", out, "--heatmaps", "--quiet")
    assert result.exit_code == 0, result.output
    for row in _rows(out / "scores.csv"):
        data = (out / row["heatmap"]).read_bytes()
        name = row["path"].rsplit("/", 1)[-1]
        decision = row["decision"].upper()
        score = f"{float(row['anomaly_score']):.4g}"
        threshold = f"{float(row['threshold']):.4g}"
        title = f"{name}: {decision} (score {score} "
        assert title.encode() in data and f"threshold {threshold}".encode() in data
        assert b"colour bar: KDEThresholdClassifier.anomaly_map" in data


def test_score_locations_maps_masks_and_jsonl_agree(best_model, tmp_path):
    path, defect = best_model
    out = tmp_path / "r"
    result = invoke("score", path, defect, "-o", out, "--locations", "--save-maps", "npy",
                    "--save-masks", "--map-threshold", "0.05", "--sigma", "0", "--quiet")
    assert result.exit_code == 0, result.output
    rows = _rows(out / "scores.csv")
    lines = [json.loads(ln) for ln in (out / "locations.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines) == 3
    for row, line in zip(rows, lines, strict=True):
        amap = np.load(out / row["map"])
        assert amap.shape == (32, 32) and amap.dtype == np.float32
        assert float(row["map_max"]) == pytest.approx(float(amap.max()))
        assert amap[int(row["map_max_row"]), int(row["map_max_col"])] == amap.max()
        mask = load_images(out / row["mask"], color="gray")[0] > 0.5
        np.testing.assert_array_equal(mask, amap > 0.05)
        assert int(row["defect_area"]) == int(mask.sum())
        boxes = json.loads(row["boxes"])
        assert len(boxes) == int(row["n_regions"]) == line["n_regions"]
        for (r, c, h, w), region in zip(boxes, line["regions"], strict=True):
            assert (r, c, h, w) == (region["row"], region["col"], region["height"],
                                    region["width"])
            assert mask[r:r + h, c:c + w].any()
        assert line["path"] == row["path"] and line["map_max"] == pytest.approx(amap.max())
    # tiff maps hold the same numbers
    out2 = tmp_path / "r2"
    assert invoke("score", path, defect, "-o", out2, "--save-maps", "tiff", "--sigma", "0",
                  "--quiet").exit_code == 0
    import cv2

    for a, b in zip(_rows(out / "scores.csv"), _rows(out2 / "scores.csv"), strict=True):
        tif = cv2.imread(str(out2 / b["map"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(tif, np.load(out / a["map"]))


def test_score_map_threshold_defaults_to_the_models_own_for_patch_maps(best_model,
                                                                               tmp_path):
    path, defect = best_model
    out = tmp_path / "r"
    assert invoke("score", path, defect, "-o", out, "--locations", "--quiet").exit_code == 0
    rows = _rows(out / "scores.csv")
    # one map threshold for every image: the model's conversion of the image threshold
    # (PatchKNNScorer.map_threshold; the best preset fuses a global score into its own)
    from skcpcae import persistence

    model = persistence.load(path)
    expected = model[-1].estimator_.map_threshold(float(rows[0]["threshold"]))
    assert len({r["map_threshold"] for r in rows}) == 1
    assert float(rows[0]["map_threshold"]) == pytest.approx(expected, rel=1e-5)


def _mvtec_tree(root):
    X, _ = make_parts(10, size=(32, 32), random_state=0)
    Xd, _, masks = make_parts(0, n_anomalies=3, defect="blob", size=(32, 32),
                              random_state=2, return_masks=True)
    cat = root / "plate"
    _write(cat / "train" / "good", X[:8], "g")
    _write(cat / "test" / "good", X[8:], "t")
    _write(cat / "test" / "blob", Xd, "d")
    gt = cat / "ground_truth" / "blob"
    gt.mkdir(parents=True)
    for i, m in enumerate(masks):
        save_image(gt / f"d_{i:02d}_mask.png", m)
    return cat


def test_evaluate_writes_pixel_auroc_and_aupro(tmp_path):
    from skcpcae import persistence
    from skcpcae.baselines import VariationDetector
    from skcpcae.metrics import aupro, pixel_auroc

    cat = _mvtec_tree(tmp_path / "mvtec")
    model = tmp_path / "variation.skops"
    persistence.save(VariationDetector().fit(load_images(cat / "train" / "good")), model)
    out = tmp_path / "report"
    result = invoke("evaluate", model, "--mvtec", tmp_path / "mvtec", "--category", "plate",
                    "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "pixel AUROC" in result.stdout and "AUPRO" in result.stdout
    report = json.loads((out / "metrics.json").read_text())
    # the same numbers from Python
    from skcpcae.datasets import load_mvtec_ad
    from skcpcae.inspection import anomaly_maps

    bunch = load_mvtec_ad(tmp_path / "mvtec", "plate")
    maps = anomaly_maps(persistence.load(model), bunch.X_test)
    assert report["pixel_auroc"] == pytest.approx(pixel_auroc(bunch.masks_test, maps))
    assert report["aupro"] == pytest.approx(aupro(bunch.masks_test, maps))
    assert report["pixel_auroc"] > 0.8
    # plain folders with a masks folder give the same figures
    masks = tmp_path / "masks"
    masks.mkdir()
    for f in (cat / "ground_truth" / "blob").iterdir():
        (masks / f.name).write_bytes(f.read_bytes())
    out2 = tmp_path / "report2"
    result = invoke("evaluate", model, "--good", cat / "test" / "good", "--defect",
                    cat / "test" / "blob", "--masks", masks, "-o", out2, "--quiet")
    assert result.exit_code == 0, result.output
    report2 = json.loads((out2 / "metrics.json").read_text())
    assert report2["aupro"] == pytest.approx(report["aupro"])
    assert report2["pixel_auroc"] == pytest.approx(report["pixel_auroc"])


def test_score_alpha_and_threshold_move_decisions_without_refit(best_model, tmp_path):
    from skcpcae import persistence
    from skcpcae.outlier import set_operating_point

    path, defect = best_model
    new = _write(tmp_path / "new", make_parts(8, size=(32, 32), random_state=7)[0], "new")
    before = path.read_bytes()
    runs = {}
    for name, extra in [("model", []), ("strict", ["--alpha", "0.001"]),
                        ("loose", ["--alpha", "0.3", "--locations"])]:
        out = tmp_path / name
        result = invoke("score", path, new, defect, "-o", out, "--quiet", *extra)
        assert result.exit_code == 0, result.output
        runs[name] = _rows(out / "scores.csv")
    assert path.read_bytes() == before  # the model file is not rewritten
    scores = [float(r["anomaly_score"]) for r in runs["model"]]
    for name, alpha in [("strict", 0.001), ("loose", 0.3)]:
        rows = runs[name]
        # the same scores (no refit), another threshold: the one Python reads off the KDE
        np.testing.assert_allclose([float(r["anomaly_score"]) for r in rows], scores,
                                   rtol=1e-6)
        expected = set_operating_point(persistence.load(path), alpha=alpha)[-1].threshold_
        assert float(rows[0]["threshold"]) == pytest.approx(expected)
        assert [r["decision"] for r in rows] == [
            "defect" if s > expected else "ok" for s in scores]
    t = {n: float(rows[0]["threshold"]) for n, rows in runs.items()}
    assert t["strict"] > t["model"] > t["loose"]
    n_defect = {n: sum(r["decision"] == "defect" for r in rows) for n, rows in runs.items()}
    assert n_defect["strict"] < n_defect["loose"]  # the decisions did change
    # the readable scores: 1 is the threshold; p-values fall as the scores rise
    for rows in runs.values():
        for row in rows:
            assert (float(row["normalized_score"]) > 1) == (row["decision"] == "defect")
            assert 0.0 <= float(row["normality_pvalue"]) <= 1.0
        ranked = sorted(rows, key=lambda r: float(r["anomaly_score"]))
        pvals = [float(r["normality_pvalue"]) for r in ranked]
        assert pvals == sorted(pvals, reverse=True)
    # a fixed threshold between two scores splits the images there
    cut = float(np.median(scores))
    out = tmp_path / "fixed"
    assert invoke("score", path, new, defect, "-o", out, "--threshold", cut,
                  "--quiet").exit_code == 0
    assert [r["decision"] for r in _rows(out / "scores.csv")] == [
        "defect" if s > cut else "ok" for s in scores]


@pytest.mark.parametrize("args, message", [
    (["--alpha", "0.01", "--threshold", "3"], "not both"),
    (["--alpha", "0"], "--alpha must be greater than 0"),
    (["--alpha", "1"], "alpha"),
    (["--threshold", "nan"], "--threshold must be a finite number"),
])
def test_score_operating_point_options_are_checked_first(best_model, tmp_path, args,
                                                         message):
    path, defect = best_model
    result = invoke("score", path, defect, "-o", tmp_path / "r", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "r" / "scores.csv").exists()


def test_score_alpha_needs_a_kde_threshold(tmp_path):
    from skcpcae import persistence
    from skcpcae.baselines import VariationDetector

    X, _ = make_parts(6, size=(32, 32), random_state=0)
    good = _write(tmp_path / "good", X, "g")
    model = tmp_path / "variation.skops"
    persistence.save(VariationDetector().fit(X), model)
    result = invoke("score", model, good, "-o", tmp_path / "r", "--alpha", "0.01")
    assert result.exit_code == 2 and "KDEThresholdClassifier" in result.output
    assert "VariationDetector" in result.output


def _colour_range(png):
    import re

    found = re.search(rb"colour bar: [^\x00]*?, from (\S+) to (\S+?)(?:\x00|$|[^\d.e+-])", png)
    assert found, "no colour range in the PNG text"
    return float(found.group(1)), float(found.group(2))


def test_heatmaps_scale_per_image_by_default_and_run_wide_with_vmax(best_model, tmp_path):
    path, defect = best_model
    own, shared = tmp_path / "own", tmp_path / "shared"
    assert invoke("score", path, defect, "-o", own, "--heatmaps", "--sigma", "0",
                  "--quiet").exit_code == 0
    assert invoke("score", path, defect, "-o", shared, "--heatmaps", "--sigma", "0",
                  "--vmax", "0.5", "--quiet").exit_code == 0
    tops = []
    for row in _rows(own / "scores.csv"):  # each image's own range: up to its map maximum
        lo, hi = _colour_range((own / row["heatmap"]).read_bytes())
        assert hi == pytest.approx(float(row["map_max"]), rel=1e-5) and lo < hi
        tops.append(hi)
    assert len(set(tops)) > 1
    for row in _rows(shared / "scores.csv"):  # one scale for the run
        assert _colour_range((shared / row["heatmap"]).read_bytes()) == (0.0, 0.5)
