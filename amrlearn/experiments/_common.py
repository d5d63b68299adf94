"""What every experiment shares: a results file written cell by cell, and the run's facts."""

import json
import os
import platform
import tempfile
from pathlib import Path

from ..exceptions import ResultsMismatchError

__all__ = [
    "DATASET_NAMES",
    "ReadOnlyDict",
    "ResultStore",
    "ResultsMismatchError",
    "cell_key",
    "check_datasets",
    "environment",
    "to_jsonable",
]

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def cell_key(dataset, model, method):
    """The name of a cell in ``results.json``: ``"mnist/MLP/AMR"``.

    Examples
    --------
    >>> from amrlearn.experiments._common import cell_key
    >>> cell_key("mnist", "MLP", "AMR (beta=0)")
    'mnist/MLP/AMR (beta=0)'
    """
    return f"{dataset}/{model}/{method}"


class ReadOnlyDict(dict):
    """A dict that refuses every change after it is made (a cell's plan is resolved once).

    It pickles (to a worker process) and serializes to JSON as a dict does.

    Examples
    --------
    >>> from amrlearn.experiments._common import ReadOnlyDict
    >>> d = ReadOnlyDict({"lam": 0.1})
    >>> d["lam"], d == {"lam": 0.1}
    (0.1, True)
    >>> d["lam"] = 1.0
    Traceback (most recent call last):
    ...
    TypeError: read-only: a cell's plan is resolved once; resolve another (plan_cell) instead
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError(
            "read-only: a cell's plan is resolved once; resolve another (plan_cell) instead"
        )

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (type(self), (dict(self),))


def to_jsonable(obj):
    """Turn numpy scalars/arrays (and tuples, Paths) into plain JSON types."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def check_datasets(datasets, allowed, where):
    """``datasets`` as a list, checked against ``allowed`` (``where`` names the scale).

    Examples
    --------
    >>> from amrlearn.experiments._common import check_datasets
    >>> check_datasets(("fashion-mnist",), ("mnist", "fashion-mnist"), "table1 --quick")
    ['fashion-mnist']
    """
    if isinstance(datasets, str):
        datasets = [datasets]
    datasets = list(datasets)
    if not datasets:
        raise ValueError(f"datasets must name at least one dataset of {where}.")
    bad = [d for d in datasets if d not in allowed]
    if bad or len(set(datasets)) != len(datasets):
        raise ValueError(
            f"datasets of {where}: one or more of {', '.join(allowed)}, each once; got "
            f"{datasets!r}."
        )
    return datasets


def environment(device="cpu"):
    """Versions and machine facts recorded with every result.

    Examples
    --------
    >>> from amrlearn.experiments._common import environment
    >>> sorted(environment())[:3]
    ['amrlearn', 'device', 'numpy']
    """
    import numpy as np
    import sklearn

    from .._version import __version__

    env = {
        "amrlearn": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
        "device": str(device),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        if str(device).startswith("cuda") and torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return env


#: Settings of how a run goes, not of what it computes: left out of the stored
#: configuration and of the comparison on resume, so that a rerun with another verbosity,
#: number of parallel jobs or data home (the files are checked by their checksums)
#: resumes, and a results file records no path of the machine that made it.
RUN_ONLY_KEYS = ("verbose", "n_jobs", "data_home")

# The run's settings that every deep-model experiment's configuration ends with, and the
# whole data sets of full mode.
RUN_DEFAULTS = {"device": "cpu", "seed": 0, "data_home": None}
ALL_DATA = {"n_train": None, "n_test": None}


def _what_is_computed(config):
    return {k: v for k, v in (config or {}).items() if k not in RUN_ONLY_KEYS}


#: The grid of a configuration: a rerun may add to these and keep the cells it has.
GRID_KEYS = ("datasets", "models", "methods")


def _seen_by(value, model):
    """``value`` as a cell of ``model`` reads it: every dict keyed by model names (see
    :func:`~amrlearn.experiments._method.per_model`) resolved, at any depth."""
    if isinstance(value, dict):
        if model in value or "default" in value:
            return _seen_by(value.get(model, value.get("default")), model)
        return {k: _seen_by(v, model) for k, v in value.items()}
    if isinstance(value, list):
        return [_seen_by(v, model) for v in value]
    return value


def _keeps_cells(old, new, cells):
    """Whether the ``cells`` computed under ``old`` are what ``new`` asks for: the same
    configuration, or one whose grid only grew and that reads the same for every model
    already computed (e.g. a model added with its own epochs)."""
    if old == new:
        return True
    for key in GRID_KEYS:
        if not set(old.get(key) or ()) <= set(new.get(key) or ()):
            return False
    rest = set(old) | set(new)
    rest.difference_update(GRID_KEYS)
    models = {cell.split("/")[1] for cell in cells if cell.count("/") >= 2}
    if not models:  # nothing stored per model to read the configuration by
        return False
    for model in models:
        seen = [{k: _seen_by(c.get(k), model) for k in rest} for c in (old, new)]
        if seen[0] != seen[1]:
            return False
    return True


class ResultStore:
    """A JSON results file that is rewritten atomically after every finished cell.

    An interrupted run reopens the file and skips the cells that are already there. A
    file written under another configuration is not reused: the run stops with an error
    instead of mixing results. One change is allowed: a grid that grows (more datasets,
    models or methods) while every stored cell's model reads the same configuration (a
    setting given per model, such as ``{"MLP": 100, "LeNetSmall": 50}`` epochs, counts
    for each model apart); the file then takes the new configuration.

    Parameters
    ----------
    path : str or Path
        The ``results.json`` file.
    config : dict
        The run's configuration, stored with the results and compared on resume (without
        ``RUN_ONLY_KEYS``).

    Examples
    --------
    >>> import tempfile, os
    >>> from amrlearn.experiments._common import ResultStore
    >>> d = tempfile.mkdtemp()
    >>> store = ResultStore(os.path.join(d, "results.json"), {"seed": 0})
    >>> store.put("mlp/std", {"clean": 0.98})
    >>> ResultStore(os.path.join(d, "results.json"), {"seed": 0}).get("mlp/std")
    {'clean': 0.98}
    """

    def __init__(self, path, config):
        self.path = Path(path)
        self.config = to_jsonable(_what_is_computed(config))
        self.data = {
            "config": self.config,
            "environment": environment(config.get("device")),
            "cells": {},
        }
        if self.path.exists():
            old = json.loads(self.path.read_text())
            cells = old.get("cells", {})
            if not _keeps_cells(_what_is_computed(old.get("config")), self.config, cells):
                raise ResultsMismatchError(
                    f"{self.path} holds results of another configuration; choose another --out "
                    "or remove it to start over."
                )
            self.data["cells"] = cells

    def __contains__(self, cell):
        return cell in self.data["cells"]

    def get(self, cell, default=None):
        return self.data["cells"].get(cell, default)

    def put(self, cell, value):
        self.data["cells"][cell] = to_jsonable(value)
        self.save()

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, self.path)
