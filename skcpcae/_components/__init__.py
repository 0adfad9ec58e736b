# SPDX-License-Identifier: BSD-3-Clause
"""The components layer: algorithms the estimators share, as plain functions and torch code.

Estimators (``skcpcae.preprocessing``, ``embedding``, ``outlier``, ``baselines``, ...) are thin
scikit-learn shells: parameters, validation, ``fit`` and the prediction methods. What they
compute lives here, once, without scikit-learn's estimator API (as anomalib keeps
``models/components/`` under its models):

``backbones``       timm backbones with offline / hub / local weights; input size, batch
                    preparation (resize, normalise), feature maps
``surgery``         batch-norm folding into convolutions; running torch with N threads
``patch_features``  PatchCore's local aggregation of stage maps into patch features
``knn``             the memory-bank k-NN kernel (exact, batched, bounded memory) and the
                    backend interface an approximate index plugs into
``coreset``         greedy k-center and random memory-bank subsampling
``kde``             the 1-D Gaussian kernel density estimate with ``cdf`` / ``ppf``
``atomic``          writing a file atomically (temporary file + ``os.replace``)

Nothing here is public API: users import estimators and functions from the subpackages,
which re-export what is public (``skcpcae.embedding.load_backbone``,
``skcpcae.outlier.local_patch_distances``). Modules import torch lazily.
"""
