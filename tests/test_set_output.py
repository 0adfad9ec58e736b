"""set_output(transform="pandas") on every preset and on the pipelines that end in a table."""

import numpy as np
import pytest

import skcpcae
from skcpcae.datasets import make_parts

pd = pytest.importorskip("pandas", reason="DataFrame output needs the 'pandas' extra")


def _fast(pipe):
    params = pipe.get_params()
    fast = {k: None for k in params if k.endswith("__weights")}
    fast.update({k: 1 for k in params if k.endswith("__max_epochs")})
    fast.update({k: 2 for k in params if k.endswith("cpcaeresidualmap__cv")})
    fast.update({k: 3 for k in params if k.endswith("__n_neighbors")})
    fast.update({k: 2 for k in params if k.endswith("kdethresholdclassifier__cv")})
    return pipe.set_params(**fast)


@pytest.fixture(scope="module")
def images():
    return make_parts(10, size=(32, 32), random_state=0)[0]


# The CPCAE presets train an autoencoder (minutes on a loaded 2-core machine); their image
# stages share ImageOutputMixin with AdaptiveGamma, tested below in a pipeline.
@pytest.mark.parametrize("name", ["best", "deep-feature"])
def test_set_output_pandas_on_presets(name, images):
    pipe = _fast(skcpcae.make_preset(name))
    plain = _fast(skcpcae.make_preset(name)).fit(images).score_samples(images)
    pipe.set_output(transform="pandas").fit(images)
    np.testing.assert_allclose(pipe.score_samples(images), plain, rtol=1e-5)
    head = pipe[:-1]
    out = head.transform(images)
    if name == "best":  # ends in patch maps (n, h, w, c), not a table: stays an ndarray
        assert isinstance(out, np.ndarray) and out.ndim == 4
    else:  # ends in an embedding table
        assert isinstance(out, pd.DataFrame) and out.shape[0] == len(images)
        assert list(out.columns) == list(head.get_feature_names_out())


def test_image_stages_pass_images_and_tables_become_dataframes(images):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcpcae.embedding import DeepPoolEmbedder
    from skcpcae.preprocessing import AdaptiveGamma

    pipe = make_pipeline(AdaptiveGamma(), DeepPoolEmbedder(weights=None, random_state=0),
                         StandardScaler()).set_output(transform="pandas")
    out = pipe.fit(images).transform(images)
    assert isinstance(out, pd.DataFrame) and out.shape[0] == len(images)
    assert isinstance(pipe[0].transform(images), np.ndarray)  # images stay images


def test_image_stage_set_output_validates():
    from skcpcae.preprocessing import AdaptiveGamma

    with pytest.raises(ValueError, match="pandas"):
        AdaptiveGamma().set_output(transform="excel")
