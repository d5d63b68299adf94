#!/usr/bin/env bash
# Build the documentation into docs/_build/html, offline, with every warning an error.
#   docs/build.sh            # with the current python (needs the "docs" extra)
#   PYTHON=.venv/bin/python docs/build.sh
# The gallery runs every examples/plot_*.py (MNIST from $AMRLEARN_DATA, else digits).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export MPLBACKEND=Agg
"$PYTHON" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
echo "docs: open docs/_build/html/index.html"
