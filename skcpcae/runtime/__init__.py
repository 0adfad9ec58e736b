# SPDX-License-Identifier: BSD-3-Clause
"""Serve an exported model without torch or scikit-learn: numpy, onnxruntime and OpenCV.

Install the ``onnx`` extra (``pip install "skcpcae[onnx]"``) on the inspection PC; the model
file comes from :func:`skcpcae.export.to_onnx` (or ``skcpcae export``)::

    from skcpcae import runtime

    model = runtime.load("model.onnx")
    result = model.score(images)            # uint8 or float images at the fitted size
    result["anomaly_score"], result["decision"], result.get("anomaly_map")
    model.score_files(["a.png", "b.png"])   # read, resized and converted as skcpcae does

Nothing here imports torch, scikit-learn or scipy (tested with them blocked).
"""

from ._model import OnnxModel, load, read_images, score_to_csv

__all__ = ["OnnxModel", "load", "read_images", "score_to_csv"]
