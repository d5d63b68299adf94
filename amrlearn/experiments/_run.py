"""Run one experiment end to end: results, pictures and the summary, under one folder."""

import importlib
from pathlib import Path

__all__ = ["EXPERIMENTS", "experiment_datasets", "experiment_modes", "run_experiment"]

#: The experiments of ``amrlearn reproduce``: modules of :mod:`amrlearn.experiments`.
EXPERIMENTS = ("figure1", "table1", "table2", "figures", "certified", "frontier")


def experiment_modes(name):
    """The scales of experiment ``name``: ``("quick", "full")``, and ``"medium"`` for
    Table 1 and the certified experiment.

    Examples
    --------
    >>> from amrlearn.experiments import experiment_modes
    >>> experiment_modes("table1"), experiment_modes("table2")
    (('quick', 'medium', 'full'), ('quick', 'full'))
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}.")
    exp = importlib.import_module(f"amrlearn.experiments.{name}")
    return getattr(exp, "MODES", ("quick", "full"))


def experiment_datasets(name):
    """The datasets that experiment ``name`` can run (``()``: its datasets are fixed).

    Examples
    --------
    >>> from amrlearn.experiments import experiment_datasets
    >>> experiment_datasets("table1"), experiment_datasets("table2")
    (('mnist', 'cifar10', 'fashion-mnist'), ())
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}.")
    exp = importlib.import_module(f"amrlearn.experiments.{name}")
    if not hasattr(exp, "EXTRA_DATASETS"):
        return ()
    return tuple(exp.DATASETS) + tuple(exp.EXTRA_DATASETS)


def run_experiment(
    name,
    *,
    mode="quick",
    device="cpu",
    out=None,
    data_home=None,
    seed=0,
    verbose=1,
    n_jobs=1,
    datasets=None,
):
    """Run experiment ``name`` and write its results, pictures and summary under ``out``.

    Parameters
    ----------
    name : {"figure1", "table1", "table2", "figures", "certified"}
    mode : {"quick", "medium", "full"}, default="quick"
        ``"medium"`` exists for Table 1 and ``"certified"`` only (see
        :func:`experiment_modes`).
    device : str, default="cpu"
    out : str or Path, default=None
        The output folder; ``None`` is ``amrlearn_output/<name>``.
    data_home : str or Path, default=None
    seed : int, default=0
    verbose : int, default=1
    n_jobs : int, default=1
        Cells trained at once, each in its own process with an equal share of the torch
        threads (Table 1, Table 2 and the figures; Figure 1 runs in one process and takes
        1 only). Results do not
        depend on it beyond the last digits of CPU sums, and a run resumes under another
        value. The workers are spawned: a script calling this with ``n_jobs > 1`` needs
        multiprocessing's ``if __name__ == "__main__":`` guard.
    datasets : sequence of str, default=None
        Table 1 and the figures only: the datasets to run instead of the mode's (see
        :func:`experiment_datasets`), e.g. ``["fashion-mnist"]``; ``None``: the mode's.

    Returns
    -------
    results : dict
        What the experiment's ``run`` returned.

    Raises
    ------
    ValueError
        For an unknown ``name``, ``n_jobs > 1`` for Figure 1, or ``datasets`` that the
        experiment cannot run.
    NotADirectoryError
        When ``out`` exists and is not a folder.
    DatasetNotFoundError
        When none of the experiment's cells can run for lack of data.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}.")
    if name == "figure1" and n_jobs != 1:
        raise ValueError(f"figure1 runs in one process: n_jobs must be 1, got {n_jobs!r}.")
    out_dir = Path(out or f"amrlearn_output/{name}")
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"the output folder {out_dir} is a file.")
    exp = importlib.import_module(f"amrlearn.experiments.{name}")
    if datasets is None:
        config = exp.default_config(mode)
    elif experiment_datasets(name):
        config = exp.default_config(mode, datasets=datasets)
    else:
        raise ValueError(f"{name} runs fixed datasets: leave datasets out.")
    config.update(device=device, data_home=data_home, seed=seed, verbose=verbose)
    config.update(n_jobs=n_jobs)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = exp.run(config, out_dir)
    paths = exp.plot(results, out_dir)
    text = exp.summarize(results)
    (out_dir / "summary.md").write_text(text + "\n")
    print(text)
    print(f"\nresults: {out_dir / 'results.json'}")
    for p in paths:
        print(f"picture: {p}")
    return results
