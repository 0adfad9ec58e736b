"""Tests of skcpcae.persistence: round trips, overwrite, trust, versions, fresh process,
and crafted files (pickles under a .skops name, damaged archives, edited sizes) that must be
refused before any code from them runs or any memory they ask for is allocated."""

import hashlib
import io
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import zipfile
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
    ModelIntegrityError,
    ModelVersionWarning,
    PickleNotAllowedError,
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
    loaded = load(path, allow_pickle=fmt == "joblib")
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(loaded.score_samples(X_test), est.score_samples(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test), est.predict(X_test))


def test_tree_models_need_explicit_trust_in_skops(tmp_path):
    X, X_test = _data()
    est = KDEThresholdClassifier(IsolationForest(n_estimators=5, random_state=0), cv=3).fit(X)
    path = save(est, tmp_path / "iforest.skops")
    # skops decides which scikit-learn types it trusts by default: with skops 0.16 and
    # scikit-learn 1.9 the Cython Tree is untrusted; with skops 0.11-0.13 and scikit-learn 1.6
    # it is trusted (make test-min), and then there is nothing to refuse
    if "sklearn.tree._tree.Tree" in sio.get_untrusted_types(file=path):
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
    assert load(path, allow_pickle=True).n_neighbors == 3
    save(KNNAnomalyScorer(5).fit(X), path, overwrite=True)
    assert load(path, allow_pickle=True).n_neighbors == 5
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
    with pytest.raises(PickleNotAllowedError, match="allow_pickle=True"):
        load(plain)
    with pytest.raises(ModelIntegrityError, match="records no checksum"):
        load(plain, allow_pickle=True)
    plain_skops = tmp_path / "plain.skops"
    sio.dump({"a": 1}, plain_skops)
    with pytest.raises(ModelIntegrityError, match="records no checksum"):
        load(plain_skops)
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a skops archive nor a joblib file"):
        load(junk, allow_pickle=True)
    # a sealed skops file of something else than a model payload
    other = tmp_path / "other.skops"
    sio.dump({"a": 1}, other)
    _reseal(other, other)
    with pytest.raises(ValueError, match="not a skcpcae model file"):
        load(other)


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
def test_newer_format_is_refused(tmp_path, monkeypatch, fmt):
    X, _ = _data()
    monkeypatch.setattr(persistence, "FORMAT_VERSION", 3)
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / f"m.{fmt}")
    monkeypatch.setattr(persistence, "FORMAT_VERSION", 2)
    with pytest.raises(ValueError, match="newer"):
        load(path, allow_pickle=True)


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
        load(path, allow_pickle=True)


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
    loaded = load(save(pipe, tmp_path / "m.joblib"), allow_pickle=True)  # joblib stores it
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
            model = load(d + "/model." + fmt, allow_pickle=fmt == "joblib")
            assert np.array_equal(model.score_samples(X), expected), fmt
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------------------
# crafted files: no code runs, nothing damaged loads, no size in a file allocates
# --------------------------------------------------------------------------------------


class _Evil:
    """Unpickling it creates the folder ``marker``: a stand-in for any code a pickle runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class _MarkerOnLoad:
    """A class skops does not know whose construction (``__setstate__``) creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __setstate__(self, state):
        os.mkdir(state["marker"])
        self.__dict__.update(state)


def _sealed_joblib_bytes(payload, **dump_kwargs):
    """A joblib file with a valid skcpcae checksum trailer (anyone can compute one)."""
    buf = io.BytesIO()
    joblib.dump(payload, buf, **dump_kwargs)
    data = buf.getvalue()
    return data + b"\nskcpcae-sha256=" + hashlib.sha256(data).hexdigest().encode() + b"\n"


def _evil_payload(marker):
    X, _ = _data()
    return {"__skcpcae_model__": persistence.FORMAT_VERSION, "metadata": {},
            "estimator": KNNAnomalyScorer(3).fit(X), "hook": _Evil(marker)}


