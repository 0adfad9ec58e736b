"""Ideas on top of the `best` preset, measured on validation data only (issue #15, item 2).

    python benchmarks/select_patch_ideas.py [--cells mono poly] [--threads 1] [--write]
    python benchmarks/select_patch_ideas.py --phase position [--splits 6] [--write]
    python benchmarks/select_patch_ideas.py --phase fusion [--splits 6] [--write]

Same selection data as benchmarks/select_patch.py (per ELPV cell type: 3/4 of the protocol's
training normals fit, 1/4 are validation normals, the uncertain 1/3, 2/3 cells are validation
anomalies; the test split is never used). The reference row is the `best` preset's scorer
(EfficientNet-Lite0 stages 3 + 4, 3x3 local averaging, PatchKNNScorer with k=3, top_k=30).
Each idea changes one thing:

* ``local=5``, ``local=7``: a larger averaging neighbourhood; ``local=3+5+7``: the three
  image scores, each z-normalised by the leave-one-out scores of the fit cells, averaged;
* ``stages s3+s4 & s2+s3``: the reference and a stride-8 grid (stages 2 + 3), z-normalised
  and averaged;
* ``flips in memory (h)``, ``(h, v, hv)``: the fit cells' mirror images (flipped horizontally;
  and vertically, and both) added to the memory, so each place also knows what is normal at
  its mirror place; ``+ test-time flip``: the score of a cell and of its horizontal mirror
  image, averaged, against the memory with horizontal flips;
* ``retrieve M``: CPR-style, each cell is compared only with the M fit cells nearest to it
  by their mean patch feature, then patch by patch as usual;
* ``soft q``: SoftPatch-style denoising of the memory: at every place, the fit patches whose
  leave-one-out distance is in the top q of that place are dropped from the memory;
* ``fused global w``: the patch score and a global score (k-NN on the mean patch feature,
  k=3), z-normalised by their leave-one-out scores on the fit cells, as
  ``(1 - w) * patch + w * global``;
* ``lite1 alone``, ``lite0+lite1+lite2``: the combination below on EfficientNet-Lite1 / Lite2
  features, and the backbones' scores z-normalised and averaged (ensembles cost one backbone
  pass each at scoring time);
* combinations of the three that each gained on their own (``retrieve M + global w``,
  ``+ local=3+5+7``), scored by the library's own ``PatchKNNScorer(n_retrieve=M,
  global_weight=w)``, so the row of the chosen configuration is the preset's scorer itself.

``--phase position`` (section "Standardising patch distances per position") measures one more
idea, ``PatchKNNScorer(position_norm="zscore")``: each patch distance divided, after
subtracting the mean, by the standard deviation of the fit cells' leave-one-out distances at
its place. It is measured on the preset's scorer and on the plain scorer, over several
random fit / validation splits of the training normals (the first is the split of every
other table; the uncertain cells are the anomalies of every split), since a single split's
gains of a hundredth have not carried over to the test split before.

``--phase fusion`` (section "Fusing another view of the patches") measures, on the same
splits, the last idea of issue #15's list not measured above: the preset's score fused with a
per-position Gaussian (PaDiM's view of the same patch maps), and, beside it, with a
position-free memory of patches (PatchCore's view), whose test-split rows are level with the
preset on poly cells.

Backbone passes are run once per image set (stages 2, 3 and 4 together; the local averaging
and the stage sets are applied to the same maps, which gives exactly DeepPatchEmbedder's
output), so the script costs about three backbone passes over the fit cells and two over the
validation cells, per cell type.
"""

import argparse
import datetime
import sys
import time

import numpy as np
from _cache import DOCS
from select_preset import load_split

from skcpcae.embedding import DeepPatchEmbedder
from skcpcae.metrics import image_auroc
from skcpcae.outlier import PatchKNNScorer
from skcpcae.outlier._patch_knn import local_patch_distances
from skcpcae.utils._report import machine_description, update_section

K, TOP_K = 3, 30
#: what a dropped memory patch is replaced with: far from every real feature (they are O(1))
FAR = 1e3


