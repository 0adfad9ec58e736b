"""Residual maps of the conditional patch-based convolutional autoencoder (Sec. 3.2)."""

from ._cpcae import CPCAEResidualMap

__all__ = ["CPCAEResidualMap"]
