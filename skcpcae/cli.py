# SPDX-License-Identifier: BSD-3-Clause
"""The ``skcpcae`` command line: ``fit``, ``score``, ``evaluate``, ``info``, ``export``.

The benchmark harness and the ELPV demo are tooling, not part of the installed package:
``python benchmarks/run.py`` and ``make demo`` (``python benchmarks/run.py --demo``) in a
checkout; ``skcpcae evaluate`` measures a fitted model on the user's own labelled folders.

Exit codes: 0 success; 1 unexpected error; 2 bad usage or bad input (unreadable or empty
folder, bad ``--set``, a file that is not a model, an output that exists without ``--force``).
Errors are one line on stderr; ``--debug`` shows the traceback instead.

Heavy modules (torch, the pipeline stages, matplotlib) are imported inside the commands, so
``skcpcae --help`` answers at once.
"""

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from ._cli import _help
from ._cli._errors import _STATE, CLIError, _echo, _errors, _OneLineUsageErrors
from ._cli._evaluate import _evaluation_data, _evaluation_report
from ._cli._files import _check_new_file, _prepare_dir, _write_atomic
from ._cli._fit import _fit_and_record, _fit_images, _make_pipeline
from ._cli._inputs import _expand_inputs
from ._cli._maps import _heatmap_score_batch, _save_curves
from ._cli._models import _claim_model_file, _load_model, _move_operating_point, _save_model
from ._cli._parsing import (
    MAX_SIGMA,
    _check_number,
    _parse_memory_limit,
    _parse_set,
    _parse_size,
    _read_config,
)
from ._cli._score import (
    _check_cluster_options,
    _dask_client,
    _map_outputs,
    _prepare_run,
    _results_path,
    _score_all,
    _score_exported,
)
from ._steps import fitted_layout, reads_files, set_verbose

__all__ = ["app", "main"]

def _flag(*param_decls, **kwargs):
    """A boolean option: ``Annotated[bool, typer.Option(...)]``."""
    return Annotated[bool, typer.Option(*param_decls, **kwargs)]


def _option(kind, *param_decls, **kwargs):
    """An option of type ``kind``: ``Annotated[kind, typer.Option(...)]``."""
    return Annotated[kind, typer.Option(*param_decls, **kwargs)]


# Options that several commands share, declared once.
TrustOption = Annotated[
    list[str],
    typer.Option("--trust", metavar="TYPE",
                 help="A type to trust in a .skops model file (repeatable)."),
]
AllowPickleOption = Annotated[
    bool, typer.Option("--allow-pickle",
                       help="Read a .joblib (pickle) model file: loading it runs code "
                       "chosen by whoever wrote it; only for files you trust.")
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.")]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Also read sub-folders.")]
MemoryLimitOption = Annotated[
    str, typer.Option("--memory-limit", metavar="SIZE",
                      help="Memory the run may use, e.g. 8G (default: what the system "
                      "has available); the run is refused before loading images when "
                      "the estimate exceeds it. 'off' skips the check.")
]
MaxPixelsOption = _option(
    int, "--max-pixels", min=1, metavar="N",
    help="Largest image accepted, in pixels (height x width; default 100 million), checked "
    "from the file header before decoding.",
)
ModelArgument = Annotated[Path, typer.Argument(help="Model file written by `skcpcae fit`.",
                                               metavar="MODEL")]

#: ``skcpcae fit``'s preset when neither --preset nor a config file names one.
DEFAULT_PRESET = "best"
#: Model file written by ``skcpcae fit`` when ``-o`` is not given.
DEFAULT_MODEL = "model.skops"
MODEL_SUFFIXES = (".joblib", ".skops")

app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="skcpcae",
    help="Visual anomaly detection for parts: fit on images of good parts, score new "
    "images, evaluate on labelled folders (Saeedi & Giusti 2023).",
    epilog=_help.MAIN,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------------------- plumbing


def _version_callback(value: bool):
    if value:
        from ._version import __version__

        typer.echo(f"skcpcae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: _flag("--debug", help="Show tracebacks (for every command).") = False,
    version: _option(bool, "--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit.") = False,
):
    _STATE["debug"] = debug


# ---------------------------------------------------------------------------- fit

