"""ResidualExposure and ResidualPeak: the two readings of a signed residual map."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from sklearn.model_selection import KFold

from skcpcae.residuals import CPCAEResidualMap, ResidualExposure, ResidualPeak

TINY = dict(input_size=16, patch_size=8, channels=(4,), latent_dim=4, max_epochs=1,
            batch_size=64, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def maps():
    rng = np.random.RandomState(0)
    return rng.normal(scale=0.02, size=(30, 20, 24)).astype(np.float32)


def _brute_peaks(train, test, polarity, sigma, min_std=1e-3):
    """The definition, one map at a time."""
    def part(m):
        return {"dark": np.maximum(-m, 0), "bright": np.maximum(m, 0), "both": np.abs(m)}[
            polarity].astype(np.float64)

    def smooth(m):
        return gaussian_filter(part(m), sigma) if sigma else part(m)

    ref = np.stack([smooth(m) for m in train])
    mu, sd = ref.mean(0), np.maximum(ref.std(0), min_std)
    return np.array([((smooth(m) - mu) / sd).max() for m in test])


@pytest.mark.parametrize("polarity", ["dark", "bright", "both"])
@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_peak_matches_its_definition(maps, polarity, sigma):
    peak = ResidualPeak(polarity, sigma=sigma).fit(maps[:20])
    got = peak.transform(maps[20:])
    assert got.shape == (10, 1)
    np.testing.assert_allclose(got[:, 0], _brute_peaks(maps[:20], maps[20:], polarity, sigma),
                               rtol=1e-4, atol=1e-4)


def test_peak_reads_the_asked_polarity_only(maps):
    # a dark dent raises the dark peak and leaves the bright one; a bright spot the reverse
    dark, bright = maps[:1].copy(), maps[:1].copy()
    dark[0, 8:11, 8:11] -= 0.5
    bright[0, 8:11, 8:11] += 0.5
    dark_peak = ResidualPeak("dark", sigma=1.0).fit(maps[1:])
    bright_peak = ResidualPeak("bright", sigma=1.0).fit(maps[1:])
    base = dark_peak.transform(maps[:1])[0, 0]
    assert dark_peak.transform(dark)[0, 0] > 10 * base
    assert dark_peak.transform(bright)[0, 0] == pytest.approx(base, rel=0.2)
    assert bright_peak.transform(bright)[0, 0] > 10 * bright_peak.transform(maps[:1])[0, 0]


def test_peak_is_in_units_of_each_places_spread():
    # a place that varies a lot on good parts (an "edge") does not raise the score; the same
    # excursion at a quiet place does
    rng = np.random.RandomState(1)
    train = rng.normal(scale=0.01, size=(40, 16, 16)).astype(np.float32)
    train[:, 2, :] = -np.abs(rng.normal(scale=0.3, size=(40, 16)))  # a noisy dark row
    peak = ResidualPeak(sigma=0.0).fit(train)
    at_edge, quiet = train[:1].copy(), train[:1].copy()
    at_edge[0, 2, 5] = -0.6
    quiet[0, 10, 5] = -0.6
    assert peak.transform(quiet)[0, 0] > 5 * peak.transform(at_edge)[0, 0]


def test_fit_transform_is_out_of_fold(maps):
    peak = ResidualPeak(sigma=1.0, cv=3, random_state=0)
    oof = peak.fit_transform(maps)
    folds = KFold(3, shuffle=True, random_state=np.random.RandomState(0).randint(
        np.iinfo(np.int32).max)).split(maps)
    expected = np.empty(len(maps))
    for train, test in folds:
        expected[test] = _brute_peaks(maps[train], maps[test], "dark", 1.0)
    np.testing.assert_allclose(oof[:, 0], expected, rtol=1e-4, atol=1e-4)
    # transform uses all training maps: in-sample peaks are lower than out-of-fold ones
    assert peak.transform(maps).mean() < oof.mean()
    np.testing.assert_allclose(peak.mean_, ResidualPeak(sigma=1.0).fit(maps).mean_, atol=1e-6)


def test_peak_of_colour_maps_takes_every_channel(maps):
    colour = np.repeat(maps[..., None], 3, axis=-1)
    dented = colour[:1].copy()
    dented[0, 8:11, 8:11, 2] -= 0.5  # one channel only
    peak = ResidualPeak(sigma=1.0).fit(colour[1:])
    assert peak.mean_.shape == (20, 24, 3)
    assert peak.transform(dented)[0, 0] > 10 * peak.transform(colour[:1])[0, 0]


@pytest.mark.parametrize("cls", [ResidualPeak, ResidualExposure])
def test_non_finite_maps_are_refused(maps, cls):
    bad = maps.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        cls().fit(bad)
    fitted = cls().fit(maps)
    bad[3, 4, 5] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        fitted.transform(bad)


def test_exposure_maps_the_99th_percentile_to_one(maps):
    exp = ResidualExposure().fit(maps)
    level = np.quantile(np.abs(maps), 0.99)
    assert exp.gain_ == pytest.approx(1 / level, rel=1e-3)
    out = exp.transform(maps)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() == 1
    assert np.mean(out == 1) == pytest.approx(0.01, abs=0.002)
    dark = ResidualExposure("dark").fit(maps).transform(maps)
    assert np.all(dark[maps > 0] == 0) and dark.max() == 1
    assert ResidualExposure(gain=None).fit(maps).transform(maps).max() == pytest.approx(
        np.abs(maps).max())


def test_signed_residual_split_gives_the_unsigned_presets_maps():
    # CPCAEResidualMap(signed=True, gain=None) -> ResidualExposure() is the former
    # CPCAEResidualMap(gain="auto") bit for bit: the CNN sees the same maps as before
    from skcpcae.datasets import make_parts

    X, _ = make_parts(8, size=(24, 24), random_state=0)
    plain = CPCAEResidualMap(**TINY, residual="relative").fit(X)
    signed = CPCAEResidualMap(**TINY, residual="relative", gain=None, signed=True)
    S = signed.fit_transform(X)
    assert S.min() < 0 < S.max() and np.abs(S).max() <= 1
    np.testing.assert_array_equal(np.abs(S), CPCAEResidualMap(
        **TINY, residual="relative", gain=None).fit(X).transform(X))
    exposure = ResidualExposure().fit(S)
    assert exposure.gain_ == pytest.approx(plain.gain_, rel=1e-6)
    np.testing.assert_array_equal(exposure.transform(signed.transform(X)), plain.transform(X))
    # the sign: negative where the image is darker than its reconstruction
    R = signed.reconstruct(X)
    assert np.all(np.sign(S[np.abs(X - R) > 1e-3]) == np.sign((X - R)[np.abs(X - R) > 1e-3]))


@pytest.mark.parametrize("residual", ["squared", "log"])
def test_signed_needs_a_residual_with_a_sign(residual):
    from skcpcae.datasets import make_parts

    X, _ = make_parts(4, size=(16, 16), random_state=0)
    with pytest.raises(ValueError, match="signed=True needs residual='absolute' or 'relative'"):
        CPCAEResidualMap(**TINY, residual=residual, signed=True).fit(X)


def test_fit_transform_with_a_splitter_that_trains_on_fewer_maps(maps):
    # an iterable of (train, test) whose train folds are not the complements: each fold's
    # statistics come from its own train maps
    folds = [(np.arange(0, 10), np.arange(10, 20)), (np.arange(20, 30), np.arange(0, 10)),
             (np.arange(0, 10), np.arange(20, 30))]
    oof = ResidualPeak(sigma=1.0, cv=folds).fit_transform(maps)
    expected = np.empty(len(maps))
    for train, test in folds:
        expected[test] = _brute_peaks(maps[train], maps[test], "dark", 1.0)
    np.testing.assert_allclose(oof[:, 0], expected, rtol=1e-4, atol=1e-4)