def embed(images, local_sizes=(3,), batch_size=8, backbone="lite0"):
    """``{(stage set, local size): maps}`` of images, from one backbone pass.

    Stage sets: ``"s3+s4"`` (19 x 19 grid on a 300 x 300 cell) and, for local size 3 only,
    ``"s2+s3"`` (38 x 38).
    """
    import torch

    from skcpcae._components.patch_features import aggregate_patch_maps

    emb = DeepPatchEmbedder(f"tf_efficientnet_{backbone}", stages=(2, 3, 4), local_size=1,
                            batch_size=batch_size)
    emb.fit(images[:1])
    out = {}
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            s2, s3, s4 = emb._feature_maps(emb._prepare(images[start:start + batch_size]))
            parts = {("s3+s4", ls): aggregate_patch_maps([s3, s4], ls) for ls in local_sizes}
            if 3 in local_sizes:
                parts[("s2+s3", 3)] = aggregate_patch_maps([s2, s3], 3)
            for key, m in parts.items():
                out.setdefault(key, []).append(m.permute(0, 2, 3, 1).float().numpy())
    return {key: np.concatenate(v) for key, v in out.items()}


def _top(maps, k):
    """The mean of each map's ``k`` largest values."""
    return np.sort(maps.reshape(len(maps), -1), axis=1)[:, -k:].mean(axis=1)


def _image_score(patch):
    return _top(patch, TOP_K)


def _fit_score(F_fit, F_val, **params):
    """(leave-one-out anomaly scores of the fit maps, anomaly scores of the validation maps)."""
    sc = PatchKNNScorer(n_neighbors=K, top_k=TOP_K, **params).fit(F_fit)
    return -sc.negative_outlier_score_, -sc.score_samples(F_val)


def _z(loo, val):
    return (val - loo.mean()) / loo.std()


def _flip(images, how):
    return np.ascontiguousarray({"h": images[:, :, ::-1], "v": images[:, ::-1, :],
                                 "hv": images[:, ::-1, ::-1]}[how])


def _retrieve(F_fit, F_val, m):
    g_fit, g_val = F_fit.mean(axis=(1, 2)), F_val.mean(axis=(1, 2))
    d = ((g_val[:, None, :] - g_fit[None]) ** 2).sum(-1)
    scores = np.empty(len(F_val))
    for i, near in enumerate(np.argsort(d, axis=1)[:, :m]):
        patch = local_patch_distances(F_val[i:i + 1], F_fit[np.sort(near)], n_neighbors=K)
        scores[i] = _image_score(patch)[0]
    return scores


def _soft(F_fit, F_val, q):
    loo = local_patch_distances(F_fit, F_fit, n_neighbors=K, exclude=np.arange(len(F_fit)))
    cut = np.quantile(loo, 1 - q, axis=0)  # per place
    memory = F_fit.copy()
    memory[loo > cut[None]] = FAR
    return _image_score(local_patch_distances(F_val, memory, n_neighbors=K))


