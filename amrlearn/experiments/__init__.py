"""The paper's experiments: plain functions, ``run(config, out_dir) -> dict`` and ``plot``.

The command line (:mod:`amrlearn.cli`) only parses arguments and calls
:func:`run_experiment`.
"""

from ._run import EXPERIMENTS, experiment_datasets, experiment_modes, run_experiment

__all__ = ["EXPERIMENTS", "experiment_datasets", "experiment_modes", "run_experiment"]
