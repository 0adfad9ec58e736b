"""End-to-end tests of the ``skcpcae`` command line (fit → score → evaluate) on tiny images."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skcpcae import cli
from skcpcae.datasets import load_images, make_parts, save_image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# the fastest settings of the "aligned" preset: 1 epoch, small patches, no pretrained weights,
# k = 3 neighbours for 12 training images
FAST = [
    "--preset", "aligned",
    "--set", "cpcaeresidualmap__max_epochs=1",
    "--set", "cpcaeresidualmap__patch_size=16",
    "--set", "cpcaeresidualmap__batch_size=64",
    "--set", "deeppoolembedder__weights=None",
    "--set", "kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors=3",
    "--set", "kdethresholdclassifier__cv=3",
]


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=True)


def _write(folder, images, prefix):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        save_image(folder / f"{prefix}_{i:02d}.png", img)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    X, _ = make_parts(16, size=(32, 32), random_state=0)
    Xd, _ = make_parts(0, n_anomalies=4, size=(32, 32), random_state=1)
    return {
        "root": root,
        "good": _write(root / "good", X[:12], "good"),
        "test_good": _write(root / "test_good", X[12:], "ok"),
        "defect": _write(root / "defect", Xd, "bad"),
    }


@pytest.fixture(scope="module")
def model(data):
    path = data["root"] / "model.skops"
    result = invoke("fit", data["good"], "-o", path, *FAST, "--quiet")
    assert result.exit_code == 0, result.output
    return path


def _one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines()
             if ln.strip() and not ln.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- fit


def test_fit_writes_a_loadable_model(model):
    from skcpcae import persistence

    assert model.stat().st_size > 0
    pipe = persistence.load(model)
    assert hasattr(pipe, "predict") and hasattr(pipe, "score_samples")
    # the CNN embedding and the residual peak read the map side by side
    assert [name for name, _ in pipe.steps][:2] == ["cpcaeresidualmap", "featureunion"]
    assert pipe.named_steps["cpcaeresidualmap"].max_epochs == 1  # --set applied
    assert pipe.named_steps["cpcaeresidualmap"].verbose == 0  # progress switched off again


def test_fit_refuses_to_overwrite_without_force(data, model):
    before = model.read_bytes()
    result = invoke("fit", data["good"], "-o", model, *FAST, "--quiet")
    line = _one_line_error(result)
    assert str(model) in line and "use --force" in line
    assert model.read_bytes() == before


@pytest.mark.parametrize(
    "assignment, expected",
    [
        ("cpcaeresidualmap__max_epochs", "STEP__PARAM=VALUE"),
        ("nosuchstep__alpha=1", "Bad --set"),
        ("cpcaeresidualmap__no_such_param=3", "Bad --set"),
    ],
)
def test_fit_bad_set_exits_2(data, tmp_path, assignment, expected):
    out = tmp_path / "m.joblib"
    result = invoke("fit", data["good"], "-o", out, "--preset", "aligned", "--set", assignment)
    assert expected in _one_line_error(result)
    assert not out.exists()


def test_fit_empty_or_missing_folder_exits_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    line = _one_line_error(invoke("fit", empty, "-o", tmp_path / "m.joblib"))
    assert "holds no image files" in line and str(empty) in line
    line = _one_line_error(invoke("fit", tmp_path / "missing", "-o", tmp_path / "m.joblib"))
    assert "No such" in line


def test_fit_bad_options_exit_2(data, tmp_path):
    line = _one_line_error(invoke("fit", data["good"], "-o", tmp_path / "m.joblib",
                                  "--size", "32by32"))
    assert "HEIGHTxWIDTH" in line
    line = _one_line_error(invoke("fit", data["good"], "-o", tmp_path / "m.txt"))
    assert ".joblib or .skops" in line
    line = _one_line_error(invoke("fit", data["good"], "-o", tmp_path / "m.joblib",
                                  "--preset", "nope"))
    assert "Unknown preset" in line


def test_fit_list_params_prints_step_parameters():
    result = invoke("fit", "--preset", "aligned", "--list-params")
    assert result.exit_code == 0, result.output
    assert "cpcaeresidualmap__max_epochs=" in result.stdout
    assert "kdethresholdclassifier__alpha=" in result.stdout


def test_unexpected_error_exits_1_and_debug_shows_it(data, tmp_path, monkeypatch):
    import skcpcae._pipelines

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(skcpcae._pipelines, "make_preset", boom)
    result = invoke("fit", data["good"], "-o", tmp_path / "m.joblib")
    assert result.exit_code == 1
    assert "Unexpected error: RuntimeError: boom" in result.stderr
    assert "--debug" in result.stderr
    result = invoke("fit", data["good"], "-o", tmp_path / "m.joblib", "--debug")
    assert isinstance(result.exception, RuntimeError)


# ----------------------------------------------------------------------------- score


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_score_writes_csv_and_heatmaps(data, model, tmp_path):
    out = tmp_path / "results"
    result = invoke("score", model, data["test_good"], data["defect"], "-o", out,
                    "--heatmaps", "--quiet")
    assert result.exit_code == 0, result.output
    rows = _read_csv(out / "scores.csv")
    assert len(rows) == 8
    assert list(rows[0])[:4] == ["path", "anomaly_score", "decision", "threshold"]
    assert list(rows[0])[-2:] == ["heatmap", "error"]
    assert {"map_max", "map_max_row", "map_max_col", "defect_area", "boxes"} <= set(rows[0])
    assert {r["error"] for r in rows} == {""}
    assert [os.path.basename(r["path"]) for r in rows[:2]] == ["ok_00.png", "ok_01.png"]
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert np.all(np.isfinite(scores))
    assert {r["decision"] for r in rows} <= {"ok", "defect"}
    thresholds = {r["threshold"] for r in rows}
    assert len(thresholds) == 1 and np.isfinite(float(thresholds.pop()))
    # decision agrees with score vs threshold
    for r in rows:
        assert (r["decision"] == "defect") == (float(r["anomaly_score"]) > float(r["threshold"]))

    pngs = sorted((out / "heatmaps").glob("*.png"))
    assert len(pngs) == 8
    for row in rows:
        png = out / row["heatmap"]
        assert png.read_bytes()[:8] == PNG_MAGIC
    figure = load_images(out / rows[-1]["heatmap"])  # image, map, colour bar and title
    assert figure.shape[1] > 200 and figure.shape[2] > 400 and figure.var() > 0
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_score_refuses_overwrite_then_force(data, model, tmp_path):
    out = tmp_path / "results"
    one = sorted(data["defect"].iterdir())[0]
    assert invoke("score", model, one, "-o", out, "--quiet").exit_code == 0
    before = (out / "scores.csv").read_bytes()
    line = _one_line_error(invoke("score", model, one, "-o", out, "--quiet"))
    assert "scores.csv" in line and "--force" in line and "--resume" in line
    assert (out / "scores.csv").read_bytes() == before
    result = invoke("score", model, one, data["test_good"], "-o", out, "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(_read_csv(out / "scores.csv")) == 5


def test_score_refuses_to_overwrite_heatmaps(data, model, tmp_path):
    out = tmp_path / "results"
    (out / "heatmaps").mkdir(parents=True)
    (out / "heatmaps" / "bad_00.png").write_bytes(b"keep me")
    line = _one_line_error(invoke("score", model, data["defect"], "-o", out, "--heatmaps"))
    assert "bad_00.png" in line and "use --force" in line
    assert (out / "heatmaps" / "bad_00.png").read_bytes() == b"keep me"
    assert not (out / "scores.csv").exists()


def test_score_rejects_a_file_that_is_not_a_model(data, tmp_path):
    junk = tmp_path / "model.joblib"
    junk.write_text("this is not a model")
    line = _one_line_error(invoke("score", junk, data["defect"], "-o", tmp_path / "r"))
    assert "not a usable skcpcae model file" in line
    line = _one_line_error(invoke("score", tmp_path / "nope.joblib", data["defect"],
                                  "-o", tmp_path / "r"))
    assert "No such model file" in line


def test_score_heatmaps_unavailable_for_a_model_without_maps(data, tmp_path):
    from skcpcae import persistence
    from skcpcae.outlier import KNNAnomalyScorer

    path = tmp_path / "knn.skops"
    persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(np.random.rand(5, 1024)), path)
    line = _one_line_error(invoke("score", path, data["defect"], "-o", tmp_path / "r",
                                  "--heatmaps"))
    assert "are unavailable for this model" in line


def test_score_heatmaps_of_a_detector_with_anomaly_map(data, tmp_path):
    from skcpcae import persistence
    from skcpcae.baselines import VariationDetector

    path = tmp_path / "variation.skops"  # no torch inside: skops can hold it
    persistence.save(VariationDetector().fit(load_images(data["good"])), path)
    out = tmp_path / "results"
    result = invoke("score", path, data["defect"], "-o", out, "--heatmaps", "--quiet")
    assert result.exit_code == 0, result.output
    rows = _read_csv(out / "scores.csv")
    assert len(rows) == 4 and all((out / r["heatmap"]).is_file() for r in rows)
    assert load_images(out / rows[0]["heatmap"]).shape[1] > 200


def test_best_preset_fits_and_writes_image_sized_heatmaps(data, tmp_path):
    # The best preset's maps are a patch grid (one cell per 16 pixels); the heatmaps are
    # upsampled to the image, and the skops file needs no extra trusted types.
    path = tmp_path / "best.skops"
    result = invoke("fit", data["good"], "-o", path, "--preset", "best",
                    "--set", "deeppatchembedder__weights=None",
                    "--set", "deeppatchembedder__stages=[2]",
                    "--set", "kdethresholdclassifier__cv=3", "--quiet")
    assert result.exit_code == 0, result.output
    out = tmp_path / "results"
    result = invoke("score", path, data["defect"], "-o", out, "--heatmaps", "--quiet")
    assert result.exit_code == 0, result.output
    rows = _read_csv(out / "scores.csv")
    assert len(rows) == 4
    assert load_images(out / rows[0]["heatmap"]).shape[1] > 200


def test_save_model_skops_falls_back_to_joblib(tmp_path, monkeypatch):
    from skcpcae import persistence
    from skcpcae.outlier import KNNAnomalyScorer

    real_save = persistence.save

    def save(est, path, **kwargs):
        if str(path).endswith(".skops"):
            raise TypeError("format='skops' cannot store torch objects")
        return real_save(est, path, **kwargs)

    monkeypatch.setattr(persistence, "save", save)
    knn = KNNAnomalyScorer(n_neighbors=2).fit(np.random.rand(5, 3))
    with pytest.raises(cli.CLIError, match="saved it as .*m.joblib"):
        cli._save_model(knn, tmp_path / "m.skops", False)
    assert (tmp_path / "m.joblib").is_file() and not (tmp_path / "m.skops").exists()
    # m.joblib is the user's now: the next fallback picks a fresh name, nothing is lost
    with pytest.raises(cli.CLIError, match="already exists, so the model was saved as"):
        cli._save_model(knn, tmp_path / "m.skops", False)
    assert (tmp_path / "m.joblib").is_file() and len(list(tmp_path.glob("m-unsaved-*.joblib"))) == 1


def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def test_score_and_evaluate_a_model_that_reads_files(data, tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skcpcae import persistence
    from skcpcae.datasets import ImageReader, list_images
    from skcpcae.outlier import KNNAnomalyScorer

    pipe = make_pipeline(ImageReader(), FunctionTransformer(_flatten),
                         KNNAnomalyScorer(n_neighbors=3))
    pipe.fit(list_images(data["good"]))
    path = tmp_path / "reader.joblib"
    persistence.save(pipe, path)
    out = tmp_path / "results"
    result = invoke("score", path, data["defect"], "-o", out, "--quiet", "--allow-pickle")
    assert result.exit_code == 0, result.output
    rows = _read_csv(out / "scores.csv")
    expected = -pipe.score_samples(list_images(data["defect"]))
    np.testing.assert_allclose([float(r["anomaly_score"]) for r in rows], expected)
    # k-NN offset_ gives the threshold column
    assert float(rows[0]["threshold"]) == pytest.approx(-pipe[-1].offset_)
    result = invoke("evaluate", path, "--good", data["test_good"], "--defect", data["defect"],
                    "-o", tmp_path / "report", "--quiet", "--allow-pickle")
    assert result.exit_code == 0, result.output


def test_score_empty_folder_exits_2(model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_error(invoke("score", model, empty, "-o", tmp_path / "r"))
    assert "holds no image files" in line


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_writes_report(data, model, tmp_path):
    out = tmp_path / "report"
    result = invoke("evaluate", model, "--good", data["test_good"], "--defect", data["defect"],
                    "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "AUROC" in result.stdout and "average precision" in result.stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_samples"] == 8 and report["n_anomalous"] == 4
    assert 0.0 <= report["auroc"] <= 1.0 and 0.0 <= report["average_precision"] <= 1.0
    assert report["tp"] + report["fn"] == 4 and report["tn"] + report["fp"] == 4
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    for name in ("roc.png", "pr.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert plt.imread(out / name)[..., :3].var() > 1e-4
    # a second run refuses to overwrite the report
    line = _one_line_error(invoke("evaluate", model, "--good", data["test_good"],
                                  "--defect", data["defect"], "-o", out))
    assert "metrics.json" in line and "use --force" in line


def test_evaluate_mvtec_layout(data, model, tmp_path):
    root = tmp_path / "mvtec"
    cat = root / "part"
    for sub, src in (("train/good", "good"), ("test/good", "test_good"),
                     ("test/crack", "defect")):
        (cat / sub).mkdir(parents=True)
        for p in sorted(data[src].iterdir())[:3]:
            (cat / sub / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "report"
    result = invoke("evaluate", model, "--mvtec", root, "--category", "part", "-o", out,
                    "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_samples"] == 6 and report["data"]["category"] == "part"
    line = _one_line_error(invoke("evaluate", model, "--mvtec", root, "--category", "nope",
                                  "-o", tmp_path / "r2"))
    assert "nope" in line


def test_evaluate_needs_both_classes_or_mvtec(data, model, tmp_path):
    line = _one_line_error(invoke("evaluate", model, "--good", data["test_good"],
                                  "-o", tmp_path / "r"))
    assert "--defect" in line
    line = _one_line_error(invoke("evaluate", model, "-o", tmp_path / "r"))
    assert "--mvtec" in line


# ----------------------------------------------------------------------------- misc


def test_help_lists_commands_and_examples():
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("fit", "score", "evaluate", "Examples"):
        assert word in result.stdout
    result = invoke("fit", "--help")
    assert result.exit_code == 0 and "--set" in result.stdout and "--force" in result.stdout


def test_benchmark_tooling_is_not_an_installed_command():
    # the harness and the ELPV demo live in benchmarks/ (make demo), not in the package
    for name in ("benchmark", "demo"):
        assert invoke(name).exit_code == 2
    from pathlib import Path

    import skcpcae

    package = Path(skcpcae.__file__).parent
    assert not (package / "_benchmark.py").exists() and not (package / "_demo.py").exists()


def test_parse_set_literals_and_strings():
    params = cli._parse_set(["a__b=5", "a__c=0.5", "a__d=True", "a__e=(3, 4)",
                             "a__f=resnet18", "a__g='x=y'", "a__h="])
    assert params == {"a__b": 5, "a__c": 0.5, "a__d": True, "a__e": (3, 4),
                      "a__f": "resnet18", "a__g": "x=y", "a__h": ""}


def test_heatmap_names_are_unique():
    from skcpcae._cli._maps import _heatmap_names

    names = _heatmap_names(["a/x.png", "b/x.png", "c/x-1.png", "y.tif"])
    assert names == ["x.png", "x-1.png", "x-1_1.png", "y.png"]
    assert len(set(names)) == 4


# ----------------------------------------------------------------------------- streaming,
# concurrent runs, full disks, interruptions (issues #13, #18)


def _knn_model(data, tmp_path):
    """A tiny model (k-NN on flattened 32x32 images) as a .skops file, fitted in ms."""
    from skcpcae import persistence
    from skcpcae.outlier import KNNAnomalyScorer

    path = tmp_path / "knn.skops"
    X = load_images(data["good"])
    persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(X.reshape(len(X), -1)), path)
    return path


def _many(data, tmp_path, n=10):
    folder = tmp_path / "many"
    folder.mkdir()
    sources = sorted(data["test_good"].iterdir()) + sorted(data["defect"].iterdir())
    for i in range(n):
        (folder / f"img_{i:03d}.png").write_bytes(sources[i % len(sources)].read_bytes())
    return folder


def _leftovers(folder):
    """Hidden files (locks, temporary files) left in a folder tree."""
    return [p for p in folder.rglob(".*")]


def test_score_two_concurrent_runs_one_wins(data, tmp_path):
    import threading

    from skcpcae import score_files

    model = _knn_model(data, tmp_path)
    folder = _many(data, tmp_path, 6)
    out = tmp_path / "results"
    out.mkdir()
    started, release = threading.Event(), threading.Event()
    outcome = {}

    def slow_batch(model_, X, paths):  # run A holds the folder while run B starts
        started.set()
        assert release.wait(60)
        from skcpcae._scoring import _default_score_batch

        return _default_score_batch(model_, X, paths)

    def run_a():
        try:
            outcome["a"] = score_files(model, sorted(map(str, folder.iterdir())),
                                       out / "scores.csv", batch_size=3,
                                       score_batch=slow_batch)
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["a"] = exc

    thread = threading.Thread(target=run_a)
    thread.start()
    assert started.wait(60)
    before = (out / "scores.csv").read_bytes()
    result_b = invoke("score", model, folder, "-o", out, "--force", "--quiet")
    release.set()
    thread.join(60)
    line = _one_line_error(result_b)  # B: exit 2, refused at once
    assert "in use by another skcpcae run" in line and f"pid {os.getpid()}" in line
    assert before == b""  # B touched nothing while A was running
    assert outcome["a"].n_scored == 6  # A: finished, every row there once
    rows = _read_csv(out / "scores.csv")
    assert sorted(os.path.basename(r["path"]) for r in rows) == sorted(
        p.name for p in folder.iterdir())
    assert not _leftovers(out)
    # once A is done the folder is free again
    assert invoke("score", model, folder, "-o", out, "--force", "--quiet").exit_code == 0


def test_score_two_concurrent_processes_one_wins(data, tmp_path):
    # two real `skcpcae score` processes: the lock file is held while one scores
    import subprocess
    import sys

    model = _knn_model(data, tmp_path)
    folder = _many(data, tmp_path, 40)
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "skcpcae.cli", "score", str(model), str(folder), "-o",
           str(out), "--batch-size", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(2)]
    results = [(p.wait(300), p.stderr.read().decode()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert loser.strip().startswith("Error: ") and len(loser.strip().splitlines()) == 1
    assert "in use by another skcpcae run" in loser or "already exists" in loser
    rows = _read_csv(out / "scores.csv")
    assert len(rows) == 40 and len({r["path"] for r in rows}) == 40  # nothing lost or doubled
    assert not _leftovers(out)


def test_score_checks_it_can_write_before_reading(data, tmp_path, monkeypatch):
    import errno

    import skcpcae.datasets._io as io_module

    model = _knn_model(data, tmp_path)
    reads = []
    real = io_module._read_native
    monkeypatch.setattr(io_module, "_read_native",
                        lambda *a, **k: reads.append(a[0]) or real(*a, **k))

    import skcpcae._scoring as scoring

    def refuse(folder):  # the lock file cannot be created: a read-only folder
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(scoring, "claim_output", refuse)
    line = _one_line_error(invoke("score", model, data["defect"], "-o", tmp_path / "ro"))
    assert "Permission denied" in line
    assert reads == []  # not one image was read


def test_score_full_disk_is_one_line_and_keeps_finished_batches(data, tmp_path, monkeypatch):
    import errno

    import skcpcae.utils._files as files

    model = _knn_model(data, tmp_path)
    folder = _many(data, tmp_path, 6)
    out = tmp_path / "results"
    calls = []
    real_write = files._write

    def write(fd, view):  # the disk fills up during the second batch's append
        calls.append(len(view))
        if len(calls) == 2:
            real_write(fd, view[: len(view) // 2])  # half of it reaches the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, view)

    monkeypatch.setattr(files, "_write", write)
    result = invoke("score", model, folder, "-o", out, "--batch-size", "3", "--quiet")
    line = _one_line_error(result)
    assert "disk is full" in line and "--resume" in line
    rows = _read_csv(out / "scores.csv")  # the first batch, whole; no torn row
    assert len(rows) == 3 and all(r["anomaly_score"] for r in rows)
    assert (out / "scores.csv").read_bytes().endswith(b"\n")
    assert not _leftovers(out)  # no lock, no temporary file
    monkeypatch.setattr(files, "_write", real_write)
    result = invoke("score", model, folder, "-o", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(_read_csv(out / "scores.csv")) == 6


def test_score_resume_after_interruption_scores_only_the_missing(data, tmp_path,
                                                                monkeypatch):
    import skcpcae.datasets._io as io_module

    model = _knn_model(data, tmp_path)
    folder = _many(data, tmp_path, 10)
    out = tmp_path / "results"
    real = io_module._read_native
    reads = []

    def read(path, *args, **kwargs):
        reads.append(os.path.basename(path))
        if len(reads) == 7:  # Ctrl-C while reading the 4th batch (of 2)
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(io_module, "_read_native", read)
    result = invoke("score", model, folder, "-o", out, "--batch-size", "2", "--heatmaps")
    assert result.exit_code == 2  # k-NN on pixels has no maps: refused before any read
    assert reads == []
    result = invoke("score", model, folder, "-o", out, "--batch-size", "2")
    assert result.exit_code == 130 and "--resume" in result.stderr
    first = _read_csv(out / "scores.csv")
    assert len(first) == 6  # three finished batches
    assert not _leftovers(out)
    line = _one_line_error(invoke("score", model, folder, "-o", out))
    assert "--resume" in line  # a plain rerun is refused, nothing destroyed
    reads.clear()
    result = invoke("score", model, folder, "-o", out, "--batch-size", "2", "--resume",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(reads) == [f"img_{i:03d}.png" for i in range(6, 10)]  # only the missing
    rows = _read_csv(out / "scores.csv")
    assert rows[:6] == first
    assert [os.path.basename(r["path"]) for r in rows] == [f"img_{i:03d}.png"
                                                          for i in range(10)]


def test_score_unreadable_image_is_a_row_unless_on_error_fail(data, tmp_path, monkeypatch):
    model = _knn_model(data, tmp_path)
    folder = _many(data, tmp_path, 4)
    (folder / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "=HYPERLINK(1).png").write_bytes((folder / "img_000.png").read_bytes())
    out = tmp_path / "results"
    result = invoke("score", model, folder, "-o", out, "--batch-size", "2", "--quiet")
    assert result.exit_code == 0, result.output
    rows = {os.path.basename(r["path"].lstrip("'")): r for r in _read_csv(out / "scores.csv")}
    assert len(rows) == 5
    bad = rows["img_001.png"]
    assert bad["anomaly_score"] == "" and "Cannot decode image file" in bad["error"]
    assert all(r["error"] == "" and r["anomaly_score"] for n, r in rows.items()
               if n != "img_001.png")
    # a cell a spreadsheet would run as a formula is written as text: a relative path
    # given as it is starts with "="
    from skcpcae._scoring import score_files

    monkeypatch.chdir(folder)
    score_files(model, ["=HYPERLINK(1).png", "img_000.png"], tmp_path / "rel.csv")
    raw = (tmp_path / "rel.csv").read_text()
    assert "\n'=HYPERLINK(1).png," in raw and "\nimg_000.png," in raw
    line = _one_line_error(invoke("score", model, folder, "-o", tmp_path / "r2",
                                  "--on-error", "fail", "--quiet"))
    assert "img_001.png" in line and "no image had been scored, no row is kept" in line
    # one image per batch: the two before the broken file are on disk, and the line says so
    line = _one_line_error(invoke("score", model, folder, "-o", tmp_path / "r3",
                                  "--on-error", "fail", "--batch-size", "1", "--quiet"))
    assert "the 2 rows of the finished batches are kept" in line and "--resume" in line
    assert len(_read_csv(tmp_path / "r3" / "scores.csv")) == 2


def test_score_refuses_a_decompression_bomb_by_name(data, tmp_path):
    model = _knn_model(data, tmp_path)
    folder = _many(data, tmp_path, 2)
    _bomb_png(folder / "bomb.png")
    out = tmp_path / "results"
    result = invoke("score", model, folder, "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    bomb = [r for r in _read_csv(out / "scores.csv") if r["path"].endswith("bomb.png")]
    assert "30000x30000" in bomb[0]["error"] and "before decoding" in bomb[0]["error"]


def _bomb_png(path, height=30000, width=30000):
    """A PNG whose header says height x width (8-bit gray) and holds a few rows of data."""
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4, 9)
    path.write_bytes(PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def test_fit_refuses_mixed_sizes_and_lists_them(data, tmp_path):
    folder = tmp_path / "mixed"
    _write(folder, load_images(data["good"])[:3], "a")
    save_image(folder / "z_small.png", np.zeros((20, 24)))
    line = _one_line_error(invoke("fit", folder, "-o", tmp_path / "m.skops"))
    assert "2 different sizes" in line and "32x32: 3 file(s)" in line
    assert "20x24: 1 file(s)" in line and "z_small.png" in line
    assert "--size" in line and "--keep-aspect" in line
    assert not (tmp_path / "m.skops").exists()


def test_fit_hints_at_recursive_for_a_folder_of_subfolders(data, tmp_path):
    root = tmp_path / "by_day"
    _write(root / "monday", load_images(data["good"])[:2], "a")
    line = _one_line_error(invoke("fit", root, "-o", tmp_path / "m.skops"))
    assert "'monday'" in line and "-r / --recursive" in line


def _fake_unwritable(monkeypatch, folder, error):
    """persistence.save raises ``error`` for every file in ``folder`` (as a read-only
    folder or a full disk would: tests run as root, where chmod does not stop writes)."""
    from skcpcae import persistence

    real = persistence.save

    def save(est, path, **kwargs):
        if os.path.dirname(os.path.abspath(path)) == str(folder):
            raise error
        return real(est, path, **kwargs)

    monkeypatch.setattr(persistence, "save", save)


@pytest.mark.parametrize("errno_name", ["EROFS", "ENOSPC"])
def test_fit_onto_unwritable_folder_saves_the_model_elsewhere(data, tmp_path, monkeypatch,
                                                              errno_name):
    import errno
    import re
    import tempfile

    from skcpcae import persistence

    target = tmp_path / "ro"
    target.mkdir()
    code = getattr(errno, errno_name)
    _fake_unwritable(monkeypatch, target, OSError(code, os.strerror(code)))
    good = tmp_path / "good_few"
    _write(good, load_images(data["good"])[:6], "g")
    result = invoke("fit", good, "-o", target / "m.skops", "--preset", "best",
                    "--set", "deeppatchembedder__weights=None",
                    "--set", "deeppatchembedder__stages=[2]",
                    "--set", "kdethresholdclassifier__cv=2", "--quiet")
    line = _one_line_error(result)
    assert os.strerror(code) in line
    saved = Path(re.search(r"saved as '([^']+)' instead", line).group(1))
    assert saved.parent == Path(tempfile.gettempdir()) and saved.suffix == ".skops"
    try:
        model = persistence.load(saved)
        assert model.predict(load_images(data["defect"])).shape == (4,)
    finally:
        saved.unlink()
    assert not (target / "m.skops").exists() and not _leftovers(target)


def test_save_model_oserror_falls_back_beside_the_file(tmp_path, monkeypatch):
    import errno

    from skcpcae import persistence
    from skcpcae.outlier import KNNAnomalyScorer

    real = persistence.save

    def save(est, path, **kwargs):
        if os.path.basename(path) == "m.skops":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(est, path, **kwargs)

    monkeypatch.setattr(persistence, "save", save)
    knn = KNNAnomalyScorer(n_neighbors=2).fit(np.random.rand(5, 3))
    with pytest.raises(cli.CLIError, match="No space left.*saved as .*m-unsaved-.*skops"):
        cli._save_model(knn, tmp_path / "m.skops", False)
    (saved,) = tmp_path.glob("m-unsaved-*.skops")
    assert persistence.load(saved).n_neighbors == 2


def test_fit_refuses_a_second_fit_onto_the_same_file(data, tmp_path):
    from skcpcae.utils._files import claim_output

    out = tmp_path / "m.skops"
    with claim_output(out):  # another fit is writing this model file
        line = _one_line_error(invoke("fit", data["good"], "-o", out, *FAST, "--quiet"))
    assert "in use by another skcpcae run" in line and not out.exists()
