"""Fast common-check instances of skcpcae.embedding (tiny timm test CNN, random weights)."""

from skcpcae.embedding import DeepPatchEmbedder, DeepPoolEmbedder

INSTANCES = [
    # timm's 356k-parameter "test_efficientnet", random weights (no file is read), one image
    # per forward pass so that a sample's embedding cannot depend on the rest of its batch
    # (check_methods_subset_invariance compares to 1e-7).
    DeepPoolEmbedder(
        "test_efficientnet", weights=None, batch_size=1, device="cpu", random_state=0
    ),
    DeepPatchEmbedder(
        "test_efficientnet", weights=None, batch_size=1, device="cpu", random_state=0
    ),
]

EXPECTED_FAILED_CHECKS = {"DeepPoolEmbedder": {}, "DeepPatchEmbedder": {}}
