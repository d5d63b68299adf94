"""The warnings and errors of amrlearn that users may want to catch or filter.

:class:`EvaluationWarning` is the alarm of the robustness evaluation: an attack or a
bound ran, but its number should not be trusted as it stands. Filter it like any
warning category::

    import warnings
    from amrlearn.exceptions import EvaluationWarning
    warnings.simplefilter("error", EvaluationWarning)  # make every alarm an error
"""

__all__ = ["EvaluationWarning"]


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