def study(cell):
    """``{candidate: validation AUROC}`` for one cell type."""
    s = load_split(cell, residuals=False)
    A = s.X_train[s.fit_idx]
    V = np.concatenate([s.X_train[s.val_idx], s.X_unc])
    y = np.r_[np.zeros(len(s.val_idx)), np.ones(len(s.X_unc))]
    t0 = time.perf_counter()
    E_fit, E_val = embed(A, (3, 5, 7)), embed(V, (3, 5, 7))
    ref_fit, ref_val = E_fit[("s3+s4", 3)], E_val[("s3+s4", 3)]
    print(f"{cell}: embedded {len(A)} + {len(V)} cells in {time.perf_counter() - t0:.0f} s",
          flush=True)
    res = {}

    def add(name, anomaly):
        res[name] = image_auroc(y, anomaly)
        print(f"{cell} {name}: {res[name]:.3f}", flush=True)

    loo, val = {}, {}
    for key in E_fit:
        loo[key], val[key] = _fit_score(E_fit[key], E_val[key])
    add("reference: s3+s4 local=3 k=3 top_k=30 (the best preset until 2026-12-07)",
        val[("s3+s4", 3)])
    add("local=5", val[("s3+s4", 5)])
    add("local=7", val[("s3+s4", 7)])
    add("local=3+5+7 (z-averaged)",
        np.mean([_z(loo[("s3+s4", ls)], val[("s3+s4", ls)]) for ls in (3, 5, 7)], axis=0))
    add("stages s3+s4 & s2+s3 (z-averaged)",
        np.mean([_z(loo[k], val[k]) for k in (("s3+s4", 3), ("s2+s3", 3))], axis=0))
    g_loo, g_val = _fit_score(ref_fit.mean(axis=(1, 2))[:, None, None],
                              ref_val.mean(axis=(1, 2))[:, None, None])
    for w in (0.25, 0.5):
        add(f"fused global w={w}", (1 - w) * _z(loo[("s3+s4", 3)], val[("s3+s4", 3)])
            + w * _z(g_loo, g_val))
    for m in (20, 50):
        add(f"retrieve M={m}", _retrieve(ref_fit, ref_val, m))
    for q in (0.05, 0.1):
        add(f"soft q={q}", _soft(ref_fit, ref_val, q))
    # combinations, scored by the library's PatchKNNScorer(n_retrieve, global_weight)
    for m, w in ((20, 0.25), (20, 0.5), (50, 0.25)):
        add(f"retrieve M={m} + fused global w={w}",
            _fit_score(ref_fit, ref_val, n_retrieve=m, global_weight=w)[1])
    r_loo, r_val = {}, {}
    for ls in (3, 5, 7):
        r_loo[ls], r_val[ls] = _fit_score(E_fit[("s3+s4", ls)], E_val[("s3+s4", ls)],
                                          n_retrieve=20)
    local_loo = np.mean([_z(r_loo[ls], r_loo[ls]) for ls in (3, 5, 7)], axis=0)
    local_val = np.mean([_z(r_loo[ls], r_val[ls]) for ls in (3, 5, 7)], axis=0)
    add("retrieve M=20 + local=3+5+7", local_val)
    add("retrieve M=20 + local=3+5+7 + fused global w=0.25",
        0.75 * _z(local_loo, local_val) + 0.25 * _z(g_loo, g_val))
    # backbone ensemble: each backbone's retrieve M=20 + global w=0.25 score, z-averaged
    b_loo, b_val = {"lite0": _fit_score(ref_fit, ref_val, n_retrieve=20, global_weight=0.25)}, {}
    b_loo["lite0"], b_val["lite0"] = b_loo["lite0"]
    for bb in ("lite1", "lite2"):
        key = ("s3+s4", 3)
        b_loo[bb], b_val[bb] = _fit_score(embed(A, backbone=bb)[key], embed(V, backbone=bb)[key],
                                          n_retrieve=20, global_weight=0.25)
        add(f"retrieve M=20 + fused global w=0.25, {bb} alone", b_val[bb])
    for combo in (("lite0", "lite1"), ("lite0", "lite2"), ("lite0", "lite1", "lite2")):
        add(f"retrieve M=20 + fused global w=0.25, {'+'.join(combo)} (z-averaged)",
            np.mean([_z(b_loo[bb], b_val[bb]) for bb in combo], axis=0))
    del E_fit, E_val
    flips = {how: embed(_flip(A, how))[("s3+s4", 3)] for how in ("h", "v", "hv")}
    mem_h = np.concatenate([ref_fit, flips["h"]])
    add("flips in memory (h)", _image_score(local_patch_distances(ref_val, mem_h, n_neighbors=K)))
    mem_all = np.concatenate([ref_fit, flips["h"], flips["v"], flips["hv"]])
    add("flips in memory (h, v, hv)",
        _image_score(local_patch_distances(ref_val, mem_all, n_neighbors=K)))
    val_h = embed(_flip(V, "h"))[("s3+s4", 3)]
    add("flips in memory (h) + test-time flip",
        (_image_score(local_patch_distances(ref_val, mem_h, n_neighbors=K))
         + _image_score(local_patch_distances(val_h, mem_h, n_neighbors=K))) / 2)
    return res


#: the `best` preset's scorer before position_norm, and the candidates of --phase position
PRESET = dict(n_neighbors=K, top_k=TOP_K, n_retrieve=20, global_weight=0.25)
POSITION_CANDIDATES = {
    "reference: the best preset's scorer (retrieve M=20 + fused global w=0.25)": PRESET,
    "+ position z-score": {**PRESET, "position_norm": "zscore"},
    "+ position z-score, top_k=10": {**PRESET, "position_norm": "zscore", "top_k": 10},
    "+ position z-score, global w=0.5": {**PRESET, "position_norm": "zscore",
                                          "global_weight": 0.5},
    "plain scorer (k=3, top_k=30)": dict(n_neighbors=K, top_k=TOP_K),
    "plain scorer + position z-score": dict(n_neighbors=K, top_k=TOP_K, position_norm="zscore"),
}


