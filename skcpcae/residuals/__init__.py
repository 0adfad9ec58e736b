"""Residual maps of the conditional patch-based convolutional autoencoder (Sec. 3.2)."""

from ._cpcae import CPCAEResidualMap
from ._maps import ResidualExposure, ResidualPeak

__all__ = ["CPCAEResidualMap", "ResidualExposure", "ResidualPeak"]
