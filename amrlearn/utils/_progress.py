"""Progress bars for long loops (training, PGD, margin estimation)."""

from tqdm.auto import tqdm


def progress(iterable=None, *, verbose=0, **kwargs):
    """Wrap ``iterable`` in a tqdm bar, silenced when ``verbose`` is 0.

    Parameters
    ----------
    iterable : iterable, default=None
        What to iterate over. ``None`` makes a manually updated bar (``total=`` then).
    verbose : int, default=0
        0 silences the bar; anything larger shows it.
    **kwargs
        Passed to :class:`tqdm.auto.tqdm` (``desc``, ``total``, ``leave``...).

    Returns
    -------
    tqdm
        The bar, which iterates like ``iterable``.

    Examples
    --------
    >>> from amrlearn.utils import progress
    >>> sum(progress(range(3), verbose=0))
    3
    """
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not verbose, **kwargs)
