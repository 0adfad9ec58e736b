"""Decompression bombs: a 30000x30000 PNG is refused by name, at once, in little memory.

Two valid PNG files are written to a temporary folder by a streaming writer (``zlib``, one
row at a time, so creating them needs a few kilobytes of memory, not the 0.9 / 1.8 GB their
pixels would take):

* ``bomb8.png``: 30000 x 30000 8-bit gray, every pixel 0 (under 1 MB on disk; 900 MB decoded);
* ``bomb16.png``: 30000 x 30000 16-bit gray, every pixel 0 (1.8 GB decoded).

Each is then fed, in a fresh child process, to

* ``skcpcae fit FOLDER -o model.skops`` (the folder holds four small good images and the bomb),
* ``skcpcae score model.skops BOMB -o results --on-error fail`` (a tiny k-NN model; the
  default ``--on-error skip`` writes the refusal into the error column of ``scores.csv``),
* the Python loader, ``skcpcae.datasets.load_images(BOMB)``.

For each run it reports the wall time from start to exit (Python start-up and imports
included; the fastest of ``--repeat`` runs), the exit code, the error line (which must name
the file) and the peak resident memory of that child (``ru_maxrss`` from ``os.wait4``, i.e.
``getrusage`` of that one child). A control run of each command refuses a 32x32 file with
``--max-pixels 1000`` (the same code path); the difference is what the bomb's size costs.
Must show: refused by name, the bomb costing under a second, peak memory under 1.5 GB.

``--decode`` also runs ``cv2.imdecode`` on each bomb in a child, what a loader that decodes
first would do (0.9 and 1.8 GB); it is off by default.

Usage::

    python benchmarks/bomb.py            # print the table (about 2 min on 2 cores)
    python benchmarks/bomb.py --write    # also update docs/benchmarks.md (section "bomb")
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE = 30000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def write_png_bomb(path, height=SIDE, width=SIDE, bit_depth=8):
    """A valid gray PNG of ``height x width`` zero pixels, written one row at a time."""
    row = b"\0" * (1 + width * bit_depth // 8)  # filter byte + the row's samples
    comp = zlib.compressobj(9)
    with open(path, "wb") as fh:
        fh.write(PNG_SIGNATURE)
        fh.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)))
        pending = []
        size = 0
        for _ in range(height):
            data = comp.compress(row)
            if data:
                pending.append(data)
                size += len(data)
            if size > 1 << 20:  # IDAT chunks of about 1 MiB
                fh.write(_chunk(b"IDAT", b"".join(pending)))
                pending, size = [], 0
        pending.append(comp.flush())
        fh.write(_chunk(b"IDAT", b"".join(pending)))
        fh.write(_chunk(b"IEND", b""))
    return Path(path)


def _child(cmd, cwd, repeat=1):
    """Run ``cmd``; ``(seconds, exit code, stderr, peak RSS in MiB)`` of that one process
    (with ``repeat`` > 1: the fastest of that many runs, against a busy machine's noise)."""
    if repeat > 1:
        return min((_child(cmd, cwd) for _ in range(repeat)), key=lambda r: r[0])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        text = err.read().decode(errors="replace")
    return seconds, proc.returncode, text, usage.ru_maxrss / 1024  # Linux: KiB


def _error_line(text):
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("Error:", "ValueError:"))]
    return (errors or lines or [""])[-1]


def _tiny_model(tmp):
    """Four 32x32 good images and a k-NN model on their pixels (fitted in milliseconds)."""

    from skcpcae import persistence
    from skcpcae.datasets import make_parts, save_image
    from skcpcae.outlier import KNNAnomalyScorer

    good = tmp / "good"
    good.mkdir()
    X = make_parts(4, size=(32, 32), random_state=0)[0]
    for i, img in enumerate(X):
        save_image(good / f"good_{i}.png", img)
    model = persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(X.reshape(len(X), -1)),
                             tmp / "knn.skops")
    return good, model


def _commands(bits, bomb, folder, model, tmp, extra=()):
    py = sys.executable
    return {
        "skcpcae fit": [py, "-m", "skcpcae.cli", "fit", str(folder), "-o",
                        str(tmp / f"m{bits}.skops"), "--quiet", *extra],
        "skcpcae score": [py, "-m", "skcpcae.cli", "score", str(model), str(bomb), "-o",
                          str(tmp / f"results{bits}"), "--on-error", "fail", "--quiet",
                          *extra],
        "load_images": [py, "-c", "import sys; from skcpcae.datasets import load_images; "
                        "load_images(sys.argv[1], max_pixels=int(sys.argv[2]))", str(bomb),
                        extra[-1] if extra else "100000000"],
    }


