"""Scoring at scale: the batch-scoring callable, and the same rows from a Dask cluster.

The Dask tests run a real ``distributed.LocalCluster`` (two worker processes, one thread each,
on 127.0.0.1; nothing else is reached) and are skipped, with the reason, when the ``dask``
extra is not installed. ``make test`` installs it.
"""

import csv
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skcpcae import cli, persistence, score_files
from skcpcae.datasets import make_parts, save_image
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.scale import BatchScorer

try:
    import distributed
except ImportError:  # pragma: no cover - the dask extra is missing
    distributed = None

needs_dask = pytest.mark.skipif(
    distributed is None,
    reason="needs the dask extra (pip install 'skcpcae[dask]'; make test installs it)",
)


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=True)


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """1,000 image files (copies of 20 distinct 32x32 parts, 4 with a defect) and the
    training images of the models."""
    root = tmp_path_factory.mktemp("scale")
    X, _ = make_parts(16, n_anomalies=4, size=(32, 32), random_state=0)
    sources = [save_image(root / f"src_{i:02d}.png", x) for i, x in enumerate(X)]
    folder = root / "many"
    folder.mkdir()
    data = [Path(s).read_bytes() for s in sources]
    for i in range(1000):
        (folder / f"img_{i:04d}.png").write_bytes(data[i % len(data)])
    return {"root": root, "X": X, "folder": folder,
            "paths": sorted(str(p) for p in folder.iterdir())}


@pytest.fixture(scope="module")
def knn_model(images):
    """A k-NN on flattened 32x32 images, as a .skops file (fitted in ms, no torch)."""
    path = images["root"] / "knn.skops"
    X = images["X"][:12]
    persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(X.reshape(len(X), -1)), path)
    return path


# ----------------------------------------------------------------------------- the callable


def test_batch_scorer_loads_the_model_once_per_process(images, knn_model, monkeypatch):
    import skcpcae.scale as scale

    loads = []
    real = persistence.load
    monkeypatch.setattr(persistence, "load", lambda *a, **k: loads.append(a) or real(*a, **k))
    monkeypatch.setattr(scale, "_MODELS", type(scale._MODELS)())
    scorer = BatchScorer(knn_model)
    blob = pickle.dumps(scorer)
    assert len(blob) < 2000  # the path and its SHA-256 travel, not the model
    copy = pickle.loads(blob)
    paths = images["paths"][:6]
    rows = scorer(paths[:3]) + copy(paths[3:])
    assert len(loads) == 1  # one load serves the scorer and its copy
    assert scorer.get_model() is copy.get_model()
    summary_rows = _score_to_rows(knn_model, paths, images["root"] / "once.csv")
    assert [r["path"] for r in rows] == paths
    assert [repr(r["anomaly_score"]) for r in rows] == [r["anomaly_score"]
                                                         for r in summary_rows]


def test_batch_scorer_refuses_a_model_file_that_changed(images, knn_model, tmp_path):
    import shutil

    path = tmp_path / "model.skops"
    shutil.copyfile(knn_model, path)
    scorer = BatchScorer(path)
    X = images["X"][:12]
    persistence.save(KNNAnomalyScorer(n_neighbors=3).fit(X.reshape(len(X), -1)), path,
                     overwrite=True)
    with pytest.raises(ValueError, match="SHA-256"):
        scorer(images["paths"][:2])


def test_batch_scorer_maps_paths_columns_and_arrays(images, knn_model, tmp_path):
    scorer = BatchScorer(knn_model)
    paths = images["paths"][:4] + [str(tmp_path / "missing.png")]
    rows = scorer(paths)
    assert [r["path"] for r in rows] == paths
    assert rows[-1]["error"].startswith("FileNotFoundError") and "anomaly_score" not in rows[-1]
    columns = scorer({"path": np.array(paths)})  # Ray Data's default batch format
    assert columns["path"] == paths and columns["anomaly_score"][:4] == [
        r["anomaly_score"] for r in rows[:4]] and columns["anomaly_score"][4] is None
    from_arrays = scorer(images["X"][:3])["anomaly_score"]
    model = scorer.get_model()
    expected = -model.score_samples(images["X"][:3].reshape(3, -1))
    np.testing.assert_array_equal(from_arrays, expected)


def test_batch_scorer_maps_a_pandas_frame(images, knn_model):
    pd = pytest.importorskip("pandas", reason="pandas (Spark's and Ray's frames) is optional")
    frame = BatchScorer(knn_model)(pd.DataFrame({"path": images["paths"][:3]}))
    assert list(frame.columns) == ["path", "anomaly_score", "decision", "threshold", "error"]
    assert len(frame) == 3 and (frame["error"] == "").all()


