"""Tests of skcpcae.persistence: round trips, overwrite, trust, versions, fresh process."""

import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae import persistence
from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
)
from skcpcae.persistence import (
    ModelVersionWarning,
    UntrustedTypesError,
    load,
    save,
)

REPO = Path(__file__).resolve().parents[2]


class _Custom:
    """A class skops does not know."""

    def __init__(self):
        self.value = 3


def _data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(60, 3)), rng.normal(size=(20, 3)) * 2


MODELS = {
    "knn": lambda: KNNAnomalyScorer(n_neighbors=3),
    "kde_threshold": lambda: KDEThresholdClassifier(KNNAnomalyScorer(3), cv=3, random_state=0),
    "kde_threshold_lof": lambda: KDEThresholdClassifier(
        LocalOutlierFactor(n_neighbors=5, novelty=True), cv=3, random_state=0
    ),
    "gmm": lambda: GMMAnomalyScorer(random_state=0),
    "kde": lambda: KDEAnomalyScorer(),
    "pipeline": lambda: make_pipeline(
        StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer(3), cv=3, random_state=0)
    ),
}


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_is_exact(tmp_path, name, fmt):
    X, X_test = _data()
    est = MODELS[name]().fit(X)
    path = save(est, tmp_path / f"model.{fmt}")
    assert path.exists() and not list(tmp_path.glob(".*.tmp"))
    loaded = load(path)
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(loaded.score_samples(X_test), est.score_samples(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test), est.predict(X_test))


def test_tree_models_need_explicit_trust_in_skops(tmp_path):
    X, X_test = _data()
    est = KDEThresholdClassifier(IsolationForest(n_estimators=5, random_state=0), cv=3).fit(X)
    path = save(est, tmp_path / "iforest.skops")
    with pytest.raises(UntrustedTypesError, match=r"sklearn\.tree\._tree\.Tree"):
        load(path)
    loaded = load(path, trusted=["sklearn.tree._tree.Tree"])
    np.testing.assert_array_equal(loaded.score_samples(X_test), est.score_samples(X_test))


def test_overwrite_is_refused_unless_asked(tmp_path):
    X, _ = _data()
    path = tmp_path / "m.joblib"
    save(KNNAnomalyScorer(3).fit(X), path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save(KNNAnomalyScorer(5).fit(X), path)
    assert load(path).n_neighbors == 3
    save(KNNAnomalyScorer(5).fit(X), path, overwrite=True)
    assert load(path).n_neighbors == 5
    assert [p.name for p in tmp_path.iterdir()] == ["m.joblib"]  # no temporary file left


def test_format_inferred_or_refused(tmp_path):
    X, _ = _data()
    knn = KNNAnomalyScorer(3).fit(X)
    with pytest.raises(ValueError, match="suffix"):
        save(knn, tmp_path / "model.bin")
    path = save(knn, tmp_path / "model.bin", format="skops")
    assert load(path).n_neighbors == 3  # recognised from its content


def test_untrusted_types_are_listed_and_nothing_loaded(tmp_path):
    path = save(_Custom(), tmp_path / "custom.skops")
    with pytest.raises(UntrustedTypesError, match="_Custom") as info:
        load(path)
    assert any(t.endswith("_Custom") for t in info.value.types)
    assert load(path, trusted=info.value.types).value == 3


def test_non_skcpcae_files_are_refused(tmp_path):
    X, _ = _data()
    plain = tmp_path / "plain.joblib"
    joblib.dump(KNNAnomalyScorer(3).fit(X), plain)
    with pytest.raises(ValueError, match="not a skcpcae model file"):
        load(plain)
    plain_skops = tmp_path / "plain.skops"
    sio.dump({"a": 1}, plain_skops)
    with pytest.raises(ValueError, match="not a skcpcae model file"):
        load(plain_skops)
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a skops file"):
        load(junk)


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
def test_newer_format_is_refused(tmp_path, monkeypatch, fmt):
    X, _ = _data()
    monkeypatch.setattr(persistence, "FORMAT_VERSION", 2)
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / f"m.{fmt}")
    monkeypatch.setattr(persistence, "FORMAT_VERSION", 1)
    with pytest.raises(ValueError, match="newer"):
        load(path)


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
def test_version_mismatch_warns(tmp_path, monkeypatch, fmt):
    X, _ = _data()
    real = persistence._current_versions()
    monkeypatch.setattr(
        persistence, "_current_versions", lambda: {**real, "sklearn": "0.0.1", "numpy": "0.1"}
    )
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / f"m.{fmt}")
    monkeypatch.undo()
    with pytest.warns(ModelVersionWarning, match=r"sklearn 0\.0\.1 \(saved\)"):
        load(path)


def test_metadata_is_recorded(tmp_path):
    X, _ = _data()
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / "m.joblib")
    payload = joblib.load(path)
    meta = payload["metadata"]
    assert payload["__skcpcae_model__"] == persistence.FORMAT_VERSION
    assert set(meta) >= {"skcpcae", "sklearn", "numpy", "torch", "python", "created"}
    assert meta["estimator_class"] == "skcpcae.outlier._knn.KNNAnomalyScorer"


def test_skops_refuses_torch_objects_with_a_clear_error(tmp_path):
    torch = pytest.importorskip("torch")
    X, _ = _data()
    pipe = make_pipeline(StandardScaler(), KNNAnomalyScorer(3)).fit(X)
    pipe.steps[0][1].module_ = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="format='joblib'") as info:
        save(pipe, tmp_path / "m.skops")
    assert "module_" in str(info.value)
    assert not (tmp_path / "m.skops").exists()
    loaded = load(save(pipe, tmp_path / "m.joblib"))  # joblib stores it
    assert isinstance(loaded.steps[0][1].module_, torch.nn.Linear)


def test_corrupted_kd_tree_is_refused(tmp_path):
    X, _ = _data()
    knn = KNNAnomalyScorer(3).fit(X)
    tree = knn.nn_._tree
    state = list(tree.__getstate__())
    state[1] = state[1] + 1000  # indices out of bounds
    tree.__setstate__(tuple(state))
    path = save(knn, tmp_path / "bad.skops")
    with pytest.raises(ValueError, match="corrupted KDTree"):
        load(path)


def test_fresh_process_scores_identically(tmp_path):
    X, X_test = _data()
    est = MODELS["pipeline"]().fit(X)
    np.save(tmp_path / "X_test.npy", X_test)
    np.save(tmp_path / "expected.npy", est.score_samples(X_test))
    for fmt in ("skops", "joblib"):
        save(est, tmp_path / f"model.{fmt}")
    script = textwrap.dedent(
        f"""
        import numpy as np
        from skcpcae.persistence import load
        d = {str(tmp_path)!r}
        X = np.load(d + "/X_test.npy")
        expected = np.load(d + "/expected.npy")
        for fmt in ("skops", "joblib"):
            model = load(d + "/model." + fmt)
            assert np.array_equal(model.score_samples(X), expected), fmt
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
