"""Every command in README.md and docs/ runs, on tiny data, as the docs write it.

What is collected: in README.md, docs/*.md and docs/user_guide/*.md, the lines of shell code
blocks (```` ```bash ````, ``sh``, ``shell``, ``console`` or unlabelled) that start with
``skcpcae `` or ``python ``; a trailing ``\\`` joins the next line, ``# ...`` comments are
dropped.

How each runs, explicitly:

* **Synopses** (a line with ``[``, ``|`` or ``...``, such as ``skcpcae fit GOOD_DIR...
  [--size HxW]``) are not run: every ``--option`` they name must be an option of that
  command (``skcpcae COMMAND --help``).
* **Commands** run verbatim, in-process (``typer.testing.CliRunner``), one code block at a
  time in a fresh working folder that holds the tiny images of ``TINY_DATA`` under every
  folder name the docs use. A block that scores or evaluates without fitting first gets a
  tiny fitted ``model.skops``. A ```` ```toml ```` block whose first line is ``# NAME.toml``
  is written to ``NAME.toml`` there first, so the documented configuration file is used.
* **Fast overrides**: each ``skcpcae fit`` (but ``--list-params``) gets ``FAST[preset]``
  appended, ``--set`` options that shrink the training (one epoch, no pretrained weights,
  few neighbours); later ``--set`` options win, so the documented values are still parsed
  and validated.
* ``python ...`` commands must be listed in ``PYTHON_COMMANDS`` with the arguments that make
  them tiny; an unlisted one fails the test, so a new documented command cannot go
  unchecked.

A documented command that fails (wrong option, wrong file name, wrong preset) fails here
with the page and line.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skcpcae import cli
from skcpcae.cli import DEFAULT_PRESET
from skcpcae.datasets import make_parts, save_image

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "docs" / "user_guide").glob("*.md"))]
SHELL = {"", "bash", "sh", "shell", "console"}

#: Folder names used by the docs → what they hold in the tiny working folder.
TINY_DATA = {
    "parts/good": "good", "cells/good": "good", "incoming": "good", "test/good": "good",
    "test/defect": "defect", "test/crack": "defect",
}

_CPCAE_FAST = ["cpcaeresidualmap__max_epochs=1", "cpcaeresidualmap__patch_size=16",
               "cpcaeresidualmap__batch_size=64", "deeppoolembedder__weights=None",
               "kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors=3",
               "kdethresholdclassifier__cv=3"]
#: ``--set`` overrides appended to every documented ``skcpcae fit``, by preset.
FAST = {
    "paper": _CPCAE_FAST,
    "aligned": _CPCAE_FAST,
    "best": ["deeppatchembedder__weights=None", "deeppatchembedder__batch_size=16",
             "kdethresholdclassifier__estimator__n_neighbors=1", "kdethresholdclassifier__cv=3"],
    "deep-feature": ["deeppoolembedder__weights=None", "kdethresholdclassifier__cv=3",
                     "kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors=3"],
    "union": ["featureunion__deeppoolembedder__weights=None",
              "featureunion__pipeline__deeppoolembedder__weights=None",
              "featureunion__pipeline__cpcaeresidualmap__max_epochs=1",
              "featureunion__pipeline__cpcaeresidualmap__patch_size=16",
              "featureunion__pipeline__cpcaeresidualmap__cv=2", "kdethresholdclassifier__cv=3",
              "kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors=3"],
}

#: Documented ``python ...`` commands → the tiny arguments to run them with. None yet.
PYTHON_COMMANDS = {}


def _blocks(page):
    """``[(lang, first line number, text)]`` of the fenced code blocks of a page."""
    text = page.read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"^ *```(\w*)[^\n]*\n(.*?)^ *```", text, re.S | re.M):
        out.append((match.group(1), text[:match.start()].count("\n") + 2, match.group(2)))
    return out


def _commands(body):
    """The ``skcpcae ``/``python `` lines of a shell block, continuations joined."""
    lines, joined = body.splitlines(), []
    while lines:
        line = lines.pop(0).strip()
        while line.endswith("\\") and lines:
            line = line[:-1] + " " + lines.pop(0).strip()
        line = re.sub(r"\s+#.*$", "", line.removeprefix("$ "))  # a trailing comment
        if line.startswith(("skcpcae ", "python ")):
            joined.append(line)
    return joined


def _config_files(page):
    """``{name: text}`` of the ```` ```toml ```` blocks that start with ``# NAME.toml``."""
    files = {}
    for lang, _, body in _blocks(page):
        first = body.splitlines()[0].strip() if body.strip() else ""
        match = re.fullmatch(r"#\s*(\S+\.(?:toml|ya?ml))", first)
        if lang in ("toml", "yaml") and match:
            files[match.group(1)] = body
    return files


def _collect():
    runs, synopses = [], []
    for page in PAGES:
        rel = page.relative_to(ROOT)
        for lang, line, body in _blocks(page):
            if lang not in SHELL:
                continue
            commands = _commands(body)
            syn = [c for c in commands if re.search(r"\[|\||\.\.\.", c)]
            synopses += [pytest.param(c, id=f"{rel}:{line}:{c.split()[1]}") for c in syn]
            run = [c for c in commands if c not in syn]
            if run:
                runs.append(pytest.param(page, run, id=f"{rel}:{line}"))
    return runs, synopses


RUNS, SYNOPSES = _collect()


def test_the_docs_have_commands_to_check():
    assert len(RUNS) >= 3 and len(SYNOPSES) >= 3, (RUNS, SYNOPSES)


@pytest.mark.parametrize("synopsis", SYNOPSES)
def test_synopsis_names_existing_options(synopsis):
    words = synopsis.split()
    assert words[0] == "skcpcae", synopsis
    result = CliRunner().invoke(cli.app, [words[1], "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in sorted(set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", synopsis))):
        assert option in result.output, f"{option} is not an option of skcpcae {words[1]}"


# ----------------------------------------------------------------------------- running


def _write_images(folder, images, prefix):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        save_image(folder / f"{prefix}_{i:02d}.png", img)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny good and defective images (32x32), and a tiny fitted model."""
    root = tmp_path_factory.mktemp("docs_data")
    X, _ = make_parts(12, size=(32, 32), random_state=0)
    Xd, _ = make_parts(0, n_anomalies=3, size=(32, 32), random_state=1)
    _write_images(root / "good", X, "good")
    _write_images(root / "defect", Xd, "bad")
    result = _invoke(["fit", str(root / "good"), "-o", str(root / "model.skops"), "-q",
                      "--preset", "aligned", *_fast("aligned")])
    assert result.exit_code == 0, result.output
    return root


def _fast(preset):
    assert preset in FAST, f"no FAST overrides for preset {preset!r}: add them to FAST"
    return [arg for value in FAST[preset] for arg in ("--set", value)]


def _invoke(argv):
    return CliRunner().invoke(cli.app, argv, catch_exceptions=True)


def _preset_of(argv, workdir):
    if "--preset" in argv:
        return argv[argv.index("--preset") + 1]
    if "--config" in argv:
        from skcpcae._fit_record import read_fit_config

        return (read_fit_config(workdir / argv[argv.index("--config") + 1])["preset"]
                or DEFAULT_PRESET)
    return DEFAULT_PRESET


# Commands that need an optional extra (``make test`` installs them all; ``make test-min``
# does not): the word in the command, and the modules it needs.
EXTRAS = {"export": ("onnx", "onnxruntime"), ".onnx": ("onnxruntime",),
          "--workers": ("distributed",), "--scheduler": ("distributed",)}


def _skip_without_extras(commands):
    for command in commands:
        words = shlex.split(command, comments=True)
        for word, modules in EXTRAS.items():
            if any(w == word or w.endswith(word) for w in words[1:]):
                for module in modules:
                    pytest.importorskip(module, reason=f"`{command}` needs {module} (an extra)")


@pytest.mark.slow
@pytest.mark.parametrize("page, commands", RUNS)
def test_documented_commands_run_on_tiny_data(page, commands, tiny, tmp_path, monkeypatch):
    _skip_without_extras(commands)
    for name, kind in TINY_DATA.items():
        shutil.copytree(tiny / kind, tmp_path / name)
    for name, text in _config_files(page).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    if not any(c.split()[:2] == ["skcpcae", "fit"] for c in commands):
        shutil.copy(tiny / "model.skops", tmp_path / "model.skops")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = shlex.split(command, comments=True)
        if argv[0] == "python":
            assert command in PYTHON_COMMANDS, (
                f"{page.name}: no tiny-data rule for {command!r}: add it to PYTHON_COMMANDS"
            )
            continue
        argv = argv[1:]
        if argv[0] == "fit" and "--list-params" not in argv:
            argv += _fast(_preset_of(argv, tmp_path)) + ["-q"]
        result = _invoke(argv)
        assert result.exit_code == 0, (
            f"{page.relative_to(ROOT)}: `{command}` failed (exit {result.exit_code}):\n"
            f"{result.output[-3000:]}"
        )
