"""Pre-processing stages: registration onto a reference part, adaptive gamma correction, and
the feature scaler with a floor that the scorers use."""

from ._gamma import AdaptiveGamma, object_mask
from ._registration import ECCRegistrar
from ._scaler import FlooredStandardScaler

__all__ = ["AdaptiveGamma", "ECCRegistrar", "FlooredStandardScaler", "object_mask"]