def test_progress_bar_shows_images_per_second_and_time_left(images, knn_model, tmp_path,
                                                           capsys):
    score_files(knn_model, images["paths"][:20], tmp_path / "s.csv", batch_size=5, verbose=1)
    err = capsys.readouterr().err
    assert "20/20" in err and "img/s" in err and "<00:00" in err  # elapsed<left, rate


def test_parquet_output_holds_the_csv_rows_and_resumes(images, knn_model, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet",
                             reason="needs the parquet extra (make test installs it)")
    paths = images["paths"][:30] + [str(tmp_path / "missing.png")]
    csv_rows = _score_to_rows(knn_model, paths, tmp_path / "s.csv", batch_size=8)
    out = tmp_path / "s.parquet"
    score_files(knn_model, paths[:17], out, batch_size=8)  # an interrupted run
    parts_before = sorted(p.name for p in out.glob("part-*.parquet"))
    summary = score_files(knn_model, paths, out, batch_size=8, resume=True)
    assert sorted(p.name for p in out.glob("part-*.parquet"))[:len(parts_before)] == \
        parts_before  # the parts already written are kept, not rewritten
    assert summary.n_skipped == 17 and summary.n_images == len(paths)
    table = pq.read_table(out).to_pylist()
    assert [r["path"] for r in table] == [r["path"] for r in csv_rows]
    for got, want in zip(table, csv_rows, strict=True):
        if want["error"]:
            assert got["error"] == want["error"] and got["anomaly_score"] is None
        else:
            assert got["anomaly_score"] == pytest.approx(float(want["anomaly_score"]), rel=1e-12)
            assert str(got["decision"]) == want["decision"]


def _score_to_rows(model, paths, out, **kwargs):
    score_files(model, paths, out, **kwargs)
    return _read_csv(out)


# ----------------------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def cluster():
    if distributed is None:
        pytest.skip("needs the dask extra (pip install 'skcpcae[dask]')")
    saved = dict(os.environ)  # the nanny leaks OMP_NUM_THREADS=1, ... into this process
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            yield cluster, client
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def local_csv(images, knn_model):
    out = images["root"] / "local"
    result = invoke("score", knn_model, images["folder"], "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    return (out / "scores.csv").read_bytes()


@needs_dask
def test_dask_score_of_1000_images_equals_the_local_run(images, knn_model, local_csv,
                                                        cluster, tmp_path):
    out = tmp_path / "dask"
    result = invoke("score", knn_model, images["folder"], "-o", out, "--quiet",
                    "--scheduler", cluster[0].scheduler_address)
    assert result.exit_code == 0, result.output
    assert (out / "scores.csv").read_bytes() == local_csv
    assert len(_read_csv(out / "scores.csv")) == 1000


@needs_dask
def test_dask_worker_killed_mid_run_still_equals_the_local_run(images, knn_model, local_csv,
                                                               cluster, tmp_path,
                                                               monkeypatch):
    import skcpcae._scoring as scoring

    local_cluster, client = cluster
    real_write = scoring._CsvSink.write
    killed = {}

    def write(self, rows):  # after the first batch is on disk: kill the busier worker
        real_write(self, rows)
        if killed:
            return
        busy = {addr: len(ws.processing) + len(ws.has_what)
                for addr, ws in list(local_cluster.scheduler.workers.items())}
        addr = max(busy, key=busy.get)
        pid = client.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)
        killed.update(addr=addr, pid=pid, tasks=busy[addr])

    monkeypatch.setattr(scoring._CsvSink, "write", write)
    out = tmp_path / "killed"
    result = invoke("score", knn_model, images["folder"], "-o", out, "--quiet",
                    "--scheduler", local_cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    assert killed["tasks"] >= 1  # the worker died holding or running batches
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)  # it is gone
    assert (out / "scores.csv").read_bytes() == local_csv  # nothing lost, nothing twice
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it: leave 2 for the others


