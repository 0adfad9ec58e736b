# SPDX-License-Identifier: BSD-3-Clause
"""Anomaly-map outputs of ``skcpcae score`` (heatmap figures, raw maps, defect masks,
locations.jsonl) and the ROC / PR figures of ``skcpcae evaluate``."""

import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ._files import _write_atomic


def _heatmap_names(paths):
    """One PNG name per input (file stem; duplicates get ``-1``, ``-2``, ...)."""
    names, seen = [], {}
    for p in paths:
        stem = Path(p).stem or "image"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(f"{stem}.png" if count == 0 else f"{stem}-{count}.png")
    # a later stem may equal an earlier "stem-1": make every name unique
    used, out = set(), []
    for name in names:
        base, k = name[:-4], 1
        while name in used:
            name = f"{base}_{k}.png"
            k += 1
        used.add(name)
        out.append(name)
    return out


def _heatmap_score_batch(source, names, heat_dir, *, sigma, vmax, out_dir=None,
                         map_threshold=None, save_maps=None, save_masks=False):
    """The batch scorer of ``skcpcae score`` with anomaly maps (``skcpcae.inspect_images``):
    scores, decisions, threshold, the location columns of ``skcpcae.location_summary``, one
    line per image in ``out_dir/locations.jsonl`` and, as asked, one heatmap figure per image
    in ``heat_dir``, the raw map and the defect mask in ``out_dir/maps``, each written as soon
    as its batch is scored.

    Colours: ``vmax`` when given (one scale for every image), else each image's own range.
    The map threshold: ``map_threshold`` when given, else the model's ``map_threshold`` (known
    when its score averages its map or its scorer converts it), else none (no area, regions
    or mask).
    """
    from .._scoring import readable_columns
    from ..inspection import final_estimator, inspect_images, location_summary

    state = {"warned": False}

    def score_batch(model, X, paths):
        res = inspect_images(model, X, sigma="auto" if sigma is None else sigma)
        threshold = res.threshold
        pred = res.prediction
        m_threshold = map_threshold if map_threshold is not None else res.map_threshold
        if m_threshold is None and save_masks and not state["warned"]:
            warnings.warn("no map threshold is known for this model's maps: give "
                          "--map-threshold for defect areas, regions and masks.", UserWarning,
                          stacklevel=2)
            state["warned"] = True
        columns = {
            "anomaly_score": [float(v) for v in res.anomaly_score],
            "decision": (["defect" if p == -1 else "ok" for p in pred] if pred is not None
                         else [""] * len(paths)),
            "threshold": [threshold] * len(paths),
            **readable_columns(final_estimator(model), res.anomaly_score),
        }
        rows = [location_summary(m, m_threshold) for m in res.anomaly_maps]
        for key in ("map_max", "map_max_row", "map_max_col", "map_threshold", "defect_area",
                    "defect_fraction", "n_regions"):
            columns[key] = [r.get(key) for r in rows]
        columns["boxes"] = [
            None if "regions" not in r else json.dumps(
                [[g["row"], g["col"], g["height"], g["width"]] for g in r["regions"]])
            for r in rows
        ]
        stems = [names[p][:-4] for p in paths]
        if heat_dir is not None:
            heat_dir.mkdir(exist_ok=True)
            columns["heatmap"] = []
            for i, path in enumerate(paths):
                data = _heatmap_png(res.images[i], res.anomaly_maps[i], name=Path(path).name,
                                    score=float(res.anomaly_score[i]), threshold=threshold,
                                    decision=columns["decision"][i] or None,
                                    map_threshold=m_threshold, vmax=vmax, units=res.map_source)
                _write_atomic(heat_dir / names[path], data)
                columns["heatmap"].append(str(Path("heatmaps") / names[path]))
        if save_maps or (save_masks and m_threshold is not None):
            map_dir = out_dir / "maps"
            map_dir.mkdir(exist_ok=True)
        if save_maps:
            columns["map"] = []
            for stem, amap in zip(stems, res.anomaly_maps, strict=True):
                _write_atomic(map_dir / f"{stem}.{save_maps}", _map_bytes(amap, save_maps))
                columns["map"].append(str(Path("maps") / f"{stem}.{save_maps}"))
        if save_masks:
            columns["mask"] = []
            for stem, amap in zip(stems, res.anomaly_maps, strict=True):
                if m_threshold is None:
                    columns["mask"].append(None)
                    continue
                from ..datasets import save_image
                from ..inspection import defect_mask

                save_image(map_dir / f"{stem}_mask.png", defect_mask(amap, m_threshold))
                columns["mask"].append(str(Path("maps") / f"{stem}_mask.png"))
        if out_dir is not None:
            lines = []
            for i, (path, r) in enumerate(zip(paths, rows, strict=True)):
                lines.append(json.dumps({
                    "path": str(path), "anomaly_score": columns["anomaly_score"][i],
                    "decision": columns["decision"][i], "threshold": threshold,
                    "map_source": res.map_source, **r}))
            with open(out_dir / "locations.jsonl", "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        return columns

    return score_batch


def _heatmap_png(image, amap, *, name, score, threshold, decision, map_threshold, vmax, units):
    """PNG bytes of :func:`skcpcae.plotting.plot_inspection` (no pyplot); without matplotlib,
    the plain overlay of :func:`skcpcae.plotting.overlay_heatmap`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        from ..datasets import save_image
        from ..plotting import overlay_heatmap

        rgb = overlay_heatmap(image, amap, alpha=0.5, vmin=0.0,
                              vmax=vmax if vmax is not None else (float(np.max(amap)) or 1.0))
        with tempfile.TemporaryDirectory() as tmp:
            path = save_image(Path(tmp) / "h.png", rgb)
            return Path(path).read_bytes()
    from ..plotting import plot_inspection

    fig = Figure(figsize=(9, 4.2), layout="constrained")
    axes = plot_inspection(image, amap, name=name, score=score, threshold=threshold,
                           decision=decision, map_threshold=map_threshold,
                           vmin=None if vmax is None else 0.0, vmax=vmax,
                           units=units or "anomaly map", axes=fig.subplots(1, 2))
    title = fig.texts[0].get_text() if fig.texts else str(name)
    lo, hi = axes[1].images[-1].get_clim()
    buf = io.BytesIO()  # what the figure says, also as PNG text (searchable, testable)
    fig.savefig(buf, format="png", dpi=100,
                metadata={"Title": title, "Description": f"colour bar: {units}, from "
                          f"{lo:.6g} to {hi:.6g}"})
    return buf.getvalue()


def _map_bytes(amap, fmt):
    amap = np.asarray(amap, dtype=np.float32)
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, amap)
        return buf.getvalue()
    import cv2

    ok, data = cv2.imencode(".tiff", amap)
    if not ok:  # pragma: no cover
        raise OSError("OpenCV could not encode the map as TIFF.")
    return data.tobytes()


def _save_curves(y, s, roc_path, pr_path, threshold=None):
    """ROC and PR figures as two PNGs (no pyplot: backend-independent)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            'matplotlib is not installed; pip install "skcpcae[plot]" for roc.png / pr.png.'
        ) from None
    from ..plotting import plot_roc_pr

    fig_roc = Figure(figsize=(5, 4.5), layout="constrained")
    fig_pr = Figure(figsize=(5, 4.5), layout="constrained")
    plot_roc_pr(y, s, ax=(fig_roc.subplots(), fig_pr.subplots()), threshold=threshold)
    for fig, path in ((fig_roc, roc_path), (fig_pr, pr_path)):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        _write_atomic(path, buf.getvalue())
    return [roc_path, pr_path]
