# SPDX-License-Identifier: BSD-3-Clause
"""Export a fitted pipeline to ONNX: one graph, checked to score as the pipeline does.

:func:`to_onnx` needs the ``export`` extra (``pip install "skcpcae[export]"``: onnx,
onnxruntime, onnxscript). The exported file is served without torch or scikit-learn by
:mod:`skcpcae.runtime` (the ``onnx`` extra).
"""

from ._onnx import ExportReport, ParityError, to_onnx

__all__ = ["ExportReport", "ParityError", "to_onnx"]
