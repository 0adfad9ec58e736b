"""Utilities: device handling, estimator discovery, image-level estimator checks."""