def _reseal(src, dst, edit=None, *, keep_comment=False):
    """Rewrite the zip ``src`` as ``dst``, member data through ``edit(name, data)``, with
    fresh CRCs and either the old comment or a freshly computed skcpcae checksum."""
    with zipfile.ZipFile(src) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
        comment = zf.comment
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members:
            zf.writestr(name, edit(name, data) if edit else data)
    out.seek(0)
    with zipfile.ZipFile(out, "a") as zf:
        zf.comment = comment if keep_comment else (
            b"skcpcae-sha256=" + persistence._zip_digest(zf).encode())
    Path(dst).write_bytes(out.getvalue())
    return Path(dst)


def _pickle_files(tmp_path, marker):
    payload = _evil_payload(marker)
    files = {
        "pickle-named-skops": pickle.dumps(payload, protocol=5),
        "pickle-protocol-0-named-skops": pickle.dumps(payload, protocol=0),
        "joblib-named-skops": _sealed_joblib_bytes(payload),
        "compressed-joblib-named-skops": _sealed_joblib_bytes(payload, compress=3),
    }
    return {name: _write(tmp_path / f"{name}.skops", data) for name, data in files.items()}


def _write(path, data):
    path.write_bytes(data)
    return path


def test_marker_mechanism_runs_code_when_unpickled(tmp_path):
    # the positive control: these crafted files do run code once unpickled
    marker = tmp_path / "marker"
    path = _write(tmp_path / "evil.joblib", _sealed_joblib_bytes(_evil_payload(marker)))
    load(path, allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("allow_pickle", [False, True])
@pytest.mark.parametrize("kind", ["pickle-named-skops", "pickle-protocol-0-named-skops",
                                  "joblib-named-skops", "compressed-joblib-named-skops"])
def test_pickle_named_skops_is_refused_without_running_code(tmp_path, kind, allow_pickle):
    marker = tmp_path / "marker"
    path = _pickle_files(tmp_path, marker)[kind]
    with pytest.raises(ValueError, match=r"named \.skops but is|neither a skops archive"):
        load(path, allow_pickle=allow_pickle)
    assert not marker.exists()


@pytest.mark.parametrize("compress", [0, 3])
def test_pickle_needs_allow_pickle_and_says_so(tmp_path, compress):
    marker = tmp_path / "marker"
    path = _write(tmp_path / "evil.joblib",
                  _sealed_joblib_bytes(_evil_payload(marker), compress=compress))
    with pytest.raises(PickleNotAllowedError,
                       match=r"runs code.*allow_pickle=True \(command line: --allow-pickle\)"):
        load(path)
    assert not marker.exists()


def test_zip_holding_a_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "marker"
    evil = pickle.dumps(_evil_payload(marker))
    # a zip that is not a skops archive
    plain = tmp_path / "plain_zip.skops"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("model.pkl", evil)
    with pytest.raises(ValueError, match="zip archive that is not a skops file"):
        load(plain, allow_pickle=True)
    # a real model archive, one weight array replaced by a pickled object array, resealed
    X, _ = _data()
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / "m.skops")
    obj = np.empty(1, dtype=object)
    obj[0] = _Evil(marker)
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    first = {}

    def swap(name, data):
        if name.endswith(".npy") and not first:
            first[name] = True
            return buf.getvalue()
        return data

    bad = _reseal(path, tmp_path / "npy_pickle.skops", swap)
    with pytest.raises(ModelIntegrityError, match="object array"):
        load(bad, allow_pickle=True)
    # and an extra pickle member added to a model archive, resealed
    extra = _reseal(path, tmp_path / "extra.skops")
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("evil.pkl", evil)
    with pytest.raises(ModelIntegrityError):
        load(extra, allow_pickle=True)
    assert not marker.exists()


