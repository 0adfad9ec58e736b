"""Pre-processing stages: registration onto a reference part and adaptive gamma correction."""

from ._gamma import AdaptiveGamma, object_mask
from ._registration import ECCRegistrar

__all__ = ["AdaptiveGamma", "ECCRegistrar", "object_mask"]