@app.command(epilog=_help.FIT)
def fit(
    good: Annotated[
        list[Path],
        typer.Argument(help="Folder(s) or image files of GOOD parts only.",
                       metavar="GOOD_DIR...", show_default=False),
    ] = None,
    output: _option(Path, "-o", "--output", metavar="FILE",
                          help="Model file to write (.joblib or .skops).") = Path(DEFAULT_MODEL),
    preset: _option(str, "--preset", metavar="NAME", help=_help.PRESET_OPTION) = None,
    config: _option(Path, "--config", metavar="FILE",
                    help="TOML (or YAML) file with the preset and [params] step__param "
                    "overrides; --preset and --set win over it. Stored in the model "
                    "(`skcpcae info`).") = None,
    set_: _option(list[str], "--set", metavar="STEP__PARAM=VALUE",
                  help="Override a pipeline parameter (repeatable).") = None,
    size: _option(str, "--size", metavar="HxW",
                  help="Resize every image to HEIGHTxWIDTH. Default: the images' own size "
                  "(images of different sizes are refused, with the sizes listed).") = None,
    keep_aspect: _flag("--keep-aspect",
                       help="Keep aspect ratios: pad images of different sizes to the "
                       "largest height and width (with --size: scale each to fit inside "
                       "HxW, then pad), with black.") = False,
    max_pixels: MaxPixelsOption = None,
    color: _option(str, "--color", metavar="MODE", help="auto, gray or rgb.") = "auto",
    recursive: RecursiveOption = False,
    list_params: _flag("--list-params", help="Print the preset's parameters and exit.") = False,
    force: _flag("--force", "-f", help="Overwrite an existing model file.") = False,
    quiet: _flag("--quiet", "-q", help="No progress bars or summary.") = False,
    memory_limit: MemoryLimitOption = None,
    debug: DebugOption = False,
):
    """Fit an anomaly detector on images of good parts and save it."""
    with _errors(debug), contextlib.ExitStack() as claims:
        from ._pipelines import PRESETS

        fit_config = _read_config(config)
        if preset is None:
            # the preset ranked first by benchmarks/run.py on ELPV (README, "Which preset")
            preset = (fit_config or {}).get("preset") or DEFAULT_PRESET
        if preset not in PRESETS:
            raise CLIError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        params = {**(fit_config or {}).get("params", {}), **_parse_set(set_)}
        if not list_params:
            if not good:
                raise CLIError("Give at least one folder (or image file) of good parts.")
            output = Path(output)
            if output.suffix.lower() not in MODEL_SUFFIXES:
                raise CLIError(
                    f"The model file must end in .joblib or .skops; got {str(output)!r}."
                )
            _check_new_file(output, force)
            if not output.parent.is_dir():
                raise CLIError(f"The folder of {str(output)!r} does not exist.")
            if color not in ("auto", "gray", "rgb"):
                raise CLIError(f"--color must be auto, gray or rgb; got {color!r}.")
            size_hw = _parse_size(size)
            limit = _parse_memory_limit(memory_limit)
            paths = _expand_inputs(good, recursive=recursive, role="good-image")
        pipe = _make_pipeline(preset, params)
        if list_params:
            for key, value in sorted(pipe.get_params(deep=True).items()):
                if "__" in key and not hasattr(value, "get_params"):
                    typer.echo(f"{key}={value!r}")
            return
        claims.enter_context(_claim_model_file(output))  # a second fit onto it: exit 2
        X, size_hw, sizes = _fit_images(pipe, preset, paths, size_hw=size_hw, color=color,
                                        keep_aspect=keep_aspect, max_pixels=max_pixels,
                                        limit=limit, quiet=quiet)
        set_verbose(pipe, 0 if quiet else 1)
        _echo(f"Fitting preset {preset!r} on {len(X)} images of {size_hw[0]}x{size_hw[1]} "
              "pixels...", quiet)
        _fit_and_record(pipe, X, preset=preset, params=params, config=fit_config,
                        paths=paths, source_sizes=sizes)

        _save_model(pipe, output, force)
        claims.close()
        from .inspection import decision_threshold

        t = decision_threshold(pipe)
        _echo(f"Saved {str(output)!r}" + (f" (threshold on the anomaly score: {t:.6g})"
                                          if t is not None else "") + ".", quiet)


# ---------------------------------------------------------------------------- score

