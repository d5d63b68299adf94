"""The warnings and errors of amrlearn that users may want to catch or filter.

Every public error and warning class of amrlearn is defined here (the packages that
raise them re-export them, so ``from amrlearn.datasets import ChecksumError`` works too):

- :class:`EvaluationWarning`: the alarm of the robustness evaluation;
- :class:`CheckpointError`: a checkpoint that cannot be loaded into its model;
- :class:`ChecksumError`, :class:`DatasetNotFoundError`: a dataset file that is corrupt
  or absent;
- :class:`NotCertifiableError`: a model that the certified margins do not bound;
- :class:`ResultsMismatchError`: a results file that holds another configuration.

The errors subclass the built-in exception that fits (``ValueError``,
``FileNotFoundError``), so code that catches those keeps working.

:class:`EvaluationWarning` is the alarm of the robustness evaluation: an attack or a
bound ran, but its number should not be trusted as it stands. Filter it like any
warning category::

    import warnings
    from amrlearn.exceptions import EvaluationWarning
    warnings.simplefilter("error", EvaluationWarning)  # make every alarm an error
"""

__all__ = [
    "CheckpointError",
    "ChecksumError",
    "DatasetNotFoundError",
    "EvaluationWarning",
    "NotCertifiableError",
    "ResultsMismatchError",
]


class EvaluationWarning(UserWarning):
    """An attack or a margin bound gave a number that should not be trusted as it is.

    Raised (as a warning) when:

    - dropout or batch normalization is in training mode while an attack runs on
      tensors (``attack.run``), or the model's output is random (it changes between
      two forward passes on the same input) during an attack or a bound;
    - the inputs of a margin bound lie outside its ``clip`` box (attacks refuse such
      inputs with a ``ValueError`` instead);
    - the attacks of an ensemble disagree by more than 5 percentage points at some eps
      (:func:`amrlearn.attacks.robust_accuracy` with ``attack="auto"``): the sign of
      gradient masking, named by eps;
    - Theorem 3's estimate of a sample's distance to the boundary exceeds the distance
      of an adversarial point actually found: the sampled Lipschitz constant fell
      short, so the Theorem 3 estimate is no bound for that sample;
    - a certified margin exceeds the distance of an adversarial point found, which a
      proven bound cannot do: a bug to report.

    Examples
    --------
    >>> import warnings
    >>> from amrlearn.exceptions import EvaluationWarning
    >>> issubclass(EvaluationWarning, UserWarning)
    True
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("gradient masking at eps=2", EvaluationWarning)
    >>> caught[0].category.__name__
    'EvaluationWarning'
    """


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded into the model: the message says why and where.

    Raised by :func:`amrlearn.neural.load_checkpoint` (and ``amrlearn evaluate``).

    Examples
    --------
    >>> from amrlearn.exceptions import CheckpointError
    >>> issubclass(CheckpointError, ValueError)
    True
    """


class ChecksumError(ValueError):
    """A dataset file is corrupt: its digest is not the published one.

    Examples
    --------
    >>> from amrlearn.exceptions import ChecksumError
    >>> issubclass(ChecksumError, ValueError)
    True
    """


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is not in the data home (and was not, or could not be, downloaded).

    The message names the path that was expected and how to get the file.

    Examples
    --------
    >>> from amrlearn.exceptions import DatasetNotFoundError
    >>> issubclass(DatasetNotFoundError, FileNotFoundError)
    True
    """


class NotCertifiableError(ValueError):
    """A model that the certified margins do not bound.

    A layer or a structure outside the supported chains. A ``ValueError``; the callers
    that report the certificate beside other numbers
    (:func:`~amrlearn.metrics.margin_bounds`) catch it and report none.

    Examples
    --------
    >>> from amrlearn.exceptions import NotCertifiableError
    >>> issubclass(NotCertifiableError, ValueError)
    True
    """


class ResultsMismatchError(ValueError):
    """A results file holds the results of another configuration.

    Raised when an experiment would resume into (or merge) a results file written with
    other settings.

    Examples
    --------
    >>> from amrlearn.exceptions import ResultsMismatchError
    >>> issubclass(ResultsMismatchError, ValueError)
    True
    """
