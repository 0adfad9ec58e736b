"""Issue #18, "Nothing lost": what the bad-input catalogue cannot show in-process.

Real signals sent to a real ``skcpcae score`` process, a real read-only folder (skipped as
root, where ``chmod`` does not stop writes), and the overflow checks of the patch k-NN
kernel called directly. The in-process cases (claimed output folders, full disks, fit
fall-backs, bombs, integer scaling, formula-like names, model-file bounds) are rows of
``tests/test_bad_input.py`` and of ``docs/bad_input.md``; two concurrent ``skcpcae score``
processes are ``tests/test_cli.py::test_score_two_concurrent_processes_one_wins``.
"""

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from skcpcae.datasets import make_parts, save_image

ROOT = Path(__file__).resolve().parents[1]

# a child `skcpcae score` whose batches take 0.3 s each, so that a signal lands mid-run
_SLOW_SCORE = """
import sys, time
import skcpcae._scoring as scoring
real = scoring._default_score_batch
def slow(*args):
    time.sleep(0.3)
    return real(*args)
scoring._default_score_batch = slow
from skcpcae import cli
cli.main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def knn_model(tmp_path_factory):
    """Twelve 24x24 images and a k-NN model on their pixels, as a .skops file."""
    from skcpcae import persistence
    from skcpcae.outlier import KNNAnomalyScorer

    root = tmp_path_factory.mktemp("nothing_lost")
    X = make_parts(12, size=(24, 24), random_state=0)[0]
    folder = root / "images"
    folder.mkdir()
    for i, img in enumerate(X):
        save_image(folder / f"img_{i:02d}.png", img)
    model = persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(X.reshape(len(X), -1)),
                             root / "knn.skops")
    return model, folder


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _hidden(folder):
    return sorted(str(p) for p in Path(folder).rglob(".*"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signame, code, word", [("SIGTERM", 143, "Terminated."),
                                                 ("SIGINT", 130, "Interrupted.")])
def test_score_signal_mid_run_leaves_no_temporary_files(knn_model, tmp_path, signame, code,
                                                        word):
    model, folder = knn_model
    out = tmp_path / "results"
    cmd = [sys.executable, "-c", _SLOW_SCORE, "score", str(model), str(folder), "-o",
           str(out), "--batch-size", "2", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT)
    csv_path = out / "scores.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # wait for the first rows
        if csv_path.exists() and len(_rows(csv_path)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(getattr(signal, signame))
    stdout, stderr = proc.communicate(timeout=60)
    stderr = stderr.decode()
    assert proc.returncode == code, stderr
    # how to go on: --resume when a batch's rows are on disk, else that none is kept
    kept = "--resume" in stderr or "no image had been scored, no row is kept" in stderr
    assert word in stderr and kept and "Traceback" not in stderr, stderr
    assert not _hidden(out), _hidden(out)  # no lock, no .NAME.*.tmp file
    rows = _rows(csv_path)
    assert 2 <= len(rows) < 12 and len(rows) % 2 == 0  # whole batches only
    assert all(r["anomaly_score"] and r["error"] == "" for r in rows)
    # the rerun continues where the signal stopped it; nothing is lost or doubled
    from typer.testing import CliRunner

    from skcpcae import cli

    result = CliRunner().invoke(cli.app, ["score", str(model), str(folder), "-o", str(out),
                                          "--resume", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = _rows(csv_path)
    assert sorted(os.path.basename(r["path"]) for r in rows) == sorted(
        p.name for p in folder.iterdir())


def _chmod_is_enforced(folder):
    probe = folder / "probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_save_model_onto_a_read_only_folder_saves_elsewhere(tmp_path):
    import tempfile

    from skcpcae import cli, persistence
    from skcpcae.outlier import KNNAnomalyScorer

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if not _chmod_is_enforced(folder):
            pytest.skip("chmod does not stop writes here (running as root); "
                        "tests/test_bad_input.py fakes the PermissionError instead")
        knn = KNNAnomalyScorer(n_neighbors=2).fit(np.random.default_rng(0).random((5, 3)))
        with pytest.raises(cli.CLIError, match=r"Permission denied.*saved as '[^']+'") as info:
            cli._save_model(knn, folder / "m.skops", False)
        saved = Path(str(info.value).split("saved as '")[1].split("'")[0])
        try:
            assert saved.parent == Path(tempfile.gettempdir())
            assert persistence.load(saved).n_neighbors == 2
        finally:
            saved.unlink()
        assert not any(folder.iterdir())
    finally:
        folder.chmod(0o700)


def test_save_model_permission_error_everywhere_but_the_temp_folder(tmp_path, monkeypatch):
    # the folder refuses the file and the file beside it: the model lands in the temp folder
    import tempfile

    from skcpcae import cli, persistence
    from skcpcae.outlier import KNNAnomalyScorer

    real = persistence.save

    def save(est, path, **kwargs):
        if Path(path).resolve().parent == tmp_path.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(est, path, **kwargs)

    monkeypatch.setattr(persistence, "save", save)
    knn = KNNAnomalyScorer(n_neighbors=2).fit(np.random.default_rng(0).random((5, 3)))
    with pytest.raises(cli.CLIError, match=r"Cannot write .*m\.skops' \(Permission denied\); "
                                           r"the fitted model was saved as '[^']+'") as info:
        cli._save_model(knn, tmp_path / "m.skops", False)
    saved = Path(str(info.value).split("saved as '")[1].split("'")[0])
    try:
        assert saved.parent == Path(tempfile.gettempdir())
        assert persistence.load(saved).n_neighbors == 2
    finally:
        saved.unlink()
    assert list(tmp_path.iterdir()) == []


def test_patch_distances_that_overflow_are_refused_not_zero():
    import torch

    from skcpcae._components.knn import knn_search, local_patch_distances

    q = np.full((1, 2, 2, 1), 1e19, np.float32)
    m = np.full((3, 2, 2, 1), -1e19, np.float32)
    # the kernel itself: an overflowed candidate is reported as missing (inf, -1) ...
    dist, idx = knn_search(torch.from_numpy(q.reshape(4, 1)),
                           torch.from_numpy(m[0].reshape(4, 1)))
    assert torch.isinf(dist).all() and (idx == -1).all()
    # ... so the patch scorer must refuse it instead of averaging "no candidate" into 0
    with pytest.raises(ValueError, match="Patch distances overflow float32"):
        local_patch_distances(q, m)
    with pytest.raises(ValueError, match="squared norms overflow float32"):
        local_patch_distances(q * np.float32(1e10), m)
    # at the edge of float32, finite distances still come out right
    ok = local_patch_distances(q / np.float32(1e10), m / np.float32(1e10))
    np.testing.assert_allclose(ok, 2e9, rtol=1e-6)