def run(decode=False, verbose=True, repeat=2):
    import resource

    tmp = Path(tempfile.mkdtemp(prefix="skcpcae-bomb-"))
    rows = []
    try:
        bombs = {}
        for bits in (8, 16):  # first, before this process imports numpy or skcpcae
            t0 = time.perf_counter()
            bombs[bits] = (write_png_bomb(tmp / f"bomb{bits}.png", bit_depth=bits),
                           time.perf_counter() - t0)
        writer_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if verbose:
            print(f"bombs written; peak memory of this process so far {writer_peak:.0f} MiB",
                  flush=True)
        good, model = _tiny_model(tmp)
        # the control: the same commands refusing a 32x32 file with a budget of 1000 pixels
        # (the same code path), to separate the bomb's own cost from start-up and imports
        small = next(good.iterdir())
        control = {what: _child(cmd, ROOT, repeat) for what, cmd in _commands(
            0, small, good, model, tmp, ("--max-pixels", "1000")).items()}
        if verbose:
            for what, (seconds, code, err, peak) in control.items():
                print(f"control {what:24s} exit {code:3d}  {seconds:5.2f} s, peak "
                      f"{peak:6.0f} MiB  {_error_line(err)[:100]}", flush=True)
        for bits, (bomb, made) in bombs.items():
            folder = tmp / f"fit{bits}"
            shutil.copytree(good, folder)
            shutil.copy(bomb, folder / bomb.name)
            runs = _commands(bits, bomb, folder, model, tmp)
            if decode:
                runs["cv2.imdecode (no check)"] = [
                    sys.executable, "-c", "import sys, cv2, numpy as np; "
                    "img = cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), "
                    "cv2.IMREAD_UNCHANGED); print(img.shape, img.dtype, file=sys.stderr)",
                    str(bomb)]
            for what, cmd in runs.items():
                seconds, code, err, peak = _child(cmd, ROOT, repeat)
                line = _error_line(err)
                base = control.get(what)
                row = dict(file=bomb.name, bits=bits, disk_mb=bomb.stat().st_size / 1e6,
                           decoded_mb=SIDE * SIDE * bits / 8 / 2**20, made_s=made,
                           writer_peak_mb=writer_peak, run=what, seconds=seconds, code=code,
                           line=line, peak_mb=peak, named=f"{bomb.name}'" in line,
                           extra_s=None if base is None else seconds - base[0],
                           extra_mb=None if base is None else peak - base[3])
                rows.append(row)
                if verbose:
                    extra = ("" if base is None else
                             f" ({row['extra_s']:+.2f} s, {row['extra_mb']:+.0f} MiB vs control)")
                    print(f"{bomb.name} {what:24s} exit {code:3d}  {seconds:5.2f} s, peak "
                          f"{peak:6.0f} MiB{extra}  {line[:120]}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, control


def table(rows, control):
    from skcpcae.utils._report import machine_description

    made = {r["file"]: r for r in rows}
    lines = [
        "## Decompression bombs",
        "",
        f"`python benchmarks/bomb.py` on {machine_description()}. Two valid 30000x30000 gray "
        "PNGs of zero pixels, written by a streaming zlib writer (one row at a time; the "
        f"writing process peaked at {rows[0]['writer_peak_mb']:.0f} MiB): "
        + ", ".join(f"`{f}` {r['disk_mb']:.2f} MB on disk, {r['decoded_mb']:.0f} MiB decoded, "
                    f"written in {r['made_s']:.1f} s" for f, r in made.items())
        + ". Each run is a fresh child process; `peak` is its peak resident memory "
        "(`ru_maxrss` of that child, from `os.wait4`), `time` its wall time from start to "
        "exit (the fastest of `--repeat` runs), Python start-up and imports included. `fit` "
        "reads a folder of four 32x32 images and the bomb; `score` scores the bomb with a tiny k-NN model and `--on-error fail` "
        "(the default, skip, writes the same refusal into the `error` column of `scores.csv` "
        "and goes on); `load_images` is the Python loader. The control is the same command "
        "refusing a 32x32 file with a budget of 1000 pixels (`--max-pixels 1000`), the same "
        "code path: `bomb's cost` is the difference, what the bomb's size adds.",
        "",
        "| file | run | exit | time (s) | peak (MiB) | bomb's cost: time (s), memory (MiB) | "
        "names the file | error line |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        line = re.sub(r"'[^']*/", "'…/", r["line"]).replace("|", "\\|")
        cost = ("(decodes)" if r["extra_s"] is None
                else f"{r['extra_s']:+.2f} s, {r['extra_mb']:+.0f} MiB")
        lines.append(f"| `{r['file']}` | {r['run']} | {r['code']} | {r['seconds']:.2f} | "
                     f"{r['peak_mb']:.0f} | {cost} | {'yes' if r['named'] else 'no'} | "
                     f"{line} |")
    lines += ["", "Control runs: " + "; ".join(
        f"{what} {seconds:.2f} s, {peak:.0f} MiB" for what, (seconds, _, _, peak)
        in control.items()) + "."]
    refused = [r for r in rows if r["extra_s"] is not None]
    ok = all(r["named"] and r["code"] != 0 and r["extra_s"] < 1 and r["peak_mb"] < 1536
             for r in refused)
    slowest = max(refused, key=lambda r: r["seconds"])
    lines += ["", "Must show (refused by name in under a second, peak memory under 1.5 GB): "
              f"{'met' if ok else 'NOT met'}. Every run refuses the bomb by name with a "
              f"non-zero exit; the bomb adds at most "
              f"{max(r['extra_s'] for r in refused):.2f} s and "
              f"{max(r['extra_mb'] for r in refused):.0f} MiB to its control; the largest peak "
              f"is {max(r['peak_mb'] for r in refused):.0f} MiB (most of it importing torch "
              f"and scikit-learn). Start to exit, the slowest run ({slowest['run']}) takes "
              f"{slowest['seconds']:.2f} s, nearly all Python start-up and imports: the "
              "Python loader refuses in "
              f"{max(r['seconds'] for r in refused if r['run'] == 'load_images'):.2f} s "
              "start to exit."]
    return "\n".join(lines), ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--decode", action="store_true",
                        help="also decode each bomb with cv2.imdecode (0.9 and 1.8 GB)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each command; the fastest is reported")
    args = parser.parse_args(argv)
    rows, control = run(decode=args.decode, repeat=args.repeat)
    text, ok = table(rows, control)
    print()
    print(text)
    if args.write:
        from skcpcae.utils._report import update_section

        update_section(ROOT / "docs" / "benchmarks.md", "bomb", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
