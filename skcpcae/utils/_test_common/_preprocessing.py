"""Fast instances of the pre-processing stages and their expected common-check failures.

scikit-learn's checks send tables ``(n_samples, n_features)``, which the image stages read as
one-pixel-high images. ECC cannot register a one-pixel-high image: ``ECCRegistrar`` records
such an image as failed and returns it unwarped, so its test instance uses
``on_failure="identity"`` to keep the checks silent (the policies themselves are tested in
``skcpcae/preprocessing/tests/test_registration.py``).
"""

from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar, FlooredStandardScaler

INSTANCES = [
    ECCRegistrar(on_failure="identity"),
    AdaptiveGamma(),
    FlooredStandardScaler(),
]

EXPECTED_FAILED_CHECKS = {
    "ECCRegistrar": {
        "check_transformer_n_iter": (
            "max_iter bounds the ECC iterations that transform runs per image and pyramid "
            "level; fit runs none, and OpenCV does not report an iteration count, so there is "
            "no n_iter_."
        ),
    },
}

EXPECTED_FAILED_IMAGE_CHECKS: dict = {}