@app.command(epilog=_help.SCORE)
def score(
    model: ModelArgument,
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Folder(s) and/or image files to score.", metavar="DIR_OR_FILES...",
                       show_default=False),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Output folder.")] = Path(
        "results"
    ),
    heatmaps: _flag("--heatmaps", help="Also write one overlay PNG per image.") = False,
    sigma: _option(float, "--sigma", help="Gaussian smoothing of the maps, in pixels "
                          "(default: image size / 64, at least 1; 0 = none).") = None,
    vmax: _option(float, "--vmax", help="Map value shown as the hottest colour, the same "
                         "for every image of the run (default: each image's own range).") = None,
    locations: _flag("--locations", help="Compute the anomaly maps (also without "
                     "--heatmaps) and write where the defect is: location columns in "
                     "the scores file and one JSON line per image in locations.jsonl.") = False,
    map_threshold: _option(float, "--map-threshold", metavar="T",
                                  help="Map value above which a pixel is defective, in the map's "
                                  "units (default: the model's threshold in map units when it "
                                  "is known, as for the best preset; else none).") = None,
    save_maps: _option(str, "--save-maps", metavar="npy|tiff",
                            help="Also save each raw anomaly map (float32) in maps/.") = None,
    save_masks: _flag("--save-masks", help="Also save each binary defect mask (map above "
                      "the map threshold) as maps/<name>_mask.png.") = False,
    alpha: _option(float, "--alpha", metavar="A",
                          help="Move the operating point without refitting: the expected "
                          "false-alarm rate on good parts, in (0, 1), read off the "
                          "model's stored KDE (default: the model's own).") = None,
    threshold: _option(float, "--threshold", metavar="T",
                              help="A fixed threshold on the anomaly score instead of the "
                              "model's (not with --alpha); the model file is not changed.") = None,
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    batch_size: _option(int, "--batch-size", min=1, help="Images read and scored at a time.") = 32,
    recursive: RecursiveOption = False,
    force: _flag("--force", "-f", help="Overwrite existing result files.") = False,
    resume: _flag("--resume", help="Continue an interrupted run into the same -o: "
                  "score only the images not in its scores file yet.") = False,
    on_error: _option(str, "--on-error", metavar="skip|fail",
                           help="An unreadable image: 'skip' writes a row with its error and "
                           "goes on; 'fail' stops the run (rows written so far are kept)."
                           ) = "skip",
    output_format: _option(str, "--format", metavar="csv|parquet",
                                help="scores.csv, or scores.parquet (a folder of one Parquet file "
                                "per batch; needs pyarrow).") = "csv",
    max_pixels: MaxPixelsOption = None,
    scheduler: _option(str, "--scheduler", metavar="tcp://HOST:PORT",
                            help="Score on this Dask cluster (needs the dask extra): batches "
                            "are tasks, each worker loads the model file once and reads the "
                            "images, which it must see at the same paths.") = None,
    workers: _option(int, "--workers", min=1, metavar="N",
                          help="Score on a local Dask cluster of N worker processes (one "
                          "thread each; needs the dask extra).") = None,
    quiet: _flag("--quiet", "-q", help="No progress bar or summary.") = False,
    memory_limit: MemoryLimitOption = None,
    debug: DebugOption = False,
):
    """Score images with a fitted model: a CSV of anomaly scores and ok/defect decisions."""
    if Path(model).suffix.lower() == ".onnx":  # exported model: the light runtime, no torch
        return _score_exported(model, inputs, output, batch_size=batch_size,
                               recursive=recursive, force=force, quiet=quiet, debug=debug)
    with _errors(debug):
        _check_number("--sigma", sigma, low=0, high=MAX_SIGMA)
        _check_number("--vmax", vmax, low=0, low_open=True)
        limit = _parse_memory_limit(memory_limit)
        if on_error not in ("skip", "fail"):
            raise CLIError(f"--on-error must be skip or fail; got {on_error!r}.")
        if output_format not in ("csv", "parquet"):
            raise CLIError(f"--format must be csv or parquet; got {output_format!r}.")
        if resume and force:
            raise CLIError("Give --resume (continue a run) or --force (start afresh), not both.")
        paths = _expand_inputs(inputs, recursive=recursive, role="input")
        out_dir, csv_path = _results_path(output, output_format, force=force, resume=resume)
        _check_number("--alpha", alpha, low=0, high=1, low_open=True)
        _check_number("--threshold", threshold)
        if alpha is not None and threshold is not None:
            raise CLIError("Give --alpha or --threshold, not both: a threshold overrides alpha.")
        pipe = _load_model(model, trust, allow_pickle)
        if alpha is not None or threshold is not None:
            _move_operating_point(pipe, alpha, threshold)
        source = None
        names = []
        if save_maps is not None and save_maps not in ("npy", "tiff"):
            raise CLIError(f"--save-maps must be npy or tiff; got {save_maps!r}.")
        _check_number("--map-threshold", map_threshold)
        want_maps = heatmaps or locations or save_maps is not None or save_masks
        _check_cluster_options(scheduler, workers, want_maps)
        if want_maps:
            source, names = _map_outputs(pipe, paths, out_dir, force=force, resume=resume)
        if vmax is not None and not vmax > 0:
            raise CLIError(f"--vmax must be positive; got {vmax}.")
        _prepare_run(pipe, out_dir, batch_size, limit)
        heat_dir = out_dir / "heatmaps" if heatmaps else None
        score_batch = None  # score_files' own: no maps
        if want_maps:
            score_batch = _heatmap_score_batch(
                source, dict(zip(paths, names, strict=False)), heat_dir, sigma=sigma,
                vmax=vmax, out_dir=out_dir, map_threshold=map_threshold, save_maps=save_maps,
                save_masks=save_masks)
        with _dask_client(scheduler, workers) as client:
            # on a cluster the workers load the model file itself, unless this run moved
            # its operating point (then the moved model is sent to each worker once)
            moved_here = alpha is not None or threshold is not None
            summary = _score_all(
                pipe if client is None or moved_here else model, paths, csv_path, out_dir,
                score_batch, batch_size=batch_size, resume=resume, force=force,
                on_error=on_error, quiet=quiet, max_pixels=max_pixels, client=client,
                trusted=trust, allow_pickle=allow_pickle)
        moved = (f", --alpha {alpha:g}" if alpha is not None else
                 f", --threshold {threshold:g}" if threshold is not None else "")
        threshold = summary.threshold
        if summary.n_scored == 0 and summary.n_errors:
            raise CLIError(
                f"None of the {summary.n_errors} image(s) could be scored; the errors are in "
                f"{str(csv_path)!r}."
            )
        done = summary.n_scored + summary.n_errors
        _echo(f"Scored {summary.n_scored} image(s): {summary.n_defect} defect, "
              f"{summary.n_scored - summary.n_defect} ok"
              + (f" (threshold {threshold:.6g}{moved})" if threshold is not None else "")
              + (f"; {summary.n_errors} could not be read (see the error column)"
                 if summary.n_errors else "")
              + (f"; {summary.n_skipped} already in the output (--resume)"
                 if summary.n_skipped else "")
              + f". Wrote {str(csv_path)!r}"
              + (f" and {done - summary.n_errors} heatmap(s) in {str(heat_dir)!r}"
                 if heatmaps else "") + ".", quiet)


