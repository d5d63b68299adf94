"""Layering: a user of the linear estimators never waits on torch's import."""

import subprocess
import sys


def test_linear_workflow_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from amrlearn import AMRLogisticRegression\n"
        "from amrlearn.metrics import margin_report\n"
        "X = np.random.default_rng(0).random((40, 3)); y = (X[:, 0] > .5).astype(int)\n"
        "margin_report(AMRLogisticRegression().fit(X, y), X, y)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
