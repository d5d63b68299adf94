"""Every gallery example (examples/plot_*.py) runs as a script, so the gallery cannot rot.

The examples run in their quick mode (``AMRLEARN_EXAMPLE_QUICK=1``: smaller data, fewer
epochs), headless (``MPLBACKEND=Agg``), on one thread each, with the project's data home.
The full-size versions run when the documentation is built (``docs/build.sh``).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 7, EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = dict(os.environ)
    env.update(
        MPLBACKEND="Agg",
        AMRLEARN_EXAMPLE_QUICK="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
