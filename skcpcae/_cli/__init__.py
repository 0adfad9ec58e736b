# SPDX-License-Identifier: BSD-3-Clause
"""The work behind :mod:`skcpcae.cli`, which holds the typer app, the commands' arguments and
their output only.

* ``_errors``: one-line errors, exit codes, signals;
* ``_help``: the help epilogs;
* ``_fit``, ``_score``, ``_evaluate``: the work of each command;
* ``_parsing``: option values checked by hand (``--size``, ``--set``, numbers, config files);
* ``_inputs``: folders into image paths, sizes from headers, images and masks loaded;
* ``_memory_checks``: refusing a run whose estimated memory exceeds the budget;
* ``_models``: loading, claiming and saving model files, moving the operating point;
* ``_files``: output files (no overwrite without ``--force``, atomic writes);
* ``_maps``: heatmaps, raw maps, masks, locations and ROC / PR figures.
"""
