"""Sphinx configuration of the amrlearn documentation.

The build is offline: no intersphinx inventories are fetched, and the gallery runs on the
data home's MNIST or on scikit-learn's bundled digits. ``docs/build.sh`` (or
``make docs``) runs ``sphinx-build -W``: every warning is an error.

The API reference is generated from each public subpackage's ``__all__`` (see
``_write_api_sections``), so a name added to an ``__all__`` appears without editing the
docs.
"""

import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))  # _gallery_order
os.environ.setdefault("MPLBACKEND", "Agg")

import amrlearn  # noqa: E402

project = "amrlearn"
author = "amrlearn developers"
copyright = "amrlearn developers"
release = amrlearn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
# api_sections.rst is generated below and included by api.rst, not a page of its own.
# reproduction/: the committed result folders of the reproductions (JSON and summaries that
# docs/reproduction.md shows), data rather than pages.
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "api_sections.rst",
    "_gallery_order.py",
    "reproduction",
]
default_role = "literal"

# -- autodoc / autosummary / numpydoc ------------------------------------------------------
# The API sections are written into api_sections.rst before the build (see the end of
# this file); autosummary scans that file for the stubs to generate.
autosummary_generate = ["api.rst", "api_sections.rst"]
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- MathJax, bundled: every page reads offline and loads nothing from another host ---------
# MathJax 2.7 from Debian's libjs-mathjax (``apt-get install libjs-mathjax``; ``make docs``
# installs it), or from the folder AMRLEARN_DOCS_MATHJAX_DIR names. The files that the
# TeX-AMS_CHTML configuration loads are copied into the site's _static/mathjax (MathJax
# itself is not part of the repository). docs/check_offline.py, run by docs/build.sh,
# fails the build if a page still loads anything from another host.
MATHJAX_DIR = Path(os.environ.get("AMRLEARN_DOCS_MATHJAX_DIR", "/usr/share/javascript/mathjax"))
MATHJAX_PARTS = (
    "MathJax.js",
    "config/TeX-AMS_CHTML.js",
    "extensions",
    "jax/element",
    "jax/input/TeX",
    "jax/output/CommonHTML",
    "jax/output/PreviewHTML",
    "localization/en",
    "fonts/HTML-CSS/TeX/woff",
)


def _bundle_mathjax(src, dest):
    """Copy the parts of MathJax 2.7 that TeX-AMS_CHTML loads from ``src`` to ``dest``."""
    import shutil

    if not (src / "MathJax.js").is_file():
        raise RuntimeError(
            f"MathJax 2.7 not found in {src}: the documentation bundles it so that its "
            "formulas render offline. Install Debian's libjs-mathjax (apt-get install "
            "libjs-mathjax) or set AMRLEARN_DOCS_MATHJAX_DIR to a MathJax 2.7 folder."
        )
    for part in MATHJAX_PARTS:
        source, target = src / part, dest / part
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        else:
            raise RuntimeError(f"{source} is missing: a MathJax 2.7 folder has it.")


_MATHJAX_STATIC = HERE / "_build" / "mathjax_static"
_bundle_mathjax(MATHJAX_DIR, _MATHJAX_STATIC / "mathjax")
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML"

# -- MyST: docs/architecture.md and docs/reproduction.md are pages as they stand -----------
myst_heading_anchors = 3
# Their links to files outside the site (e.g. ../shared/DESIGN.md, benchmark scripts)
# stay plain links rather than cross-references.
suppress_warnings = ["myst.xref_missing"]

# -- plot directive (the picture of the margins page) ---------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# -- sphinx-gallery -------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "_gallery_order.ExampleOrder",
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("amrlearn",),
    "reference_url": {"amrlearn": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    # The computation-times pages load jQuery and DataTables from CDNs: not written.
    "write_computation_times": False,
}

# -- HTML -----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"amrlearn {release}"
html_static_path = ["_static", str(_MATHJAX_STATIC)]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 4,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {
    page: []
    for page in ("index", "getting_started", "changelog", "api", "reproduction", "architecture")
}

# -- Types written the scikit-learn way ------------------------------------------------------
# A numpydoc type such as ``ndarray of shape (n_features_in_,)`` or
# ``(n_samples, *input_shape)`` is plain text to a reader, but reST would read
# ``n_features_in_`` as a link and ``*input_shape`` as the start of emphasis. Escape those
# two characters in the "name : type" lines of docstrings, before numpydoc parses them.
_TYPE_LINE = re.compile(r"^(\s*[\w*, ]+ : )(.*)$")


