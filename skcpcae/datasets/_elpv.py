# SPDX-License-Identifier: BSD-3-Clause
"""The ELPV solar-cell dataset (PyPI ``elpv-dataset``) under this project's protocol."""

import functools
import importlib

import numpy as np
from sklearn.utils import Bunch

from ._io import _check_size, _resize

__all__ = ["load_elpv"]

_INSTALL_HINT = (
    'load_elpv needs the optional package elpv-dataset: pip install "skcpcae[elpv]" '
    "(or pip install elpv-dataset)."
)

_DESCR = """\
ELPV: electroluminescence images of solar cells
-----------------------------------------------

2,624 grayscale images of 300x300 pixels of functional and defective solar cells, cut from
electroluminescence images of 44 photovoltaic modules, normalised for size and perspective.
Each cell is labelled with a defect probability (0, 1/3, 2/3 or 1, the agreement of expert
raters) and the type of its module, "mono" (1,074 cells) or "poly" (1,550 cells).

Protocol (skcpcae benchmarks): for one cell type, the normal cells are those with
probability 0; they are shuffled with numpy.random.default_rng(random_state); the first half
(floor(n / 2)) is the training set; the test set is the other half of the normal cells
(y = 0) followed by every probability-1 cell of that type (y = 1) and, with
include_uncertain=True, the 1/3 and 2/3 cells too (y = 1).

Source: https://github.com/zae-bayern/elpv-dataset (PyPI: elpv-dataset).
Licence: images and labels are released under Creative Commons
Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0); skcpcae does not redistribute
them.

Citation:
  Buerhop-Lutz, C., Deitsch, S., Maier, A., Gallwitz, F., Berger, S., Doll, B., Hauch, J.,
  Camus, C., Brabec, C. J. (2018). A Benchmark for Visual Identification of Defective Solar
  Cells in Electroluminescence Imagery. European PV Solar Energy Conference and Exhibition
  (EU PVSEC). doi:10.4229/35thEUPVSEC20182018-5CV.3.15
  Deitsch, S., Christlein, V., Berger, S., Buerhop-Lutz, C., Maier, A., Gallwitz, F.,
  Riess, C. (2019). Automatic classification of defective photovoltaic module cells in
  electroluminescence images. Solar Energy, 185, 455-468.
  doi:10.1016/j.solener.2019.02.067
  Deitsch, S., Buerhop-Lutz, C., Sovetkin, E., Steland, A., Maier, A., Gallwitz, F.,
  Riess, C. (2021). Segmentation of photovoltaic module cells in uncalibrated
  electroluminescence images. Machine Vision and Applications, 32(4).
  doi:10.1007/s00138-021-01191-9
"""


