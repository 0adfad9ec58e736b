"""The benchmark harness behind `make demo` and benchmarks/run.py (benchmarks/_harness.py)."""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("elpv_dataset")

from skcpcae.utils._report import update_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the harness is tooling, not in the package
import _harness as _benchmark  # noqa: E402


def test_quick_run_writes_its_table_and_csv(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nkept text\n")
    out_csv = tmp_path / "run.csv"
    rows = _benchmark.main(
        ["--methods", "variation", "nearest-image", "--datasets", "elpv-mono", "--quick",
         "--write", "--docs", str(docs), "--csv", str(out_csv)],
        section="run",
    )
    assert [r["method"] for r in rows] == ["variation", "nearest-image"]
    for r in rows:
        assert 0.0 <= r["auroc"] <= 1.0 and r["images_per_s"] > 0 and r["fit_s"] >= 0
    text = docs.read_text()
    assert "kept text" in text and "<!-- run:start -->" in text and "| variation |" in text
    with open(out_csv) as f:
        assert len(list(csv.DictReader(f))) == 2


def test_unknown_method_and_dataset_are_refused():
    with pytest.raises(ValueError, match="Unknown method"):
        _benchmark.run(["nope"], ["elpv-mono"], quick=True, verbose=False)
    with pytest.raises(ValueError, match="Unknown dataset"):
        _benchmark.run(["variation"], ["cifar"], quick=True, verbose=False)


def test_update_section_replaces_only_its_own_block(tmp_path):
    path = tmp_path / "b.md"
    update_section(path, "a", "one")
    update_section(path, "b", "two")
    update_section(path, "a", "three")
    text = path.read_text()
    assert "three" in text and "two" in text and "one" not in text
    assert text.count("<!-- a:start -->") == 1


def test_peak_rss_sees_an_allocation():
    with _benchmark._PeakRSS() as mem:
        block = np.ones(50 * 2**20 // 8)  # 50 MiB
        block.sum()
    assert mem.mib > 30


def test_peak_rss_sees_a_block_freed_before_exit():
    # Allocated and freed between two samples: only the high-water mark
    # (or luck) sees it. Linux-only, where the mark can be reset.
    if not _benchmark._PeakRSS._reset_high_water_mark():
        pytest.skip("no resettable VmHWM on this platform")
    with _benchmark._PeakRSS() as mem:
        block = np.ones(80 * 2**20 // 8)
        del block
    assert mem.mib > 60


def test_target_lines_say_how_far():
    rows = [
        dict(dataset="elpv-mono", method="best", auroc=0.975, images_per_s=30.0),
        dict(dataset="elpv-mono", method="patchcore", auroc=0.959, images_per_s=1.0),
        dict(dataset="elpv-poly", method="best", auroc=0.85, images_per_s=10.0),
        dict(dataset="elpv-poly", method="patchcore", auroc=0.896, images_per_s=1.0),
        dict(dataset="mvtec:x:y", method="best", auroc=0.5, images_per_s=1.0),
    ]
    mono, poly = _benchmark.target_lines(rows)
    assert "(met); ahead of patchcore by 0.016" in mono and "30.0 images/s" in mono
    assert "0.070 short" in poly and "behind patchcore by 0.046" in poly and "not met" in poly


def test_docs_and_csv_default_to_the_repository_not_the_working_directory():
    assert _benchmark.DOCS == ROOT / "docs" / "benchmarks.md" and _benchmark.DOCS.exists()
    assert _benchmark.RESULTS == ROOT / "benchmarks" / "results"


def test_demo_runs_the_three_main_methods(monkeypatch):
    seen = {}
    monkeypatch.setattr(_benchmark, "main", lambda argv, **kw: seen.update(kw) or [])
    _benchmark.demo(["--quick"])
    assert seen["default_methods"] == ["deep-feature", "cpcae-paper", "best"]
    assert seen["section"] == "demo"


def _tiny_split(dataset, quick):
    """A stand-in for the ELPV split: 8 flat training images, 4 test images (2 blotched)."""
    rng = np.random.default_rng(0)
    X_tr = 0.5 + 0.01 * rng.standard_normal((8, 32, 32)).astype(np.float32)
    X_te = 0.5 + 0.01 * rng.standard_normal((4, 32, 32)).astype(np.float32)
    X_te[2:, 8:16, 8:16] = 1.0
    return X_tr, X_te, np.array([0, 0, 1, 1]), np.ones(4, bool)


def test_anomalib_rows_are_skipped_with_the_install_line_without_anomalib(
        monkeypatch, tmp_path, capsys):
    import _anomalib_rows

    monkeypatch.setitem(sys.modules, "anomalib", None)  # `import anomalib` raises ImportError
    monkeypatch.setattr(_benchmark, "METHODS", _anomalib_rows.register(dict(_benchmark.METHODS)))
    monkeypatch.setattr(_benchmark, "_load", _tiny_split)
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- run:start -->\nfull table\n<!-- run:end -->\n")
    rows = _benchmark.main(
        ["--methods", "variation", "anomalib-patchcore", "anomalib-padim", "--datasets",
         "elpv-mono", "--section", "compare", "--write", "--docs", str(docs),
         "--csv", str(tmp_path / "compare.csv")])
    assert [r["method"] for r in rows] == ["variation"]
    out = capsys.readouterr().out
    for name in ("anomalib-patchcore", "anomalib-padim"):
        assert f"{name} skipped: anomalib is not installed" in out
    text = docs.read_text()
    assert "full table" in text  # --section compare leaves the full run's table alone
    section = text.split("<!-- compare:start -->")[1].split("<!-- compare:end -->")[0]
    assert "| variation |" in section and "Skipped rows:" in section
    assert "- elpv-mono, anomalib-padim: anomalib is not installed" in section
    assert ".[compare,elpv]" in section
    assert "benchmarks/run.py --methods variation anomalib-patchcore" in section  # the command


def test_target_lines_compare_best_with_every_other_row():
    rows = [
        dict(dataset="elpv-mono", method="best", auroc=0.95, images_per_s=30.0),
        dict(dataset="elpv-mono", method="patchcore", auroc=0.94, images_per_s=1.0),
        dict(dataset="elpv-mono", method="anomalib-patchcore", auroc=0.96, images_per_s=9.0),
    ]
    (line,) = _benchmark.target_lines(rows)
    assert "ahead of patchcore by 0.010" in line
    assert "behind anomalib-patchcore by 0.010" in line
    assert "not ahead of anomalib-patchcore" in line and "30.0 images/s vs target 25" in line
    (line,) = _benchmark.target_lines(rows[:2])
    assert "ahead of every other row" in line


def test_anomalib_detector_flags_a_blotch_when_anomalib_is_installed(capsys):
    pytest.importorskip("anomalib")
    import _anomalib_rows

    X_tr, X_te, y, _ = _tiny_split("elpv-mono", True)
    for model in ("patchcore", "padim"):
        det = _anomalib_rows.AnomalibDetector(model, input_size=64, batch_size=4).fit(X_tr)
        s = det.score_samples(X_te)  # higher = more normal
        assert s.shape == (4,) and s[2:].max() < s[:2].min(), (model, s)
    assert "Coreset" not in capsys.readouterr().err  # the harness log keeps to its rows


def test_scaling_symmetries_are_the_eight_of_a_square():
    import scaling

    image = np.arange(9.0).reshape(3, 3)
    out = {scaling._symmetry(image, t).tobytes() for t in range(8)}
    assert len(out) == 8 and scaling._symmetry(image, 0).tobytes() == image.tobytes()


def test_scaling_crossover_recovers_a_known_power_law():
    import scaling

    # k-NN per scored image = 0.01 * n ms (linear), at fit = 1e-5 * n**2 s; backbone 20 ms
    rows = [dict(n_train=n, knn_ms_per_image=0.01 * n, knn_fit_s=1e-5 * n**2,
                 backbone_ms_per_image=20.0, rest_ms_per_image=0.0, backbone_fit_s=0.02 * n)
            for n in (100, 300, 1000, 3000)]
    lines = "\n".join(scaling.crossover_lines(rows))
    assert "n^1.00 ms" in lines and "n^2.00 s" in lines
    assert "catches up with it at n ~ 2,000 normals" in lines  # 0.01 n = 20
    assert "below 25 images/s at n ~ 2,000" in lines  # 40 ms budget - 20 ms backbone
    assert "reaches 60 s at n ~ 2,449" in lines  # sqrt(60 / 1e-5)
