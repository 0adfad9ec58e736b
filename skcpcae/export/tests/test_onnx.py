"""ONNX export: parity with the Python pipeline, refusals, the light runtime, the CLI."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

pytest.importorskip("onnx", reason="the export tests need the 'export' extra (onnx)")
pytest.importorskip("onnxruntime", reason="the export tests need onnxruntime ('onnx' extra)")

from typer.testing import CliRunner  # noqa: E402

from skcpcae import cli, make_preset  # noqa: E402
from skcpcae.datasets import load_images, make_parts, save_image  # noqa: E402
from skcpcae.export import ParityError, to_onnx  # noqa: E402
from skcpcae.export import _onnx as onnx_module  # noqa: E402
from skcpcae.export._onnx import METADATA_KEY  # noqa: E402

TINY = {"backbone": "test_efficientnet", "weights": None, "random_state": 0,
        "device": "cpu"}
PRESETS = {
    # stages 3 and 4 of timm's test network: strides 16 and 32, as EfficientNet-Lite0's
    "best": {f"deeppatchembedder__{k}": v for k, v in TINY.items()},
    "deep-feature": {**{f"deeppoolembedder__{k}": v for k, v in TINY.items()},
                     "kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors": 3},
}


@pytest.fixture(scope="module")
def images():
    X, _ = make_parts(16, size=(64, 64), random_state=0)
    Xd, _ = make_parts(0, n_anomalies=4, size=(64, 64), random_state=1)
    return X, np.concatenate([X[12:], Xd])


@pytest.fixture(scope="module")
def fitted(images):
    X_train = images[0][:12]
    return {name: make_preset(name, **params).fit(X_train) for name, params in PRESETS.items()}


def _uint8(X):
    return np.rint(X * 255).astype(np.uint8)


def _ort(path, X, feed=None):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feed if feed is not None else {"images": X})
    return dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))


@pytest.mark.parametrize("input_dtype", ["float32", "uint8"])
@pytest.mark.parametrize("preset", ["best", "deep-feature"])
def test_export_scores_new_images_as_the_pipeline(fitted, images, tmp_path, preset,
                                                  input_dtype):
    pipe = fitted[preset]
    X_train, X_new = images
    conv = _uint8 if input_dtype == "uint8" else (lambda a: a)
    path = tmp_path / "model.onnx"
    report = to_onnx(pipe, path, sample=conv(X_train[:6]), input_dtype=input_dtype)
    assert report.passed and report.path == str(path) and path.is_file()
    assert report.max_rel_diff <= 1e-4 and report.n_decisions_differ == 0
    assert report.threshold == pytest.approx(pipe[-1].threshold_)
    # images the export never saw: scores, decisions (and maps) as the Python pipeline's
    got = _ort(path, conv(X_new))
    expected = -pipe.score_samples(conv(X_new))
    np.testing.assert_allclose(got["anomaly_score"], expected, rtol=1e-4)
    np.testing.assert_array_equal(got["decision"], pipe.predict(conv(X_new)))
    assert set(got["decision"]) <= {-1, 1}
    if preset == "best":
        amap = pipe[-1].anomaly_map(pipe[:-1].transform(conv(X_new)))
        assert got["anomaly_map"].shape == amap.shape
        np.testing.assert_allclose(got["anomaly_map"], amap, rtol=1e-4,
                                   atol=1e-4 * float(amap.max()))
    else:
        assert "anomaly_map" not in got
    # the threshold travels with the file: moving it changes decisions the same way
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    meta = json.loads(props[METADATA_KEY])
    assert meta["rtol"] == 1e-4 and meta["max_rel_diff"] == report.max_rel_diff
    assert meta["input_shape"] == [64, 64] and meta["input_dtype"] == input_dtype
    assert meta["threshold"] == report.threshold
    assert meta["steps"][0] in ("DeepPatchEmbedder", "DeepPoolEmbedder")


def test_patch_radius_and_bare_scorer_are_exported(images, tmp_path):
    from sklearn.pipeline import make_pipeline

    from skcpcae.embedding import DeepPatchEmbedder
    from skcpcae.outlier import PatchKNNScorer

    X_train, X_new = images
    pipe = make_pipeline(DeepPatchEmbedder(stages=(2, 3), **TINY),
                         PatchKNNScorer(n_neighbors=2, radius=1, top_k=3)).fit(X_train[:8])
    report = to_onnx(pipe, tmp_path / "m.onnx", sample=X_train[:4])
    assert report.passed
    got = _ort(tmp_path / "m.onnx", X_new)
    np.testing.assert_allclose(got["anomaly_score"], -pipe.score_samples(X_new), rtol=1e-4)
    np.testing.assert_array_equal(got["decision"], pipe.predict(X_new))
    assert report.threshold == pytest.approx(-pipe[-1].offset_)
    # the memory bank (9 offsets x 8 images per grid position) is stored once, as it is
    import onnx
    from onnx import numpy_helper

    memory = pipe[-1].memory_  # (n, h, w, d)
    n, h, w, d = memory.shape
    inits = sorted(onnx.load(str(tmp_path / "m.onnx")).graph.initializer,
                   key=lambda t: -int(np.prod(t.dims)))
    assert [int(np.prod(t.dims)) for t in inits[:2]] == [9 * memory.size, 96 * 24 * 3 * 3]
    bank = numpy_helper.to_array(inits[0]).reshape(h, w, 9 * n, d)
    np.testing.assert_array_equal(bank[:, :, 4 * n:5 * n], memory.transpose(1, 2, 0, 3))


@pytest.mark.parametrize("radius, position_norm", [(0, None), (1, None), (0, "zscore")])
def test_retrieval_and_global_score_are_exported(images, tmp_path, radius, position_norm):
    from sklearn.pipeline import make_pipeline

    from skcpcae.embedding import DeepPatchEmbedder
    from skcpcae.outlier import KDEThresholdClassifier, PatchKNNScorer

    X_train, X_new = images
    scorer = PatchKNNScorer(n_neighbors=2, radius=radius, top_k=3, n_retrieve=4,
                            global_weight=0.25, position_norm=position_norm)
    pipe = make_pipeline(DeepPatchEmbedder(stages=(2, 3), **TINY),
                         KDEThresholdClassifier(scorer, random_state=0)).fit(X_train[:10])
    report = to_onnx(pipe, tmp_path / "m.onnx", sample=X_train[:4])
    assert report.passed
    got = _ort(tmp_path / "m.onnx", X_new)
    np.testing.assert_allclose(got["anomaly_score"], -pipe.score_samples(X_new), rtol=1e-4,
                               atol=1e-4 * abs(pipe[-1].threshold_))
    np.testing.assert_array_equal(got["decision"], pipe.predict(X_new))
    amap = pipe[-1].estimator_.anomaly_map(pipe[0].transform(X_new))
    np.testing.assert_allclose(got["anomaly_map"], amap, rtol=1e-4,
                               atol=1e-4 * float(np.abs(amap).max()))
    # retrieval (and the position statistics) change the maps: the graph does not ignore them
    for change in ({"n_retrieve": None}, {"position_norm": None}):
        if position_norm is None and "position_norm" in change:
            continue
        plain = clone(scorer).set_params(**change).fit(pipe[0].transform(X_train[:10]))
        assert not np.allclose(plain.anomaly_map(pipe[0].transform(X_new)), amap)


class _Float64RoundingScaler:
    """StandardScaler as scikit-learn < 1.8 transforms float32 rows: float64 operations."""

    def __new__(cls):
        from sklearn.preprocessing import StandardScaler

        class Old(StandardScaler):
            def transform(self, X, copy=None):
                X = np.array(X, dtype=np.float32)
                X -= self.mean_  # float64 arithmetic, stored in float32
                X /= self.scale_
                return X

        return Old()


@pytest.mark.parametrize("release", ["installed", "float64 roundings (< 1.8)"])
def test_scaler_and_knn_match_scikit_learn_on_nearly_constant_features(tmp_path, release):
    # deep-feature's tail on the same features, as the graph computes it: the scaler's float32
    # roundings (those of the scikit-learn release) then float64 distances keep the scores to
    # 1e-6, even next to a training row (k=1) and where the scaler divides by a tiny scale_
    # (channels near 0 after max pooling)
    import torch
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcpcae.export import _modules
    from skcpcae.outlier import KNNAnomalyScorer

    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 1.0, (60, 200)).astype(np.float32) + 3.0
    X[:, :3] = 0.0
    X[::15, :3] = rng.uniform(0, 3e-3, (4, 3))  # scale_ about 1e-3
    new = X[:20] + rng.normal(0, 1e-3, (20, 200)).astype(np.float32)  # near training rows
    new[:, :3] = rng.uniform(0, 0.05, (20, 3))
    new[10:, :3] = X[10:20, :3]
    scaler = StandardScaler() if release == "installed" else _Float64RoundingScaler()
    pipe = make_pipeline(scaler, KNNAnomalyScorer(n_neighbors=1)).fit(X)
    scaler, knn = pipe[0], pipe[1]
    assert scaler.scale_[:3].max() < 2e-3
    roundings = onnx_module._scaler_roundings(scaler)
    assert roundings == ("float64" if release.startswith("float64") else "float32")

    class Tail(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = _modules.Standardize(scaler.mean_, scaler.scale_,
                                              float64_roundings=roundings == "float64")
            self.knn = _modules.MeanSquaredKNN(knn.nn_._fit_X, n_neighbors=1)

        def forward(self, x):
            return self.knn(self.scale(x))[0]

    path = tmp_path / "tail.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as to_onnx
        torch.onnx.export(Tail(), (torch.from_numpy(new[:2]),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}}, opset_version=17)
    got = next(iter(_ort(path, None, {"x": new}).values()))
    expected = -pipe.score_samples(new)
    assert expected[10:].max() < 1e-3 < expected[:10].min()  # next to a row / far off
    assert onnx_module.relative_difference(got, expected) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "bool"])
def test_gather_rows_is_one_gathernd_on_the_stored_constant(tmp_path, dtype):
    import onnx
    import torch

    from skcpcae.export._modules import gather_rows

    class Pick(torch.nn.Module):
        def __init__(self):
            super().__init__()
            data = torch.arange(5 * 7 * 3, dtype=torch.float32).view(5, 7, 3)
            self.register_buffer("data", data if dtype == "float32" else data % 2 == 0)

        def forward(self, index):
            return gather_rows(self.data, index)

    index = torch.from_numpy(np.random.default_rng(0).integers(0, 7, (5, 4, 2)))
    expected = Pick().data.numpy()[np.arange(5)[:, None, None], index.numpy()]  # (5, 4, 2, 3)
    np.testing.assert_array_equal(Pick()(index).numpy(), expected)
    path = tmp_path / "pick.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as to_onnx
        torch.onnx.export(Pick(), (index,), str(path), input_names=["index"], dynamo=False,
                          dynamic_axes={"index": {1: "m"}}, opset_version=17)
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node if n.op_type.startswith("Gather")] == ["GatherND"]
    assert len(graph.initializer) == 1  # the data, not a flattened copy
    got = _ort(path, None, {"index": index.numpy()[:, :3]})
    np.testing.assert_array_equal(next(iter(got.values())), expected[:, :3])


def test_parity_failure_refuses_to_write(fitted, images, tmp_path, monkeypatch):
    real = onnx_module._python_outputs

    def shifted(pipeline, X, has_map):
        scores, decisions, amap = real(pipeline, X, has_map)
        return scores * (1 + 1e-3), decisions, amap

    monkeypatch.setattr(onnx_module, "_python_outputs", shifted)
    path = tmp_path / "model.onnx"
    with pytest.raises(ParityError, match="does not score as the pipeline") as info:
        to_onnx(fitted["best"], path, sample=images[0][:4])
    assert info.value.report.max_rel_diff > 1e-4
    assert not info.value.report.passed
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_unsupported_step_is_named(images, tmp_path):
    from sklearn.pipeline import make_pipeline

    from skcpcae.embedding import DeepPatchEmbedder
    from skcpcae.outlier import PatchKNNScorer
    from skcpcae.preprocessing import AdaptiveGamma

    pipe = make_pipeline(AdaptiveGamma(), DeepPatchEmbedder(**TINY),
                         PatchKNNScorer()).fit(images[0][:6])
    with pytest.raises(NotImplementedError, match="AdaptiveGamma.*outside the graph"):
        to_onnx(pipe, tmp_path / "m.onnx", sample=images[0][:2])
    assert not (tmp_path / "m.onnx").exists()


def test_existing_file_is_not_overwritten(fitted, images, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        to_onnx(fitted["deep-feature"], path, sample=images[0][:2])
    assert path.read_bytes() == b"keep"


BLOCKED = """
import sys
for name in ("torch", "sklearn", "scipy", "timm", "skorch"):
    sys.modules[name] = None  # "import torch" raises ImportError
