"""The README's usage examples run as written, and its front door is intact."""

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_shows_the_two_commands():
    assert "make demo" in README and "make test" in README


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _need_mnist():
    from amrlearn.datasets import DatasetNotFoundError, load_mnist

    try:
        load_mnist(subset="test", classes=(0, 1), return_X_y=True)
    except DatasetNotFoundError:
        pytest.skip("MNIST is not in the data home ($AMRLEARN_DATA)")


def _run(block, namespace, name):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, name, "exec"), namespace)  # noqa: S102
    return out.getvalue()


def test_readme_has_install_and_data():
    section = README.split("## Install and data", 1)[1].split("\n## ", 1)[0]
    for needed in ("pip install -e .", ".[dev]", "AMRLEARN_DATA", "data_home", "download=True"):
        assert needed in section, needed
    assert "DDN upper bound" not in README and "lower bound" not in README


def test_readme_usage_example_runs():
    _need_mnist()
    blocks = _python_blocks(README)
    assert blocks, "the README has no python example"
    assert len(blocks[0].strip().splitlines()) <= 12
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    search = namespace["search"]
    assert search.best_params_["tau"] in (1, 5)
    assert "mean_test_avg_margin" in search.cv_results_


@pytest.mark.slow
def test_readme_neural_examples_run_and_are_reproducible():
    # the README's torch snippet gives the same net twice in one process, and the
    # evaluation snippet runs on it
    _need_mnist()
    from amrlearn.datasets import load_mnist

    blocks = _python_blocks(README)
    assert len(blocks) >= 3, "the README lost its neural or its evaluation example"
    X, y = load_mnist(subset="test", classes=(0, 1), return_X_y=True)
    runs = []
    for _ in range(2):
        namespace = {"X": X, "y": y}
        printed = _run(blocks[1], namespace, "README.md")
        runs.append(printed.strip().splitlines()[-1])  # score and mean feature margin
    assert runs[0] == runs[1], runs
    printed = _run(blocks[2], namespace, "README.md")
    assert namespace["res"].accuracy.shape == (2,) and len(printed.splitlines()) == 2
