"""Sphinx configuration for skcpcae."""

project = "skcpcae"
author = "skcpcae developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
autosummary_generate = True
templates_path = ["_templates"]  # {class,function,data}.rst, as scikit-learn's
numpydoc_show_class_members = False
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_templates"]
default_role = "literal"  # `x` in a docstring is code, as ``x``, never a dangling reference
html_theme = "alabaster"
html_static_path = ["_static"]
myst_heading_anchors = 3  # links such as getting_started.md#saving-a-model

# -- Example gallery (sphinx-gallery) -------------------------------------------------------
# The examples in ../examples are rendered as a gallery. They are NOT executed during the
# build (plot_gallery = "False"): each example writes its figures to docs/_static when run as
# a script, and its docstring shows them from there, so the pages show the figures the
# scripts produce without rerunning them. `sphinx-build -D plot_gallery=1 ...` executes them
# (all but the slow ELPV ones, see filename_pattern).
try:
    from sphinx_gallery.sorting import ExplicitOrder
except ImportError:  # docs extra not installed: build without the gallery
    ExplicitOrder = None

if ExplicitOrder is not None:
    extensions.append("sphinx_gallery.gen_gallery")
    sphinx_gallery_conf = {
        "examples_dirs": "../examples",
        "gallery_dirs": "auto_examples",
        "filename_pattern": r"/plot_(?!elpv)",
        "subsection_order": ExplicitOrder([
            "../examples/pipeline",
            "../examples/preprocessing",
            "../examples/residuals",
            "../examples/embedding",
            "../examples/threshold",
            "../examples/baselines",
            "../examples/elpv",
        ]),
        "within_subsection_order": "FileNameSortKey",
        "download_all_examples": False,
        "remove_config_comments": True,
        "write_computation_times": False,
    }
    plot_gallery = "False"
    exclude_patterns += ["auto_examples/*.ipynb", "auto_examples/*/*.ipynb"]

# -- Nitpicky references (`make docs` builds with -n -W) ------------------------------------
# The build is offline (no intersphinx): references to other projects' objects cannot be
# resolved, so they are ignored by name. Only third-party packages are listed; an unresolved
# skcpcae name always fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"(sklearn|numpy|scipy|torch|torchvision|timm|skorch|skops|joblib|cv2|PIL"
               r"|matplotlib|pandas|typer|os|pathlib|dask|distributed|ray|pyspark)(\..*)?"),
]


def _skip_third_party_members(app, what, name, obj, skip, options):
    """Document a class's own and skcpcae-inherited members, not scikit-learn's.

    ``get_params``, ``set_output``, ``fit_predict``, the metadata-routing ``set_*_request``
    methods and the methods of ``Exception`` are documented by their own projects, and
    their docstrings refer to pages this build cannot resolve.
    """
    if what != "class" or skip:
        return skip
    target = getattr(obj, "fget", obj)  # properties: the getter's module
    module = getattr(target, "__module__", None) or ""
    if not module.startswith("skcpcae"):
        return True
    return None


def _data_doc_from_defining_module(app, what, name, obj, options, lines):
    """A constant re-exported by a package (``skcpcae.datasets.MAX_PIXELS``) gets the
    ``#:`` comment written above it in its private module (``skcpcae/datasets/_io.py``),
    not the docstring of its type (``int``). A public constant without one is a warning,
    so the strict build fails on it."""
    if what != "data":
        return
    import sys

    from sphinx.pycode import ModuleAnalyzer
    from sphinx.util import logging

    package, _, attr = name.rpartition(".")
    for modname in sorted(m for m in sys.modules if m == package or m.startswith(package + ".")):
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module without Python source (extension, namespace)
            continue
        if ("", attr) in docs and getattr(sys.modules[modname], attr, None) is obj:
            lines[:] = [line for line in docs[("", attr)] if line is not None]
            return
    lines[:] = []
    logging.getLogger(__name__).warning(
        "public constant %s has no '#:' doc comment where it is defined", name
    )


def setup(app):
    app.connect("autodoc-skip-member", _skip_third_party_members)
    app.connect("autodoc-process-docstring", _data_doc_from_defining_module)