def _import_elpv():
    """The ``elpv_dataset.utils`` module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("elpv_dataset.utils")
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc


@functools.lru_cache(maxsize=1)
def _load_raw():
    """Decode the whole dataset once per process: uint8 images, probabilities, types.

    The returned arrays are read-only, so the cached copy cannot be changed by a caller.
    """
    images, proba, types = _import_elpv().load_dataset()
    images = np.ascontiguousarray(images, dtype=np.uint8)
    proba = np.asarray(proba, dtype=np.float64)
    types = np.asarray(types, dtype=str)
    for a in (images, proba, types):
        a.setflags(write=False)
    return images, proba, types


def _to_float(images, index, size):
    """``images[index]`` as float32 in [0, 1], resized to ``size`` when given."""
    if size is None:
        out = images[index].astype(np.float32)
        out /= np.float32(255.0)
        return out
    out = np.empty((len(index),) + tuple(size), dtype=np.float32)
    for i, j in enumerate(index):
        out[i] = _resize(images[j], size).astype(np.float32) / np.float32(255.0)
    return out


def load_elpv(cell_type="mono", *, include_uncertain=False, random_state=0, size=None):
    """Load the ELPV solar-cell images split by this project's one-class protocol.

    For the chosen cell type, the normal cells (defect probability 0) are shuffled with
    ``numpy.random.default_rng(random_state).permutation``; the first half
    (``floor(n_normal / 2)``) is the training set. The test set is the other half of the
    normal cells (``y = 0``) followed by every cell of that type with probability 1
    (``y = 1``), in dataset order; with ``include_uncertain=True`` the cells with
    probability 1/3 and 2/3 are counted as defective too. The dataset is decoded once per
    process and cached.

    The data come from the optional PyPI package ``elpv-dataset`` (install with
    ``pip install "skcpcae[elpv]"``); they are licensed CC BY-NC-SA 4.0 (see ``DESCR``).

    Parameters
    ----------
    cell_type : {"mono", "poly"}, default="mono"
        Monocrystalline (1,074 cells) or polycrystalline (1,550 cells).
    include_uncertain : bool, default=False
        Also put the cells with defect probability 1/3 and 2/3 in the test set, as defective.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of ``numpy.random.default_rng`` that shuffles the normal cells.
    size : tuple of (int, int) or None, default=None
        ``(height, width)`` to resize the 300x300 images to (``cv2.INTER_AREA`` when
        shrinking).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the keys

        - ``X_train`` : ndarray of shape (n_train, height, width), float32 in [0, 1];
        - ``X_test`` : ndarray of shape (n_test, height, width), float32 in [0, 1];
        - ``y_test`` : ndarray of shape (n_test,), int64, 0 normal and 1 defective;
        - ``proba_test`` : ndarray of shape (n_test,), the defect probability of each test
          cell;
        - ``index_train``, ``index_test`` : ndarray of int, the rows of the dataset
          (``labels.csv``) of the training and test cells;
        - ``cell_type`` : str;
        - ``DESCR`` : str, description, licence and citation.

    Raises
    ------
    ImportError
        When ``elpv-dataset`` is not installed.

    Notes
    -----
    Sizes with the default ``random_state``: mono has 588 normal cells (294 train, 294 test),
    313 defective and 173 uncertain cells; poly has 920 normal cells (460 train, 460 test),
    402 defective and 228 uncertain cells.

    References
    ----------
    .. [1] Buerhop-Lutz, C. et al. (2018). A Benchmark for Visual Identification of Defective
       Solar Cells in Electroluminescence Imagery. EU PVSEC.
    .. [2] Deitsch, S. et al. (2019). Automatic classification of defective photovoltaic
       module cells in electroluminescence images. Solar Energy, 185, 455-468.

    Examples
    --------
    >>> from skcpcae.datasets import load_elpv
    >>> data = load_elpv("mono", size=(32, 32))
    >>> data.X_train.shape, data.X_test.shape, int(data.y_test.sum())
    ((294, 32, 32), (607, 32, 32), 313)
    """
    if cell_type not in ("mono", "poly"):
        raise ValueError(f"cell_type must be 'mono' or 'poly'; got {cell_type!r}.")
    if not isinstance(include_uncertain, (bool, np.bool_)):
        raise ValueError(f"include_uncertain must be a bool; got {include_uncertain!r}.")
    size = _check_size(size)
    _import_elpv()  # a clear ImportError even when an earlier call filled the cache
    images, proba, types = _load_raw()

    of_type = types == cell_type
    normal = np.flatnonzero(of_type & (proba == 0))
    if include_uncertain:
        defective = np.flatnonzero(of_type & (proba > 0))
    else:
        defective = np.flatnonzero(of_type & (proba == 1))
    rng = np.random.default_rng(random_state)
    shuffled = normal[rng.permutation(len(normal))]
    n_train = len(normal) // 2
    index_train = shuffled[:n_train]
    index_test = np.concatenate([shuffled[n_train:], defective])
    y_test = np.concatenate(
        [np.zeros(len(normal) - n_train, np.int64), np.ones(len(defective), np.int64)]
    )
    return Bunch(
        X_train=_to_float(images, index_train, size),
        X_test=_to_float(images, index_test, size),
        y_test=y_test,
        proba_test=np.array(proba[index_test]),
        index_train=index_train,
        index_test=index_test,
        cell_type=cell_type,
        DESCR=_DESCR,
    )