"""


def test_runtime_scores_files_with_torch_blocked(fitted, images, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    for i, img in enumerate(images[1]):
        save_image(folder / f"img_{i:02d}.png", img)
    pipe = fitted["best"]
    to_onnx(pipe, tmp_path / "m.onnx", sample=_uint8(images[0][:4]), input_dtype="uint8")
    code = BLOCKED + f"""
import json
import numpy as np
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch was importable")
from skcpcae import runtime
model = runtime.load({str(tmp_path / "m.onnx")!r})
result = model.score_files({str(folder)!r})
bad = [m for m in ("torch", "sklearn", "scipy") if sys.modules.get(m) is not None]
print(json.dumps({{"scores": result["anomaly_score"].tolist(),
                  "decisions": result["decision"].tolist(), "paths": result["path"],
                  "map_shape": list(result["anomaly_map"].shape), "heavy": bad}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[3], timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    X = _uint8(load_images(got["paths"], size=(64, 64), color="gray"))
    np.testing.assert_allclose(got["scores"], -pipe.score_samples(X), rtol=1e-4)
    assert got["decisions"] == pipe.predict(X).tolist()
    assert got["map_shape"][0] == len(images[1])


def test_runtime_refuses_wrong_shape_and_dtype(fitted, images, tmp_path):
    from skcpcae import runtime

    to_onnx(fitted["deep-feature"], tmp_path / "m.onnx", sample=_uint8(images[0][:2]),
            input_dtype="uint8")
    model = runtime.load(tmp_path / "m.onnx")
    assert model.input_shape == (64, 64) and model.input_dtype == "uint8"
    with pytest.raises(ValueError, match=r"shape \(64, 64\)"):
        model.score(np.zeros((1, 32, 32), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        model.score(images[1])
    one = model.score(_uint8(images[1][0]))  # a single image without the batch axis
    assert one["anomaly_score"].shape == (1,)


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=True)


def test_cli_export_then_score_round_trip(fitted, images, tmp_path, monkeypatch):
    from skcpcae import persistence

    X_train, X_new = images
    pipe = fitted["best"]
    model = tmp_path / "model.skops"
    persistence.save(pipe, model)
    sample, new = tmp_path / "sample", tmp_path / "new"
    for folder, data in ((sample, X_train[:4]), (new, X_new)):
        folder.mkdir()
        for i, img in enumerate(data):
            save_image(folder / f"{folder.name}_{i:02d}.png", img)
    onnx_path = tmp_path / "model.onnx"
    result = invoke("export", model, "-o", onnx_path, "--sample", sample)
    assert result.exit_code == 0, result.output
    assert "max relative score difference" in result.output and onnx_path.is_file()
    again = invoke("export", model, "-o", onnx_path, "--sample", sample)
    assert again.exit_code == 2 and "--force" in again.output

    # score with the runtime in a process where torch cannot be imported
    code = BLOCKED + (f"from skcpcae.cli import main\nmain(['score', {str(onnx_path)!r}, "
                      f"{str(new)!r}, '-o', {str(tmp_path / 'out')!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[3], timeout=120)
    assert out.returncode == 0, out.stderr
    import csv

    with open(tmp_path / "out" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    X = load_images([r["path"] for r in rows], size=(64, 64), color="gray")
    np.testing.assert_allclose([float(r["anomaly_score"]) for r in rows],
                               -pipe.score_samples(X), rtol=1e-4)
    assert [r["decision"] for r in rows] == [
        "ok" if d == 1 else "defect" for d in pipe.predict(X)]

    # a parity failure: exit 2, the figures on stderr, no file
    real = onnx_module._python_outputs
    monkeypatch.setattr(onnx_module, "_python_outputs",
                        lambda p, X, m: (lambda s, d, a: (s * 1.01, d, a))(*real(p, X, m)))
    failed = tmp_path / "failed.onnx"
    result = invoke("export", model, "-o", failed, "--sample", sample)
    assert result.exit_code == 2
    assert "max relative score difference" in result.output and not failed.exists()


# ------------------------------------------------------------------ CPCAE pipelines

#: Tiny CPCAE: 48x48 images downsized to 20x20 (OpenCV's area resize at a non-integer
#: scale), 8x8 patches (a 4x4 grid); stages 2 and 3 of the test network give 6x6 and 3x3
#: maps, which the parallel_cascade head's 4x4 adaptive max pooling does not divide (as
#: ELPV's 300-pixel cells give 38x38). 40 epochs at lr=0.01 (half a second): after one
#: epoch the decoder returns nearly the same patch whatever its input, and a graph that
#: feeds it wrong patches would still pass.
CPCAE_TINY = {"input_size": 20, "patch_size": 8, "channels": (4, 8), "latent_dim": 8,
              "max_epochs": 40, "lr": 0.01, "device": "cpu", "random_state": 0}
CPCAE_PRESET = {**{f"cpcaeresidualmap__{k}": v for k, v in CPCAE_TINY.items()},
                **{f"deeppoolembedder__{k}": v for k, v in TINY.items()}}


@pytest.fixture(scope="module")
def small_images():
    X, _ = make_parts(16, size=(48, 48), random_state=0)
    Xd, _ = make_parts(0, n_anomalies=4, size=(48, 48), random_state=1)
    return X, np.concatenate([X[12:], Xd])


@pytest.fixture(scope="module", params=[0.5, 0], ids=["with peak", "peak_weight=0"])
def aligned(small_images, request):
    # as it ships (the residual peak fused into the score), and without the peak
    return make_preset("aligned", peak_weight=request.param,
                       **CPCAE_PRESET).fit(small_images[0][:12])


@pytest.mark.parametrize("input_dtype", ["float32", "uint8"])
def test_aligned_export_scores_new_images_as_the_pipeline(aligned, small_images, tmp_path,
                                                          input_dtype):
    from skcpcae import anomaly_maps

    X_train, X_new = small_images
    conv = _uint8 if input_dtype == "uint8" else (lambda a: a)
    path = tmp_path / "aligned.onnx"
    report = to_onnx(aligned, path, sample=conv(X_train[:6]), input_dtype=input_dtype)
    assert report.passed and report.max_rel_diff <= 1e-4
    with_peak = aligned[0].signed
    assert report.steps[:2] == ["CPCAEResidualMap",
                                "FeatureUnion" if with_peak else "DeepPoolEmbedder"]
    assert report.outputs == ["anomaly_score", "decision", "anomaly_map"]
    assert report.max_map_rel_diff < 1e-4
    got = _ort(path, conv(X_new))
    expected = -aligned.score_samples(conv(X_new))
    # the check's own measure: relative to max(|score|, |threshold|)
    assert onnx_module.relative_difference(
        got["anomaly_score"], expected, abs(report.threshold)) <= 1e-4
    np.testing.assert_array_equal(got["decision"], aligned.predict(conv(X_new)))
    assert {-1, 1} <= set(got["decision"])  # both sides of the threshold are exercised
    # the map is the residual map at the input size, as skcpcae.anomaly_maps gives it
    amap = anomaly_maps(aligned, conv(X_new))
    assert got["anomaly_map"].shape == amap.shape == (len(X_new), 48, 48)
    np.testing.assert_allclose(got["anomaly_map"], amap, atol=1e-4)
    # not a black image (gain_ exposes the unsigned map; the signed one is |x - x_hat| / x_hat)
    assert amap.max() > (0.05 if with_peak else 0.5)
    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[
        METADATA_KEY])
    assert meta["steps"][0] == "CPCAEResidualMap" and meta["input_dtype"] == input_dtype


def test_aligned_broken_graph_is_refused(aligned, small_images, tmp_path, monkeypatch):
    # a plausible bug: the downsize replayed with bilinear weights instead of area averages
    import cv2

    real = onnx_module._resize_matrix

    def wrong(n_in, n_out, interpolation):
        return real(n_in, n_out, cv2.INTER_LINEAR)

    monkeypatch.setattr(onnx_module, "_resize_matrix", wrong)
    path = tmp_path / "aligned.onnx"
    with pytest.raises(ParityError, match="does not score as the pipeline") as info:
        to_onnx(aligned, path, sample=small_images[0][:6])
    assert info.value.report.max_rel_diff > 1e-4
    assert info.value.report.max_map_rel_diff > 1e-3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape, interpolation", [
    ((48, 40), "area"), ((20, 24), "linear"), ((300, 300), "area"), ((17, 9), "linear")])
def test_resize_matrices_replay_opencv(shape, interpolation):
    import cv2

    flag = cv2.INTER_AREA if interpolation == "area" else cv2.INTER_LINEAR
    h, w = shape
    out = (h // 2 + 3, w // 3 + 1) if interpolation == "area" else (2 * h + 5, 3 * w - 1)
    rows = onnx_module._resize_matrix(h, out[0], flag)
    cols = onnx_module._resize_matrix(w, out[1], flag)
    assert rows.shape == (out[0], h) and cols.shape == (out[1], w)
    rng = np.random.default_rng(0)
    gray = rng.random((h, w), dtype=np.float32)
    np.testing.assert_allclose(rows @ gray @ cols.T,
                               cv2.resize(gray, out[::-1], interpolation=flag), atol=1e-6)
    colour = rng.random((h, w, 3), dtype=np.float32)
    np.testing.assert_allclose(np.stack([rows @ colour[..., c] @ cols.T for c in range(3)], -1),
                               cv2.resize(colour, out[::-1], interpolation=flag), atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (6, 6), (7, 9), (38, 38), (19, 8)])
def test_adaptive_max_pool_is_torchs_on_any_size(size):
    import torch

    from skcpcae.embedding import parallel_cascade_pool
    from skcpcae.export import _modules

    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(_modules.adaptive_max_pool(x, (4, 4)),
                               torch.nn.functional.adaptive_max_pool2d(x, (4, 4)),
                               rtol=0, atol=0)
    torch.testing.assert_close(_modules._pool(x, "parallel_cascade"),
                               parallel_cascade_pool(x), rtol=0, atol=1e-7)


@pytest.mark.parametrize("residual, gain, colour, input_size", [
    ("absolute", None, False, None),  # no resize: the graph skips both matrices
    ("squared", 4.0, True, 20),
    ("log", "auto", True, (24, 16)),
    ("relative", "auto", False, (30, 48)),  # downsized along one axis only
])
def test_residual_map_graph_is_the_transform(small_images, tmp_path, residual, gain, colour,
                                             input_size):
    import torch

    from skcpcae.residuals import CPCAEResidualMap

    X = small_images[0][:8]
    if colour:
        X = np.stack([X, X ** 2, 1 - X], axis=-1).astype(np.float32)
    cpcae = CPCAEResidualMap(**{**CPCAE_TINY, "input_size": input_size}, residual=residual,
                             gain=gain).fit(X[:6])
    module = onnx_module._residual_module(cpcae, "float32").eval()
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(X)).numpy(), cpcae.transform(X),
                                   atol=2e-5)
    path = tmp_path / "residual.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings, as in to_onnx
        torch.onnx.export(module, (torch.from_numpy(X[:2]),), str(path), dynamo=False,
                          input_names=["images"], dynamic_axes={"images": {0: "n"}},
                          opset_version=17)
    got = next(iter(_ort(path, X).values()))
    expected = cpcae.transform(X)
    assert got.shape == expected.shape == X.shape
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert float(np.abs(expected).max()) > 1e-3  # not a trivial all-zero map


def test_residual_peak_graph_replays_scipy_and_the_fused_score(aligned, small_images):
    # the peak's Gaussian is scipy's filter (weights and reflected border) as two matrices,
    # and the whole graph's peak column and fused score are the pipeline's
    import torch

    from skcpcae.export import _modules

    if not aligned[0].signed:
        pytest.skip("the pipeline without the peak")
    X_train, X_new = small_images
    peak_step = aligned[1].transformer_list[1][1]
    _, _, module = onnx_module._peak_union("featureunion", aligned[1], aligned[0])
    signed = aligned[0].transform(X_new)
    got = module(torch.as_tensor(signed)).numpy()
    np.testing.assert_allclose(got, peak_step.transform(signed)[:, 0], rtol=1e-4, atol=1e-4)
    assert isinstance(module, _modules.ResidualPeakScore) and module.smooth


def test_other_feature_unions_after_the_residual_are_refused(small_images, tmp_path):
    from sklearn.pipeline import make_pipeline, make_union

    from skcpcae.embedding import DeepPoolEmbedder
    from skcpcae.outlier import FusedKNNScorer
    from skcpcae.residuals import CPCAEResidualMap, ResidualPeak

    X_train, _ = small_images
    # the signed map straight into the CNN (no ResidualExposure): not the presets' layout
    pipe = make_pipeline(
        CPCAEResidualMap(**CPCAE_TINY, residual="relative", gain=None, signed=True),
        make_union(DeepPoolEmbedder(**TINY), ResidualPeak()), FusedKNNScorer(n_neighbors=3),
    ).fit(X_train[:12])
    with pytest.raises(NotImplementedError, match=r"the one FeatureUnion exported is"):
        to_onnx(pipe, tmp_path / "m.onnx", sample=X_train[:4])
    assert not (tmp_path / "m.onnx").exists()


def test_paper_preset_is_refused_with_the_way_out(small_images, tmp_path):
    # registration and gamma adapt to each image: they stay outside the graph; the message
    # says how to export the rest, and doing what it says gives a file that passes
    X_train, X_new = small_images
    pipe = make_preset("paper", **CPCAE_PRESET).fit(X_train[:12])
    with pytest.raises(NotImplementedError, match=(
            r"ECCRegistrar.*ECCRegistrar, AdaptiveGamma adapt to each image.*export the "
            r"pipeline without them and apply them before scoring: to_onnx\(pipeline\[2:\]")):
        to_onnx(pipe, tmp_path / "paper.onnx", sample=X_train[:4])
    assert not (tmp_path / "paper.onnx").exists()
    head, tail = pipe[:2], pipe[2:]
    report = to_onnx(tail, tmp_path / "paper.onnx", sample=head.transform(X_train[:4]))
    assert report.passed and report.steps[0] == "CPCAEResidualMap"
    got = _ort(tmp_path / "paper.onnx", head.transform(X_new))
    assert onnx_module.relative_difference(
        got["anomaly_score"], -pipe.score_samples(X_new), abs(report.threshold)) <= 1e-4
    np.testing.assert_array_equal(got["decision"], pipe.predict(X_new))


@pytest.mark.parametrize("case", ["aligned, colour", "CPCAE then patch k-NN"])
def test_cpcae_pipeline_variants_are_exported(small_images, tmp_path, case):
    # colour: three channels through the residual graph, the map averaged over them;
    # a patch scorer after the residual map: its own map wins, as in skcpcae.anomaly_maps
    from sklearn.pipeline import make_pipeline

    from skcpcae.embedding import DeepPatchEmbedder
    from skcpcae.outlier import PatchKNNScorer
    from skcpcae.residuals import CPCAEResidualMap

    X_train, X_new = small_images
    if case.endswith("colour"):
        def conv(X):
            return np.stack([X, X ** 2, 1 - X], axis=-1).astype(np.float32)

        pipe = make_preset("aligned", **CPCAE_PRESET)
    else:
        def conv(X):
            return X

        pipe = make_pipeline(CPCAEResidualMap(**CPCAE_TINY, residual="relative"),
                             DeepPatchEmbedder(stages=(2, 3), **TINY), PatchKNNScorer(top_k=3))
    pipe.fit(conv(X_train[:12]))
    report = to_onnx(pipe, tmp_path / "m.onnx", sample=conv(X_train[:4]))
    assert report.passed and report.steps[0] == "CPCAEResidualMap"
    got = _ort(tmp_path / "m.onnx", conv(X_new))
    assert onnx_module.relative_difference(
        got["anomaly_score"], -pipe.score_samples(conv(X_new)), abs(report.threshold)) <= 1e-4
    np.testing.assert_array_equal(got["decision"], pipe.predict(conv(X_new)))
    if case.endswith("colour"):
        # the signed residual's size (the preset reads its sign for the peak), as
        # skcpcae.anomaly_maps gives it
        expected = np.abs(pipe[0].transform(conv(X_new))).mean(axis=3)  # (n, 48, 48)
    else:
        expected = pipe[-1].anomaly_map(pipe[:-1].transform(conv(X_new)))  # feature grid
    assert got["anomaly_map"].shape == expected.shape
    np.testing.assert_allclose(got["anomaly_map"], expected, rtol=1e-4,
                               atol=1e-4 * float(expected.max()))
