from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
    PatchKNNScorer,
)

_LOO = (
    "offset_ is set from leave-one-out training scores (no sample is its own neighbour), "
    "while predict on the training set uses in-sample scores, so the flagged fraction of the "
    "training set is below `contamination` by design."
)

_KDE_LOO = (
    "offset_ is set from leave-one-out training log-densities (each training sample's own "
    "kernel left out), while predict on the training set uses in-sample log-densities, so "
    "the flagged fraction of the training set is below `contamination` by design."
)

INSTANCES = [
    KNNAnomalyScorer(n_neighbors=3),
    KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), cv=3),
    GMMAnomalyScorer(),
    KDEAnomalyScorer(),
    PatchKNNScorer(),
]

EXPECTED_FAILED_CHECKS = {
    "KNNAnomalyScorer": {
        "check_outliers_fit_predict": _LOO,
        "check_outliers_train": _LOO,
    },
    "PatchKNNScorer": {
        "check_outliers_fit_predict": _LOO,
        "check_outliers_train": _LOO,
    },
    "KDEAnomalyScorer": {
        "check_outliers_fit_predict": _KDE_LOO,
        "check_outliers_train": _KDE_LOO,
    },
}