# ---------------------------------------------------------------------------- evaluate

@app.command(epilog=_help.EVALUATE)
def evaluate(
    model: ModelArgument,
    good: Annotated[
        list[Path], typer.Option("--good", metavar="DIR", help="Folder of good test images (repeatable).")
    ] = None,
    defect: Annotated[
        list[Path],
        typer.Option("--defect", metavar="DIR", help="Folder of defective test images (repeatable)."),
    ] = None,
    mvtec: _option(Path, "--mvtec", metavar="ROOT",
                   help="Root of a dataset in the MVTec AD layout.") = None,
    category: _option(str, "--category", metavar="NAME",
                      help="MVTec AD category (with --mvtec).") = None,
    masks: _option(Path, "--masks", metavar="DIR",
                         help="Folder of defect masks for --defect images (<name>_mask.png "
                         "or <name>.png, nonzero = defect): adds pixel AUROC and AUPRO.") = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Report folder.")] = Path(
        "report"
    ),
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    force: _flag("--force", "-f", help="Overwrite existing report files.") = False,
    quiet: _flag("--quiet", "-q", help="No progress bars.") = False,
    debug: DebugOption = False,
):
    """Evaluate a fitted model on labelled images: AUROC, AP, confusion at the threshold."""
    with _errors(debug):
        use_folders = bool(good or defect)
        if use_folders == (mvtec is not None):
            raise CLIError(
                "Give either --good DIR and --defect DIR (repeatable), or --mvtec ROOT "
                "--category NAME."
            )
        if use_folders and not (good and defect):
            raise CLIError("Give both --good and --defect folders (AUROC needs both classes).")
        if mvtec is not None and not category:
            raise CLIError("--mvtec needs --category NAME (e.g. --category bottle).")
        if masks is not None and not use_folders:
            raise CLIError("--masks goes with --good/--defect folders (the MVTec AD layout "
                           "has its masks in ground_truth/).")
        if masks is not None and not Path(masks).is_dir():
            raise CLIError(f"No such masks folder: {str(masks)!r}.")
        out_dir = Path(output)
        files = {k: out_dir / f"{k}.{ext}" for k, ext in
                 (("metrics", "json"), ("roc", "png"), ("pr", "png"))}
        for path in files.values():
            _check_new_file(path, force)
        pipe = _load_model(model, trust, allow_pickle)
        size_hw, color = fitted_layout(pipe)
        verbose = 0 if quiet else 1
        X, y, masks_test, data = _evaluation_data(
            use_folders, good, defect, masks, mvtec, category, size_hw=size_hw, color=color,
            reads_files=reads_files(pipe), verbose=verbose)
        set_verbose(pipe, 0)
        from .inspection import map_source

        if masks_test is not None and map_source(pipe, "model") is None:
            typer.echo("warning: the model makes no anomaly map; the pixel metrics use "
                       "occlusion maps (64 extra scorings per image: slow).", err=True)
        report, s, threshold = _evaluation_report(pipe, X, y, masks_test, model, data)

        typer.echo(f"{report['n_samples']} images ({report['n_anomalous']} defective)")
        typer.echo(f"AUROC              {report['auroc']:.4f}")
        typer.echo(f"average precision  {report['average_precision']:.4f}")
        if "aupro" in report:
            typer.echo(f"pixel AUROC        {report['pixel_auroc']:.4f}")
            typer.echo(f"AUPRO (FPR <= 0.3) {report['aupro']:.4f}")
        if "tp" in report:
            t = f"{threshold:.6g}" if threshold is not None else "the model's"
            typer.echo(
                f"at threshold {t}: {report['tp']} defects found, {report['fn']} missed, "
                f"{report['fp']} false alarms, {report['tn']} good passed "
                f"(recall {report['recall']:.3f}, false-alarm rate "
                f"{report['false_alarm_rate']:.3f}, precision {report['precision']:.3f})"
            )

        _prepare_dir(out_dir)
        _write_atomic(files["metrics"], json.dumps(report, indent=2) + "\n")
        written = [files["metrics"]]
        try:
            written += _save_curves(y, s, files["roc"], files["pr"], threshold=threshold)
        except ImportError as exc:
            typer.echo(f"warning: no plots: {exc}", err=True)
        typer.echo("Wrote " + ", ".join(repr(str(p)) for p in written) + ".")


