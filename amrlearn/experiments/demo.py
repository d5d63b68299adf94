"""``make demo``: the Figure 1 experiment (quick mode) and an exact-margin report.

Runs ``amrlearn reproduce figure1 --quick`` into ``out`` (printing where the pictures
are), then the margin report of a hard-margin SVM, a logistic regression and
AMRLogisticRegression on train and test.

Runs on MNIST 0-vs-1. Where the data home lacks MNIST, the demo fetches it with the
checksummed downloader when asked to (``download=True``, ``amrlearn demo --download``) or
when the user agrees at a terminal. Otherwise it runs on scikit-learn's bundled digits
(0 vs 1), so that it works on a fresh machine without a network
(:func:`amrlearn.datasets.load_mnist_or_digits`), and its last line says why those cannot
show the paper's trade-off and what to run to see it. Its verdicts are printed as they
are, whatever the data.
"""

import sys
import warnings
from pathlib import Path

from ._run import run_experiment
from ._summaries import simple_table

__all__ = ["main"]

#: The statistics of ``margin_report`` that the demo prints.
_KEYS = ("accuracy", "min_margin", "avg_margin", "median_margin")
#: The four gzipped MNIST files weigh 11.6 MB.
_MNIST_SIZE = "about 12 MB"


def _has_mnist(home):
    from ..datasets._fallback import mnist_files_present

    return mnist_files_present(home)


def _download_mnist(home):
    """Fetch MNIST's four files into ``home/mnist``, each checked against its sha256."""
    from ..datasets import load_mnist

    for subset in ("train", "test"):
        load_mnist(home, subset=subset, classes=(0, 1), return_X_y=True, download=True)


def _agrees(question):
    """The user's yes (the default) or no to ``question``; no when input ends."""
    try:
        answer = input(question)
    except EOFError:
        print(file=sys.stderr)
        return False
    return answer.strip().lower() in ("", "y", "yes")


def _mnist_or_note(data_home, download=None):
    """Make sure the data home has MNIST, else say why the demo falls short without it.

    Parameters
    ----------
    data_home : str or Path or None
    download : bool or None, default=None
        Where MNIST is missing: ``True`` fetches it, ``False`` does not, ``None`` asks
        first when standard input is a terminal (and does not fetch otherwise).

    Returns
    -------
    note : str or None
        ``None`` when MNIST is in the data home (fetched now if need be); else the one
        line that the demo prints last.
    """
    from ..datasets import ChecksumError, get_data_home
    from ..datasets._fallback import DIGITS_CAVEAT

    home = get_data_home(data_home)
    if _has_mnist(home):
        return None
    if download is None:
        download = bool(getattr(sys.stdin, "isatty", lambda: False)()) and _agrees(
            f"MNIST is not in {home}. Download it there now ({_MNIST_SIZE}, each file "
            "checked by sha256)? [Y/n] "
        )
    place = f"put the four MNIST files in {home / 'mnist'}"
    if not download:
        return (
            f"note: MNIST is not in {home}, so this demo ran on {DIGITS_CAVEAT}; to see it "
            f"on MNIST 0 vs 1, run `amrlearn demo --download` or {place}."
        )
    try:
        _download_mnist(home)
    except (OSError, ChecksumError) as exc:  # DatasetNotFoundError is an OSError
        print(f"amrlearn: could not download MNIST: {exc}", file=sys.stderr)
        return (
            f"note: could not download MNIST, so this demo ran on {DIGITS_CAVEAT}; to see it "
            f"on MNIST 0 vs 1, run `amrlearn demo --download` where a network is reachable, "
            f"or {place}."
        )
    return None


def main(out="amrlearn_output/demo", data_home=None, download=None):
    """Run Figure 1's quick mode, then print the margin reports on train and test.

    Parameters
    ----------
    out : str or Path, default="amrlearn_output/demo"
        The folder of Figure 1's results and pictures.
    data_home : str or Path, default=None
        Where MNIST is (see :func:`~amrlearn.datasets.get_data_home`).
    download : bool or None, default=None
        Where MNIST is missing: ``True`` fetches it, ``False`` runs on the digits, ``None``
        asks first when standard input is a terminal (else runs on the digits).
    """
    from sklearn.linear_model import LogisticRegression

    from .._paper import APPENDIX_F, TAU
    from ..datasets import load_mnist_or_digits
    from ..linear_model import AMRLogisticRegression
    from ..metrics import margin_report
    from ..svm import HardMarginSVC

    if Path(out).exists() and not Path(out).is_dir():  # before any question
        raise NotADirectoryError(f"the output folder {out} is a file.")
    note = _mnist_or_note(data_home, download)
    with warnings.catch_warnings():
        if note:  # the note, printed last, says it once
            warnings.filterwarnings("ignore", message="MNIST not found", category=UserWarning)
        run_experiment("figure1", mode="quick", out=out, data_home=data_home)
        Xtr, ytr, Xte, yte, name = load_mnist_or_digits(data_home, classes=(0, 1))
    print(f"data: {name}, {Xtr.shape[0]} train / {Xte.shape[0]} test, {Xtr.shape[1]} features")
    models = [
        ("HardMarginSVC", HardMarginSVC()),
        ("LogisticRegression", LogisticRegression(max_iter=1000)),
        (
            "AMRLogisticRegression",
            AMRLogisticRegression(tau=TAU["mnist", "LR"], lam=APPENDIX_F["lam"]),
        ),
    ]
    for split, X, y in (("train", Xtr, ytr), ("test", Xte, yte)):
        rows = []
        for mname, model in models:
            if split == "train":
                model.fit(Xtr, ytr)
            rep = margin_report(model, X, y)
            rows.append((mname, *(rep[k] for k in _KEYS)))
        print(f"\nexact l2 margins on {split}:")
        print("\n".join(simple_table(["model", *_KEYS], rows)))
    if note:
        print(f"\n{note}")