def _escape_types(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        match = _TYPE_LINE.match(line)
        if match and "`" not in match.group(2):
            kind = re.sub(r"(\w)_(?=\W|$)", r"\1\\_", match.group(2))
            kind = re.sub(r"(?<![\w\\])\*(?=\w)", r"\\*", kind)
            lines[i] = match.group(1) + kind


# autosummary's one-line summaries end at the first ". ": "Signed margin of eq. (14)."
# would be cut to "Signed margin of eq.". A word joiner (invisible, not a space) after
# the abbreviations keeps the sentence whole.
_ABBREVIATIONS = re.compile(r"\b(eq|Eq|eqs|e\.g|i\.e|cf|vs|al)\. ")


def _join_abbreviations(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):  # the first paragraph, where the summary is
        if not line.strip():
            break
        lines[i] = _ABBREVIATIONS.sub("\\1.\u2060 ", line)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_types, priority=100)
    app.connect("autodoc-process-docstring", _join_abbreviations, priority=100)


# -- API reference from the __all__ of each public package ------------------------------------
# Every public (no leading underscore) subpackage or module of amrlearn that defines
# ``__all__`` gets one section listing those names; the command line and the experiments
# behind it are documented in the Reproduction page instead. ``API_ORDER`` orders the
# sections (the rest follow alphabetically). A name exported by ``amrlearn`` itself is
# listed there with a link to its home subpackage rather than documented twice.
API_ORDER = [
    "amrlearn.linear_model",
    "amrlearn.svm",
    "amrlearn.neural",
    "amrlearn.neural.models",
    "amrlearn.metrics",
    "amrlearn.attacks",
    "amrlearn.evaluation",
    "amrlearn.datasets",
    "amrlearn.plotting",
    "amrlearn.utils",
]
API_EXCLUDE = ("amrlearn.cli", "amrlearn.experiments")


def _api_packages():
    found = []
    for info in pkgutil.walk_packages(amrlearn.__path__, "amrlearn."):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")):
            continue
        if name in API_EXCLUDE or name.startswith(tuple(p + "." for p in API_EXCLUDE)):
            continue
        if hasattr(importlib.import_module(name), "__all__"):
            found.append(name)
    rank = {name: i for i, name in enumerate(API_ORDER)}
    return sorted(found, key=lambda name: (rank.get(name, len(rank)), name))


def _public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        raise RuntimeError(f"{module.__name__} has no __all__: the API reference needs one")
    return [n for n in names if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]


def _defined_elsewhere(module, name, packages):
    owner = getattr(getattr(module, name), "__module__", None)
    return owner != module.__name__ and owner in packages


def _write_api_sections(path):
    homes, sections = {}, []
    packages = _api_packages()
    for name in packages:
        module = importlib.import_module(name)
        # A name that another section defines (an error re-exported by the package that
        # raises it) is documented once, in the package that defines it.
        names = sorted(
            (n for n in _public_names(module) if not _defined_elsewhere(module, n, packages)),
            key=str.lower,
        )
        for n in names:
            homes.setdefault(n, name)
        summary = (inspect.getdoc(module) or "").strip().split("\n\n")[0].replace("\n", " ")
        sections.append(
            "\n".join(
                [
                    f".. _api-{name}:",
                    "",
                    f":mod:`{name}`",
                    "-" * (len(name) + 7),
                    "",
                    f".. module:: {name}",
                    "",
                    summary,
                    "",
                    f".. currentmodule:: {name}",
                    "",
                    ".. autosummary::",
                    "   :toctree: generated",
                    "   :nosignatures:",
                    "",
                    *[f"   {n}" for n in names],
                    "",
                ]
            )
        )
    top = [n for n in _public_names(amrlearn) if n != "__version__" and not n.startswith("_")]
    lines = [
        ":mod:`amrlearn`",
        "---------------",
        "",
        ".. module:: amrlearn",
        "",
        "The package itself exports the names a first script needs:",
        "",
    ]
    for n in sorted(top, key=str.lower):
        home = homes.get(n)
        target = f"{home}.{n}" if home else f"amrlearn.{n}"
        lines.append(f"- ``amrlearn.{n}``: :obj:`{target}`")
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n" + "\n".join(sections)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_write_api_sections(HERE / "api_sections.rst")