@needs_dask
def test_dask_resume_after_interruption_scores_only_the_missing(images, knn_model, local_csv,
                                                                cluster, tmp_path,
                                                                monkeypatch):
    import skcpcae._scoring as scoring

    _, client = cluster
    real_write = scoring._CsvSink.write
    calls = []

    def write(self, rows):  # Ctrl-C after three batches are on disk
        real_write(self, rows)
        calls.append(len(rows))
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(scoring._CsvSink, "write", write)
    out = tmp_path / "scores.csv"
    with pytest.raises(KeyboardInterrupt):
        score_files(knn_model, images["paths"], out, client=client)
    assert len(_read_csv(out)) == 96
    monkeypatch.setattr(scoring._CsvSink, "write", real_write)
    submitted = []
    real_submit = client.submit
    monkeypatch.setattr(client, "submit",
                        lambda fn, scorer, batch, **k: submitted.extend(batch)
                        or real_submit(fn, scorer, batch, **k))
    summary = score_files(knn_model, images["paths"], out, client=client, resume=True)
    assert summary.n_skipped == 96 and summary.n_scored == 904
    assert submitted == images["paths"][96:]  # only the missing went to the workers
    assert out.read_bytes() == local_csv


@needs_dask
def test_dask_torch_model_in_memory_bit_identical_to_the_local_run(images, cluster,
                                                                   tmp_path):
    import torch

    from skcpcae import make_preset

    _, client = cluster
    pipe = make_preset("best").set_params(
        deeppatchembedder__weights=None, deeppatchembedder__batch_size=16,
        kdethresholdclassifier__estimator__n_neighbors=1, kdethresholdclassifier__cv=3,
    ).fit(images["X"][:12])
    paths = images["paths"][:40]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as many torch threads as a Dask worker has (see the guide)
    try:
        score_files(pipe, paths, tmp_path / "local.csv", batch_size=8)
    finally:
        torch.set_num_threads(threads)
    score_files(pipe, paths, tmp_path / "dask.csv", batch_size=8, client=client)
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@needs_dask
def test_cli_workers_starts_a_local_cluster_and_refuses_maps(images, knn_model, local_csv,
                                                           tmp_path):
    out = tmp_path / "w"
    environ = dict(os.environ)
    result = invoke("score", knn_model, *images["paths"][:64], "-o", out, "--quiet",
                    "--workers", "1")
    assert result.exit_code == 0, result.output
    assert (out / "scores.csv").read_bytes().splitlines() == local_csv.splitlines()[:65]
    assert dict(os.environ) == environ  # what the nanny wrote here is put back
    result = invoke("score", knn_model, images["folder"], "-o", tmp_path / "m", "--workers",
                    "2", "--heatmaps")
    assert result.exit_code == 2 and "--heatmaps" in result.stderr
    result = invoke("score", knn_model, images["folder"], "-o", tmp_path / "m", "--workers",
                    "2", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2 and "not both" in result.stderr


@needs_dask
def test_joblib_dask_backend_fits_stages_and_grid_search_on_the_cluster(cluster):
    import joblib
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from skcpcae.metrics import auroc_scorer
    from skcpcae.model_selection import NormalOnlyKFold
    from skcpcae.outlier import KDEThresholdClassifier, TunedThresholdDetectorCV
    from skcpcae.preprocessing import ECCRegistrar

    _, client = cluster
    X, y = make_parts(24, n_anomalies=6, size=(32, 32), random_state=0)
    X = X.reshape(len(X), 32, 32)
    normal = X[y == 0]

    def fit_all():
        # the expensive stages' own jobs: ECC registration (threads: it shares its output
        # arrays), the KDE threshold's cross-fitted folds, a labelled threshold's folds
        front = make_pipeline(ECCRegistrar(n_jobs=2), _Flatten())
        rows = front.fit_transform(X)
        kde = KDEThresholdClassifier(KNNAnomalyScorer(), cv=3, n_jobs=2,
                                     random_state=0).fit(rows[y == 0])
        tuned = TunedThresholdDetectorCV(KNNAnomalyScorer(n_neighbors=2), refit=False,
                                         cv=NormalOnlyKFold(3, random_state=0),
                                         n_jobs=2).fit(rows, y)
        search = GridSearchCV(make_pipeline(ECCRegistrar(), _Flatten(), KNNAnomalyScorer()),
                              {"knnanomalyscorer__n_neighbors": [2, 3]},
                              cv=NormalOnlyKFold(3, random_state=0), scoring=auroc_scorer,
                              error_score="raise", n_jobs=2).fit(X, y)
        return (rows, kde.score_samples(rows), kde.threshold_, tuned.predict(rows),
                search.cv_results_["mean_test_score"], search.score_samples(normal))

    here = fit_all()
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        there = fit_all()
    # the KDE folds, the threshold folds and the grid's fits ran as Dask tasks (joblib may
    # batch several jobs of one call into a task: at least one task per call)
    assert len(tasks.data) >= 3
    for a, b in zip(here, there, strict=True):
        np.testing.assert_array_equal(a, b)


class _Flatten:
    """Images to rows (a stateless transformer, picklable by name on the workers)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X).reshape(len(X), -1)

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self
