"""Fast instances of the pre-processing stages and their expected common-check failures.

scikit-learn's checks send tables ``(n_samples, n_features)``, which the image stages read as
one-pixel-high images. ECC cannot register a one-pixel-high image: ``ECCRegistrar`` records
such an image as failed and returns it unwarped, so its test instance uses
``on_failure="identity"`` to keep the checks silent (the policies themselves are tested in
``skcpcae/preprocessing/tests/test_registration.py``).
"""

from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar

INSTANCES = [
    ECCRegistrar(on_failure="identity"),
    AdaptiveGamma(),
]

_UNIT_RANGE = (
    "The check's data has values outside [0, 1] (3 * uniform, standard normal, shifted "
    "iris); AdaptiveGamma refuses them with a ValueError because gamma correction is defined "
    "for intensities in [0, 1]. The same property is tested on valid images in "
    "skcpcae/preprocessing/tests/test_gamma.py::test_estimator_contract_on_unit_images."
)

_GAMMA_UNIT_CHECKS = [
    "check_dict_unchanged",
    "check_estimators_dtypes",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_estimators_pickle(readonly_memmap=True)",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_general(readonly_memmap=True)",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
]

EXPECTED_FAILED_CHECKS = {
    "ECCRegistrar": {
        "check_transformer_n_iter": (
            "max_iter bounds the ECC iterations that transform runs per image and pyramid "
            "level; fit runs none, and OpenCV does not report an iteration count, so there is "
            "no n_iter_."
        ),
    },
    "AdaptiveGamma": {
        **{check: _UNIT_RANGE for check in _GAMMA_UNIT_CHECKS},
    },
}

EXPECTED_FAILED_IMAGE_CHECKS: dict = {}