#: --phase fusion: the fraction of fit patches in the position-free memory, the channels of
#: the per-position Gaussian (PaDiM's 100 random ones), and the candidates (view, weight of
#: the view in the fused score; None: the view alone)
FREE_FRACTION, GAUSS_CHANNELS = 0.1, 100
FUSION_CANDIDATES = {
    "reference: the best preset's scorer (with position z-score)": ("preset", None),
    "+ position-free memory w=0.25": ("position-free", 0.25),
    "+ position-free memory w=0.5": ("position-free", 0.5),
    "+ per-position Gaussian w=0.25": ("per-position Gaussian", 0.25),
    "+ per-position Gaussian w=0.5": ("per-position Gaussian", 0.5),
    "position-free memory alone": ("position-free", None),
    "per-position Gaussian alone": ("per-position Gaussian", None),
}


def _n_changes(params):
    """How many settings of the preset's scorer ``params`` changes."""
    return sum(params.get(k, None) != PRESET.get(k, None) for k in {*params, *PRESET})


def _embedded_split(cell):
    """Patch maps (s3+s4, 3x3) of every training normal and of the uncertain cells, cached."""
    from _cache import cache_path

    s = load_split(cell, residuals=False)
    path = cache_path(f"ideas_position_{cell}", __file__, s.X_train, s.X_unc)
    if path.exists():
        d = np.load(path)
        return d["train"], d["unc"]
    train, unc = embed(s.X_train)[("s3+s4", 3)], embed(s.X_unc)[("s3+s4", 3)]
    np.savez(path, train=train, unc=unc)
    return train, unc


def _splits(train, unc, n_splits):
    """``(seed, fit maps, validation maps, labels)`` of each split; split 1 is the usual one."""
    for seed in range(1, n_splits + 1):
        perm = np.random.default_rng(seed).permutation(len(train))  # as load_split for seed 1
        n_fit = (3 * len(perm)) // 4
        V = np.concatenate([train[perm[n_fit:]], unc])
        y = np.r_[np.zeros(len(perm) - n_fit), np.ones(len(unc))]
        yield seed, train[perm[:n_fit]], V, y


def study_position(cell, n_splits):
    """``{candidate: [validation AUROC per split]}``; split 1 is the usual one."""
    train, unc = _embedded_split(cell)
    res = {}
    for seed, A, V, y in _splits(train, unc, n_splits):
        for name, params in POSITION_CANDIDATES.items():
            sc = PatchKNNScorer(**params).fit(A)
            res.setdefault(name, []).append(image_auroc(y, -sc.score_samples(V)))
        print(f"{cell} split {seed}: " + ", ".join(f"{v[-1]:.3f}" for v in res.values()),
              flush=True)
    return res


def _position_free(A, V, fraction, seed):
    """PatchCore's view: every patch against a memory of ``fraction`` of all fit patches, any
    place. ``(leave-one-out maps of the fit cells, maps of V)`` of nearest distances."""
    import torch

    from skcpcae._components.knn import knn_search

    d = A.shape[-1]
    flat = torch.from_numpy(np.ascontiguousarray(A.reshape(-1, d)))
    owner = torch.arange(len(A)).repeat_interleave(A.shape[1] * A.shape[2])
    keep = torch.from_numpy(np.random.default_rng(100 + seed).random(len(flat)) < fraction)
    bank, bank_owner = flat[keep], owner[keep]
    fit = knn_search(flat, bank, 1, query_groups=owner, bank_groups=bank_owner)[0]
    val = knn_search(torch.from_numpy(np.ascontiguousarray(V.reshape(-1, d))), bank, 1)[0]
    return fit.numpy().reshape(A.shape[:3]), val.numpy().reshape(V.shape[:3])


def _gaussian_maps(A, Q, channels, ridge=0.01):
    """PaDiM's view: the Mahalanobis distance of each patch of ``Q`` to a Gaussian fitted to
    the fit cells' patches at its place (``channels`` of the features, covariance + ridge)."""
    X = A[..., channels].reshape(len(A), -1, len(channels)).astype(np.float64)
    mu = X.mean(axis=0)
    Xc = X - mu
    cov = np.einsum("npi,npj->pij", Xc, Xc) / (len(A) - 1) + ridge * np.eye(len(channels))
    prec = np.linalg.inv(cov)
    q = Q[..., channels].reshape(len(Q), -1, len(channels)) - mu
    return np.sqrt(np.maximum(np.einsum("npi,pij,npj->np", q, prec, q), 0)).reshape(Q.shape[:3])


def _gaussian(A, V, n_channels, n_folds=5):
    """``(out-of-fold maps of the fit cells, maps of V)`` of :func:`_gaussian_maps`, on
    ``n_channels`` random channels (PaDiM's reduction)."""
    channels = np.sort(np.random.default_rng(0).permutation(A.shape[-1])[:n_channels])
    fit = np.empty(A.shape[:3])
    for fold in np.array_split(np.arange(len(A)), n_folds):
        rest = np.setdiff1d(np.arange(len(A)), fold)
        fit[fold] = _gaussian_maps(A[rest], A[fold], channels)
    return fit, _gaussian_maps(A, V, channels)