def test_skops_with_unknown_types_builds_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = save(_MarkerOnLoad(marker), tmp_path / "unknown.skops")  # a valid checksum
    with pytest.raises(UntrustedTypesError, match="_MarkerOnLoad") as info:
        load(path, allow_pickle=True)
    assert not marker.exists()
    load(path, trusted=info.value.types)  # positive control: trusting it runs __setstate__
    assert marker.exists()


def _flip_bit_in(data, needle):
    at = data.index(needle) + len(needle) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_flipped_bit_in_a_skops_weight_is_refused(tmp_path):
    X, X_test = _data()
    knn = KNNAnomalyScorer(3).fit(X)
    path = save(knn, tmp_path / "m.skops")
    weights = np.ascontiguousarray(knn.nn_._fit_X).tobytes()

    def flip(name, data):
        return _flip_bit_in(data, weights) if weights in data else data

    # the CRC rebuilt, the recorded checksum kept: only the SHA-256 can tell
    damaged = _reseal(path, tmp_path / "flipped.skops", flip, keep_comment=True)
    with zipfile.ZipFile(damaged) as zf:
        assert zf.testzip() is None  # a valid zip
    with pytest.raises(ModelIntegrityError, match="SHA-256 of its content does not match"):
        load(damaged)
    # the same flip without the CRC rebuilt
    raw = _flip_bit_in(path.read_bytes(), weights)
    with pytest.raises(ModelIntegrityError, match="damaged"):
        load(_write(tmp_path / "raw.skops", raw))
    # and the checksum removed
    stripped = _reseal(path, tmp_path / "stripped.skops", keep_comment=True)
    with zipfile.ZipFile(stripped, "a") as zf:
        zf.comment = b""
    with pytest.raises(ModelIntegrityError, match="records no checksum"):
        load(stripped)
    assert np.array_equal(load(path).score_samples(X_test), knn.score_samples(X_test))


def test_flipped_bit_in_a_joblib_weight_is_refused(tmp_path):
    X, _ = _data()
    knn = KNNAnomalyScorer(3).fit(X)
    path = save(knn, tmp_path / "m.joblib")
    weights = np.ascontiguousarray(knn.nn_._fit_X).tobytes()
    damaged = _write(tmp_path / "flipped.joblib", _flip_bit_in(path.read_bytes(), weights))
    with pytest.raises(ModelIntegrityError, match="SHA-256 of its content does not match"):
        load(damaged, allow_pickle=True)
    truncated = _write(tmp_path / "truncated.joblib", path.read_bytes()[:-200])
    with pytest.raises(ModelIntegrityError):
        load(truncated, allow_pickle=True)


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
@pytest.mark.parametrize("marker", [True, 0, -5, 1, 2.0, "2", None])
def test_format_marker_must_be_exactly_the_known_int(tmp_path, monkeypatch, fmt, marker):
    X, _ = _data()
    monkeypatch.setattr(persistence, "FORMAT_VERSION", marker)
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / f"m.{fmt}")  # a valid checksum
    monkeypatch.undo()
    with pytest.raises(ValueError, match="format marker .* reads format 2 only"):
        load(path, allow_pickle=True)


def test_npy_header_claiming_a_huge_array_is_refused_before_allocation(tmp_path):
    X, _ = _data()
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / "m.skops")

    def enlarge(name, data):
        if not name.endswith(".npy"):
            return data
        header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
        header["shape"] = (10**6, 10**6)  # 8 TB of float64 for the 8 bytes stored
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue() + b"\0" * 8

    bad = _reseal(path, tmp_path / "huge.skops", enlarge)
    with pytest.raises(ModelIntegrityError, match=r"declares an array of shape \(1000000, "):
        load(bad)


