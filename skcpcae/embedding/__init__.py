"""Deep-feature embedding: pretrained timm backbones (offline by default) and pooling heads."""

from .._components.backbones import backbone_normalization, load_backbone
from ._deep_patch import DeepPatchEmbedder
from ._deep_pool import DeepPoolEmbedder
from ._pooling import (
    POOLINGS,
    gem_pool,
    global_avg_pool,
    global_max_pool,
    max_avg_pool,
    parallel_cascade_pool,
    pool_features,
    pooled_n_features,
)

__all__ = [
    "DeepPatchEmbedder",
    "DeepPoolEmbedder",
    "load_backbone",
    "backbone_normalization",
    "POOLINGS",
    "global_max_pool",
    "global_avg_pool",
    "gem_pool",
    "max_avg_pool",
    "parallel_cascade_pool",
    "pool_features",
    "pooled_n_features",
]
