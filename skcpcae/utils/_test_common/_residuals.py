"""Fast instance of CPCAEResidualMap for scikit-learn's common checks.

The checks send tables ``(n_samples, n_features)``: they arrive as one-pixel-high images, the
patch is clamped to ``1 x min(patch_size, n_features)`` and a table is returned. Values
outside [0, 1] are accepted with a warning, so every check passes. Only ``cv=None`` is
registered: with ``cv`` set, ``fit_transform`` returns out-of-fold residuals by design and
``check_transformer_general`` (fit_transform vs fit().transform) could not pass; the
cross-fitting is tested in ``skcpcae/residuals/tests/test_cpcae.py``.
"""

from skcpcae.residuals import CPCAEResidualMap, ResidualExposure, ResidualPeak

INSTANCES = [
    CPCAEResidualMap(
        input_size=8, patch_size=4, latent_dim=4, channels=(4,), max_epochs=1, batch_size=16,
        device="cpu", random_state=0,
    ),
    # the signed map of the CPCAE presets' peak branch
    CPCAEResidualMap(
        input_size=8, patch_size=4, latent_dim=4, channels=(4,), max_epochs=1, batch_size=16,
        residual="relative", gain=None, signed=True, device="cpu", random_state=0,
    ),
    ResidualExposure(),
    # cv=None: with folds, fit_transform returns out-of-fold peaks by design (as
    # CPCAEResidualMap with cv), which check_transformer_general could not pass; the
    # cross-fitting is tested in skcpcae/residuals/tests/test_maps.py
    ResidualPeak(sigma=1.0, cv=None),
]

EXPECTED_FAILED_CHECKS = {"CPCAEResidualMap": {}}
