"""docs/check_offline.py: the built site may load nothing from another host."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    path = ROOT / "docs" / "check_offline.py"
    spec = importlib.util.spec_from_file_location("check_offline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = """<html><head>
<link rel="stylesheet" href="_static/theme.css">
<link rel="canonical" href="https://example.org/amrlearn/">
{extra}
<script async src="_static/mathjax/MathJax.js?config=TeX-AMS_CHTML"></script>
</head><body><a href="https://arxiv.org/abs/1907.11780">the paper</a>
<img src="_images/figure.png"></body></html>
"""


def test_a_local_site_passes(tmp_path):
    (tmp_path / "index.html").write_text(PAGE.format(extra=""))
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "theme.css").write_text("@font-face { src: url(fonts/a.woff2); }")
    checker = _checker()
    assert checker.outside_loads(tmp_path) == []
    assert checker.main([str(tmp_path)]) == 0


def test_every_kind_of_outside_load_is_found(tmp_path):
    loads = [
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>',
        '<link rel="preload" href="//fonts.example.com/a.woff2">',
        '<img srcset="_images/a.png 1x, http://example.com/b.png 2x">',
        "<div style=\"background: url('https://example.com/bg.png')\"></div>",
        "<style>@import 'https://fonts.googleapis.com/css?family=Lato';</style>",
        '<style scoped><link href="https://cdn.example.com/t.css" rel="stylesheet" /></style>',
    ]
    (tmp_path / "index.html").write_text(PAGE.format(extra="\n".join(loads)))
    (tmp_path / "site.css").write_text('body { background: url("https://example.com/x.png"); }')
    checker = _checker()
    found = [url for _, url in checker.outside_loads(tmp_path)]
    assert len(found) == 7, found
    assert checker.main([str(tmp_path)]) == 1


def test_no_pages_is_an_error(tmp_path):
    assert _checker().main([str(tmp_path)]) == 2