def test_content_larger_than_available_memory_is_refused(tmp_path, monkeypatch):
    X, _ = _data()
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / "m.skops")
    monkeypatch.setattr(persistence, "available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match="GiB available; nothing was loaded"):
        load(path)


def test_edited_network_size_is_refused_before_allocating(tmp_path):
    pytest.importorskip("torch")
    from skcpcae.datasets import make_parts
    from skcpcae.embedding import DeepPoolEmbedder
    from skcpcae.residuals import CPCAEResidualMap

    X = make_parts(6, size=(24, 24), random_state=0)[0]
    cpcae = CPCAEResidualMap(input_size=16, patch_size=8, channels=(4,), latent_dim=4,
                             max_epochs=1, device="cpu", random_state=0).fit(X)
    cpcae.n_patches_ = 10**9  # without the check: an embedding of 10^9 rows at load
    path = save(cpcae, tmp_path / "cpcae.skops")
    with pytest.raises(ValueError, match=r"do not fit the network .*1000000"):
        load(path)
    emb = DeepPoolEmbedder("test_efficientnet", weights=None, device="cpu").fit(X)
    emb.backbone = "resnet18"
    path = save(emb, tmp_path / "emb.skops")
    with pytest.raises(ValueError, match="do not fit the network"):
        load(path)


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_follow_the_umask(tmp_path, fmt, umask):
    X, _ = _data()
    old = os.umask(umask)
    try:
        path = save(KNNAnomalyScorer(3).fit(X), tmp_path / f"m.{fmt}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_load_parameters_are_validated(tmp_path):
    X, _ = _data()
    path = save(KNNAnomalyScorer(3).fit(X), tmp_path / "m.skops")
    with pytest.raises(TypeError, match="allow_pickle must be True or False"):
        load(path, allow_pickle="yes")
    with pytest.raises(TypeError, match="trusted must be a list"):
        load(path, trusted="sklearn.tree._tree.Tree")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_other_writers_follow_the_umask(tmp_path, umask):
    from skcpcae import cli
    from skcpcae.datasets import save_image
    from skcpcae.utils._report import update_section

    old = os.umask(umask)
    try:
        paths = [save_image(tmp_path / "heat.png", np.zeros((4, 4), np.float32))]
        cli._write_atomic(tmp_path / "scores.csv", "a,b\n")
        paths.append(tmp_path / "scores.csv")
        update_section(tmp_path / "b.md", "x", "text")
        paths.append(tmp_path / "b.md")
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o666 & ~umask, path


@pytest.mark.parametrize("suffix", [".skops", ".joblib"])
def test_model_saved_with_the_old_kde_class_path_still_loads(tmp_path, suffix):
    # Before the components layer, the threshold's KDE was
    # skcpcae.outlier._kde_threshold._GaussianKDE1D; files saved then record that path.
    from skcpcae._components.kde import GaussianKDE1D

    X = np.random.RandomState(0).normal(size=(40, 2))
    est = KDEThresholdClassifier(KNNAnomalyScorer(3), cv=3, random_state=0).fit(X)
    assert type(est.kde_) is GaussianKDE1D
    path = tmp_path / f"old{suffix}"
    names = GaussianKDE1D.__module__, GaussianKDE1D.__name__, GaussianKDE1D.__qualname__
    try:  # write the file as the old code did
        GaussianKDE1D.__module__ = "skcpcae.outlier._kde_threshold"
        GaussianKDE1D.__name__ = GaussianKDE1D.__qualname__ = "_GaussianKDE1D"
        save(est, path)
    finally:
        GaussianKDE1D.__module__, GaussianKDE1D.__name__, GaussianKDE1D.__qualname__ = names
    raw = path.read_bytes()
    if suffix == ".skops":
        with zipfile.ZipFile(path) as zf:
            raw = zf.read("schema.json")
    assert b"_GaussianKDE1D" in raw and b"_components.kde" not in raw

    loaded = load(path, allow_pickle=suffix == ".joblib")
    assert type(loaded.kde_) is GaussianKDE1D
    assert loaded.threshold_ == est.threshold_
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))