# ---------------------------------------------------------------------------- info

@app.command(epilog=_help.INFO)
def info(
    model: Annotated[Path, typer.Argument(help="Model file written by `skcpcae fit`.",
                                          metavar="MODEL", show_default=False)],
    as_json: _flag("--json", help="Print the description as one JSON object.") = False,
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    debug: DebugOption = False,
):
    """Show what a model file holds: pipeline, threshold, training data, versions."""
    with _errors(debug):
        from ._fit_record import describe_model, format_model_description

        pipe = _load_model(model, trusted=trust, allow_pickle=allow_pickle)
        from .inspection import decision_threshold

        desc = describe_model(pipe, path=model, threshold=decision_threshold(pipe))
        if as_json:
            typer.echo(json.dumps(desc, indent=2, default=str))
        else:
            for line in format_model_description(desc):
                typer.echo(line)


@app.command("export")
def export_model(
    model: ModelArgument,
    output: _option(Path, "-o", "--output", metavar="FILE.onnx",
                    help="The ONNX file to write.") = Path("model.onnx"),
    sample: _option(Path, "--sample", metavar="DIR", help="Folder (or image) of images for "
                    "the parity check, e.g. some training images.") = None,
    rtol: _option(float, "--rtol", help="Largest accepted relative score difference.") = 1e-4,
    input_dtype: _option(str, "--input-dtype", metavar="float32|uint8",
                         help="Input of the graph.") = "float32",
    opset: _option(int, "--opset", help="ONNX opset.") = 17,
    force: _flag("--force", "-f", help="Overwrite the output.") = False,
    trust: TrustOption = None, allow_pickle: AllowPickleOption = False,
    debug: DebugOption = False,
):
    """Export a fitted model to ONNX, checked to score the --sample images as the model does
    (exit 2 without writing when it does not)."""
    with _errors(debug):
        _check_new_file(output, force)
        if sample is None:
            raise CLIError("--sample DIR is required: the export is checked on those images.")
        pipe = _load_model(model, trust, allow_pickle)
        from .export._cli import export_pipeline

        export_pipeline(pipe, output, _expand_inputs([sample], role="sample"), rtol=rtol,
                        input_dtype=input_dtype, opset=opset, error=CLIError,
                        layout=fitted_layout(pipe))


def main(argv=None):
    """Entry point of the ``skcpcae`` console script."""
    return app(args=argv, prog_name="skcpcae")


if __name__ == "__main__":  # pragma: no cover
    main()