def study_fusion(cell, n_splits):
    """``{candidate: [validation AUROC per split]}`` of the preset's scorer fused with a
    position-free memory (PatchCore's view) or a per-position Gaussian (PaDiM's view)."""
    train, unc = _embedded_split(cell)
    res = {}
    for seed, A, V, y in _splits(train, unc, n_splits):
        sc = PatchKNNScorer(**PRESET, position_norm="zscore").fit(A)
        views = {"preset": (-sc.negative_outlier_score_, -sc.score_samples(V))}
        free = _position_free(A, V, FREE_FRACTION, seed)
        views["position-free"] = (_top(free[0], TOP_K), _top(free[1], TOP_K))
        gauss = _gaussian(A, V, GAUSS_CHANNELS)
        views["per-position Gaussian"] = (_top(gauss[0], 1), _top(gauss[1], 1))
        for name, (view, w) in FUSION_CANDIDATES.items():
            if w is None:
                score = views[view][1]
            else:
                score = (1 - w) * _z(*views["preset"]) + w * _z(*views[view])
            res.setdefault(name, []).append(image_auroc(y, score))
        print(f"{cell} split {seed}: " + ", ".join(f"{v[-1]:.3f}" for v in res.values()),
              flush=True)
    return res


def _split_table(results, names, cells):
    """Markdown lines of a several-split study, and ``{candidate: AUROC per split}`` (mean
    over cell types); the first name is the reference."""
    ref = names[0]
    per_split = {n: np.mean([results[c][n] for c in cells], axis=0) for n in names}
    lines = ["| candidate | " + " | ".join(f"{c} (mean of splits)" for c in cells)
             + " | mean | vs reference | splits won |", "|---" * (len(cells) + 4) + "|"]
    for n in names:
        row = " | ".join(f"{np.mean(results[c][n]):.3f}" for c in cells)
        diff = per_split[n] - per_split[ref]
        won = "" if n == ref else f"{int((diff > 0).sum())} of {len(diff)}"
        lines.append(f"| {n} | {row} | {per_split[n].mean():.3f} | {diff.mean():+.3f} | "
                     f"{won} |")
    return lines, per_split


_SPLITS_INTRO = ("{n} random fit / validation splits of the training normals (3/4 fit, 1/4 "
                 "validation normals; split 1 is the split of the tables above), the uncertain "
                 "1/3, 2/3 cells as the anomalies of every split; the test split is not used. ")
_COLUMNS = ("A cell is the mean validation AUROC over the splits; `vs reference` the mean over "
            "splits and cell types of the difference with the first row, `splits won` how many "
            "splits the row is ahead on (mean over cell types).")


def main_position(args, argv):
    results = {cell: study_position(cell, args.splits) for cell in args.cells}
    names = list(POSITION_CANDIDATES)
    ref = names[0]
    lines, per_split = _split_table(results, names, args.cells)
    plain = names.index("plain scorer (k=3, top_k=30)")
    top = max(names[:plain], key=lambda n: per_split[n].mean())
    # the one-standard-error rule: of the candidates within one standard error (over the
    # splits) of the first, the one that changes fewest of the preset's settings
    diff = per_split[top][None] - np.array([per_split[n] for n in names[:plain]])
    se = diff.std(axis=1, ddof=1) / np.sqrt(diff.shape[1])
    close = [n for n, d, e in zip(names[:plain], diff.mean(axis=1), se, strict=True) if d <= e]
    winner = min(close, key=lambda n: (_n_changes(POSITION_CANDIDATES[n]), names.index(n)))
    verdict = (f"First on validation: {top} ({(per_split[top] - per_split[ref]).mean():+.3f} "
               "mean AUROC over the reference). Chosen by the one-standard-error rule (of "
               "the candidates within one standard error, over the splits, of the first, "
               f"the one that changes fewest settings of the preset): {winner} "
               f"({(per_split[winner] - per_split[ref]).mean():+.3f}, ahead on "
               f"{int((per_split[winner] > per_split[ref]).sum())} of {args.splits} splits).")
    _publish(args, argv, "select-patch-position",
             "Standardising patch distances per position (validation data only)",
             _SPLITS_INTRO.format(n=args.splits) + "Each row is computed by `PatchKNNScorer` "
             "itself on the `best` preset's patch maps (Lite0 s3+s4, 3x3); `position z-score` "
             "is `position_norm=\"zscore\"`. " + _COLUMNS, "\n".join(lines), verdict)
    return results


