# SPDX-License-Identifier: BSD-3-Clause
"""The help epilogs of ``skcpcae`` and its commands (examples, what is written, exit codes)."""

MAIN = """\
**Examples**

```
skcpcae fit parts/good -o model.skops
skcpcae fit cells/good -o model.skops --preset aligned --set cpcaeresidualmap__max_epochs=50
skcpcae score model.skops incoming/ -o results/ --heatmaps
skcpcae evaluate model.skops --good test/good --defect test/crack -o report/
skcpcae evaluate model.skops --mvtec mvtec_ad --category bottle -o report/
```

Exit codes: 0 ok, 1 unexpected error, 2 bad usage or bad input. Add `--debug` to any command
for the full traceback.
"""


FIT = """\
**Examples**

```
skcpcae fit parts/good -o model.skops
skcpcae fit cells/good -o cells.skops --preset aligned --size 128x128
skcpcae fit parts/good --set cpcaeresidualmap__max_epochs=50 --set kdethresholdclassifier__alpha=0.01
```

`--set` values are Python literals (`5`, `0.01`, `True`, `(32, 32)`, `'resnet18'`); anything
else is taken as a string. Parameter names are `<step>__<param>` as in scikit-learn
(`skcpcae fit --preset NAME --list-params` shows them).

Model files: `.skops` (the default: loading it never runs code, unknown types are listed
and refused) or `.joblib` (a pickle: load only files you trust; `score` and `evaluate` read
it only with `--allow-pickle`). Both record a SHA-256 of their content: a damaged file is
refused. Should a `.skops` save fail,
the fitted model is saved as `.joblib` instead, with exit code 2, so a long fit is not lost.
"""


SCORE = """\
**Examples**

```
skcpcae score model.skops incoming/ -o results/
skcpcae score model.skops a.png b.png -o results/ --heatmaps
skcpcae score model.skops incoming/ -o strict/ --alpha 0.01
```

Writes `results/scores.csv` with the columns path, anomaly_score (higher = more anomalous),
decision (ok / defect), threshold and error (why an image could not be read; its other cells
are then empty); for a model ending in the KDE threshold (every preset) also
normalized_score (0 = a typical good part, 1 = the threshold, above 1 = defect, the same
scale for every preset) and normality_pvalue (the share of good parts expected to score at
least as high). `--alpha A` (the expected false-alarm rate on good parts) or `--threshold T`
(on the anomaly score) move the operating point for this run without refitting: the
threshold is read off the KDE stored in the model, and the model file is not changed. With `--heatmaps` also `results/heatmaps/<name>.png`: the anomaly map over
the image (over the aligned image when the model registers parts). Images are read, scored
and written one batch at a time (memory does not grow with the number of images): the rows
and heatmaps of every finished batch are on disk, and after an interruption `--resume`
scores only the images still missing. Heatmap colours run from 0 to `--vmax` (one scale
for every image: set it to compare images), by default to each image's own largest map
value. Each heatmap is a figure a person can read alone: the image, the map with a colour bar
in the model's units, the file name, score, threshold and decision. `--locations` (implied by
`--heatmaps`, `--save-maps`, `--save-masks`) adds the columns map_max, map_max_row,
map_max_col, map_threshold, defect_area, defect_fraction, n_regions and boxes (JSON
`[[row, col, height, width], ...]`) and writes `locations.jsonl`, one line per image with the
regions in full; `--save-maps npy|tiff` and `--save-masks` write `maps/<name>.npy|tiff` and
`maps/<name>_mask.png`. Pixels are defective above `--map-threshold` (map units; default: the
model's threshold in map units when it is known, as for the best preset). Images are
resized to the size the model was fitted on; files over `--max-pixels`
(default 100 megapixels) are refused from their header. The output folder is claimed for
the run: a second run into it is refused (exit 2). `--scheduler tcp://HOST:PORT` (a Dask
cluster) or `--workers N` (a local one) score the batches as Dask tasks: each worker loads
the model file once and reads the images (at the same paths), and the scores file is the
one a run in one process writes, row for row (needs `pip install "skcpcae[dask]"`).
"""


EVALUATE = """\
**Examples**

```
skcpcae evaluate model.skops --good test/good --defect test/crack -o report/
skcpcae evaluate model.skops --good ok/ --defect crack/ --defect scratch/ -o report/
skcpcae evaluate model.skops --mvtec mvtec_ad --category bottle -o report/
```

Prints AUROC and average precision (defective = positive) and the confusion counts at the
model's threshold; writes `report/metrics.json`, `report/roc.png` and `report/pr.png` (the
plots need matplotlib: `pip install "skcpcae[plot]"`).
"""


INFO = """\
**Examples**

```
skcpcae info model.skops
skcpcae info model.skops --json
```

Prints the pipeline's steps, its threshold and the record `skcpcae fit` stored in the model:
preset, `--set` / config-file overrides, the configuration file (name, SHA-256; the full
text with `--json`), the training images (number, size, the files' own sizes, folders), the
library versions and the date of the fit.
"""


#: Help of ``skcpcae fit --preset``.
PRESET_OPTION = (
    "Pipeline: paper (registration + gamma + CPCAE + deep "
    "features + k-NN + KDE threshold), aligned (paper without registration, "
    "for pre-aligned parts), best (patch features, each compared with the "
    "same place on good parts; fast, no training), union (raw-image + "
    "residual-map embeddings), deep-feature (the CNN-feature comparator). "
    "Default: the config file's, else best."
)
