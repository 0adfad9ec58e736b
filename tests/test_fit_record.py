"""``skcpcae fit --config FILE`` and the fit record that ``skcpcae info`` prints."""

import importlib.util
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from skcpcae import cli
from skcpcae._fit_record import describe_model, fit_record, read_fit_config
from skcpcae.datasets import make_parts, save_image

# the fastest settings of the "aligned" preset (as tests/test_cli.py), as a config file
FAST_TOML = """\
preset = "aligned"

[params]
cpcaeresidualmap__max_epochs = 1
cpcaeresidualmap__patch_size = 16
cpcaeresidualmap__batch_size = 64
deeppoolembedder__weights = "random"
kdethresholdclassifier__cv = 3

[params.kdethresholdclassifier.estimator.knnanomalyscorer]
n_neighbors = 3
"""


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=True)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- read_fit_config


def test_read_fit_config_flattens_tables_and_makes_tuples(tmp_path):
    text = FAST_TOML.replace("[params]\n", "[params]\ndeeppatchembedder__stages = [3, 4]\n")
    path = _write(tmp_path / "fit.toml", text)
    config = read_fit_config(path)
    assert config["preset"] == "aligned"
    params = config["params"]
    assert params["cpcaeresidualmap__max_epochs"] == 1
    assert params["deeppoolembedder__weights"] == "random"
    assert params["kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors"] == 3
    assert params["deeppatchembedder__stages"] == (3, 4)  # arrays become tuples
    assert config["path"] == str(path) and len(config["sha256"]) == 64
    assert config["text"].startswith('preset = "aligned"')


@pytest.mark.parametrize(
    "text, message",
    [
        ('preset = "best"\nalpha = 0.1\n', "unknown key(s) 'alpha'"),
        ("preset = 3\n", "preset must be a string"),
        ('params = "x"\n', "params must be a table"),
        ("[params]\nwhen = 1979-05-27\n", "params when is a date"),
        ("preset = \n", "is not valid TOML"),
    ],
)
def test_read_fit_config_refuses_bad_files_by_key(tmp_path, text, message):
    with pytest.raises(ValueError, match="fit.toml") as exc:
        read_fit_config(_write(tmp_path / "fit.toml", text))
    assert message in str(exc.value)


def test_read_fit_config_refuses_other_suffixes_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"\.toml, \.yaml or \.yml"):
        read_fit_config(_write(tmp_path / "fit.ini", "preset = best"))
    with pytest.raises(ValueError, match="Cannot read the configuration file"):
        read_fit_config(tmp_path / "missing.toml")


@pytest.mark.skipif(importlib.util.find_spec("yaml") is None, reason="PyYAML not installed")
def test_read_fit_config_reads_yaml(tmp_path):
    path = _write(tmp_path / "fit.yaml",
                  "preset: best\nparams:\n  deeppatchembedder:\n    stages: [3, 4]\n")
    config = read_fit_config(path)
    assert config["preset"] == "best"
    assert config["params"] == {"deeppatchembedder__stages": (3, 4)}


def test_fit_record_summarises_the_data():
    X = np.zeros((5, 20, 30), dtype=np.float32)
    sizes = {(40, 60): ["a/1.png", "a/2.png", "b/3.png"], (20, 30): ["b/4.png", "b/5.png"]}
    record = fit_record(X, preset="best", params={"a__b": 1}, source_sizes=sizes,
                        paths=["a/1.png", "a/2.png", "b/3.png", "b/4.png", "b/5.png"])
    data = record["data"]
    assert data["n_images"] == 5 and data["image_size"] == [20, 30] and data["channels"] == 1
    assert data["source_sizes"] == {"20x30": 2, "40x60": 3}
    assert data["folders"] == {"a": 2, "b": 3}
    assert record["versions"]["scikit-learn"] and record["versions"]["numpy"] == np.__version__
    assert record["created"].endswith("+00:00") and record["config"] is None


# ----------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitcfg")
    X, _ = make_parts(12, size=(32, 32), random_state=0)
    (root / "good").mkdir()
    for i, img in enumerate(X):
        save_image(root / "good" / f"good_{i:02d}.png", img)
    config = _write(root / "fit.toml", FAST_TOML)
    model = root / "model.skops"
    # --set wins over the file
    result = invoke("fit", root / "good", "-o", model, "--config", config, "--quiet",
                    "--set", "kdethresholdclassifier__alpha=0.1")
    assert result.exit_code == 0, result.output
    return {"root": root, "model": model, "config": config}


def test_fit_with_config_applies_it_and_stores_the_record(fitted):
    from skcpcae import persistence

    pipe = persistence.load(fitted["model"])
    assert [n for n, _ in pipe.steps][0] == "cpcaeresidualmap"  # preset "aligned" from the file
    assert pipe.named_steps["cpcaeresidualmap"].max_epochs == 1
    assert pipe.named_steps["kdethresholdclassifier"].alpha == 0.1  # from --set
    record = pipe.fit_record_
    assert record["preset"] == "aligned" and record["command"] == "skcpcae fit"
    assert record["params"]["kdethresholdclassifier__alpha"] == 0.1
    assert record["config"]["text"] == fitted["config"].read_text()
    assert record["data"]["n_images"] == 12 and record["data"]["image_size"] == [32, 32]
    assert record["data"]["source_sizes"] == {"32x32": 12}


def test_info_prints_the_record(fitted):
    result = invoke("info", fitted["model"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "preset:      aligned" in out
    assert "kdethresholdclassifier__alpha=0.1" in out
    assert "training:    12 images, fitted at 32x32 (gray)" in out
    assert "file sizes:  32x32 (12)" in out
    assert f"config file: {fitted['config']}" in out
    assert "scikit-learn " in out and "torch " in out
    assert "threshold:" in out and "alpha=0.1" in out


def test_info_json_is_one_object_with_the_record(fitted):
    result = invoke("info", fitted["model"], "--json")
    assert result.exit_code == 0, result.output
    desc = json.loads(result.stdout)
    assert desc["steps"][-1] == ["kdethresholdclassifier", "skcpcae.KDEThresholdClassifier"]
    assert desc["fit_record"]["data"]["n_images"] == 12
    assert desc["threshold"] > 0


def test_info_of_a_model_saved_from_python_says_so(tmp_path):
    from skcpcae import persistence
    from skcpcae.outlier import KNNAnomalyScorer

    path = persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(np.eye(4)), tmp_path / "k.skops")
    result = invoke("info", path)
    assert result.exit_code == 0, result.output
    assert "fit record:  none" in result.stdout
    assert describe_model(persistence.load(path))["fit_record"] is None


def test_fit_with_a_bad_config_exits_2_before_reading_images(tmp_path):
    bad = _write(tmp_path / "fit.toml", 'preset = "best"\nepochs = 3\n')
    result = invoke("fit", tmp_path / "no_such_folder", "-o", tmp_path / "m.skops",
                    "--config", bad)
    assert result.exit_code == 2, result.output
    assert "unknown key(s) 'epochs'" in result.stderr
    unknown = _write(tmp_path / "fit2.toml", 'preset = "nope"\n')
    result = invoke("fit", tmp_path, "-o", tmp_path / "m.skops", "--config", unknown)
    assert result.exit_code == 2 and "Unknown preset 'nope'" in result.stderr


def test_info_refuses_a_file_that_is_not_a_model(tmp_path):
    result = invoke("info", _write(tmp_path / "x.skops", "not a model"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