def main_fusion(args, argv):
    results = {cell: study_fusion(cell, args.splits) for cell in args.cells}
    names = list(FUSION_CANDIDATES)
    lines, per_split = _split_table(results, names, args.cells)
    gains = {n: (per_split[n] - per_split[names[0]]) for n in names[1:]}
    top = max(gains, key=lambda n: gains[n].mean())
    verdict = (f"First of the candidates: {top} ({gains[top].mean():+.3f} mean AUROC over the "
               f"reference, ahead on {int((gains[top] > 0).sum())} of {args.splits} splits). "
               + ("" if gains[top].mean() > 0 else
                  "No fusion is ahead of the preset's scorer; the preset keeps its score."))
    _publish(args, argv, "select-patch-fusion",
             "Fusing another view of the patches (validation data only)",
             _SPLITS_INTRO.format(n=args.splits) + "The `best` preset's scorer (as it ships, "
             "with the per-position z-score) fused with one of two other views of the same "
             "patch maps (Lite0 s3+s4, 3x3): a *position-free memory* (PatchCore's view: each "
             f"patch against its nearest among {FREE_FRACTION:.0%} of all fit patches, taken "
             f"at random, at any place; image score = the mean of the {TOP_K} largest), or a "
             "*per-position Gaussian* (PaDiM's view: the Mahalanobis distance to a Gaussian "
             f"fitted at each place on {GAUSS_CHANNELS} random channels, covariance + 0.01 I; "
             "image score = the largest). Fused as `(1 - w) * preset + w * view`, each score "
             "z-normalised by its fit cells' scores (leave-one-out for the preset and the "
             "position-free memory, 5-fold out-of-fold for the Gaussian). " + _COLUMNS,
             "\n".join(lines), verdict)
    return results


def _publish(args, argv, section, title, intro, table, verdict):
    """Print a study's table and verdict; with ``--write``, put them in its docs section."""
    print(table)
    print(verdict)
    if args.write:
        cmd = "python benchmarks/select_patch_ideas.py " + " ".join(argv or sys.argv[1:])
        update_section(DOCS, section,
                       f"### {title}\n\nCommand: `{cmd.strip()}`  \n"
                       f"Date: {datetime.date.today()}  \nMachine: {machine_description()}"
                       f"\n\n{intro}\n\n{table}\n\n{verdict}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="+", default=["mono", "poly"], choices=["mono", "poly"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--phase", choices=["ideas", "position", "fusion"], default="ideas")
    p.add_argument("--splits", type=int, default=6,
                   help="fit / validation splits of --phase position / fusion (default: 6)")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}", flush=True)
    if args.phase == "position":
        return main_position(args, argv)
    if args.phase == "fusion":
        return main_fusion(args, argv)
    results = {cell: study(cell) for cell in args.cells}
    names = list(results[args.cells[0]])
    ref = names[0]
    mean = {n: float(np.mean([results[c][n] for c in args.cells])) for n in names}
    head = ("| rank | candidate | " + " | ".join(f"validation AUROC {c}" for c in args.cells)
            + " | mean | vs reference |")
    lines = [head, "|---" * (len(args.cells) + 4) + "|"]
    for i, n in enumerate(sorted(names, key=lambda n: -mean[n]), 1):
        cells = " | ".join(f"{results[c][n]:.3f}" for c in args.cells)
        lines.append(f"| {i} | {n} | {cells} | {mean[n]:.3f} | {mean[n] - mean[ref]:+.3f} |")
    winner = max(names, key=lambda n: mean[n])
    verdict = (f"Best on validation: {winner} ({mean[winner] - mean[ref]:+.3f} mean AUROC over "
               "the reference)." if winner != ref else
               "No idea beats the reference on validation; the `best` preset keeps its settings.")
    _publish(args, argv, "select-patch-ideas",
             "Ideas on top of the `best` preset (validation data only)",
             "Validation as in the tables above (3/4 of the training normals fit, 1/4 held "
             "out, against the uncertain 1/3, 2/3 cells; the test split is not used). Each "
             "candidate changes one thing in the `best` preset's scorer; the script's "
             "docstring says what each does.", "\n".join(lines), verdict)
    return results


if __name__ == "__main__":
    main()
