#!/usr/bin/env bash
# Build the documentation into docs/_build/html, offline, with every warning an error.
#   docs/build.sh            # with the current python (needs the "docs" extra)
#   PYTHON=.venv/bin/python docs/build.sh
# The gallery runs every examples/plot_*.py (MNIST from $AMRLEARN_DATA, else digits).
# MathJax is bundled from Debian's libjs-mathjax (or $AMRLEARN_DOCS_MATHJAX_DIR, see
# docs/conf.py), and docs/check_offline.py then fails the build if any page loads a
# script, stylesheet, font or image from another host.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export MPLBACKEND=Agg
# One BLAS/torch thread per process unless told otherwise: on a shared 2-core machine,
# two threads per process made the gallery's MLP example 7x slower (3.5 min vs 0.5 min).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$PYTHON" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
"$PYTHON" docs/check_offline.py docs/_build/html
echo "docs: open docs/_build/html/index.html"
