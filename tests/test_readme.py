"""The README's usage example runs as written, and its front door is intact."""

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


def test_readme_usage_example_runs():
    from amrlearn.datasets import DatasetNotFoundError, load_mnist

    try:
        load_mnist(subset="test", classes=(0, 1), return_X_y=True)
    except DatasetNotFoundError:
        pytest.skip("MNIST is not in the data home ($AMRLEARN_DATA)")
    blocks = _python_blocks(README)
    assert blocks, "the README has no python example"
    assert len(blocks[0].strip().splitlines()) <= 12
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    search = namespace["search"]
    assert search.best_params_["tau"] in (1, 5)
    assert "mean_test_avg_margin" in search.cv_results_
