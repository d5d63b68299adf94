"""The signed multiclass margin of a linear layer, eq. (6) and (14) of Wu & Yu.

With scores ``f_k = w_k^T z + b_k`` (``z`` the input of a linear model, eq. (6), or the
features ``Phi(x)`` of a net, eq. (14)) and a reference class ``c`` of each sample,

``m = min_{k != c} (f_c - f_k) / ||w_c - w_k||``,

the signed l2 distance from ``z`` to the boundary of the region where ``c`` wins:
positive when ``c`` scores highest, negative when another class does. With ``c`` the
predicted class it is the unsigned distance to the decision boundary (eq. (6), which
then signs it by the correctness of the prediction); with ``c`` the true class it is
the training margin of eq. (14).

The numpy form (:func:`pair_distances`, :func:`signed_margins`) and the torch form
(:func:`pair_distances_torch`, :func:`signed_margins_torch`) stand side by side and
agree to rounding (a few units in the last place: the sums run in different orders).

**Equal weight rows.** When ``w_k = w_c`` the hyperplane ``f_c = f_k`` is empty (or the
whole space) and the ratio is ``(b_c - b_k) / 0``. Both forms give it its limit: ``+inf``
when ``b_c >= b_k`` (``k`` never beats ``c``: no boundary, the class is left out of the
minimum) and ``-inf`` when ``b_c < b_k`` (``c`` wins nowhere, so no finite move makes it
win). A sample with no finite competitor therefore gets ``+inf``. Where the reference is
the prediction, ``b_c >= b_k`` always holds for equal rows, so the margin is never
``-inf``. The torch form divides by a safe denominator there, so that its gradient stays
finite (zero through those entries). The pairwise distances are differences, not the
Gram expansion ``||w_a||^2 + ||w_b||^2 - 2 w_a^T w_b``, so that equal rows give exactly
zero and close rows lose no digits to cancellation.
"""

import numpy as np

__all__ = [
    "pair_distances",
    "pair_distances_torch",
    "signed_margins",
    "signed_margins_torch",
]


def pair_distances(W):
    """``||w_a - w_b||`` for every pair of rows of ``W``: a (K, K) table.

    Computed one row at a time from the differences (memory ``K * n_features``, exact
    zeros for equal rows).

    Parameters
    ----------
    W : array-like of shape (n_classes, n_features)

    Returns
    -------
    dist : ndarray of shape (n_classes, n_classes)
        Symmetric, zero diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn._math._margin import pair_distances
    >>> pair_distances(np.array([[0.0, 0.0], [3.0, 4.0]]))
    array([[0., 5.],
           [5., 0.]])
    """
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    return np.stack([np.linalg.norm(W[a] - W, axis=1) for a in range(W.shape[0])])


def signed_margins(scores, dist, ref):
    """Eq. (6)/(14) from the scores: ``min_{k != c} (f_c - f_k) / ||w_c - w_k||``.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_classes)
        ``f_k = w_k^T z + b_k`` of every class.
    dist : ndarray of shape (n_classes, n_classes)
        ``||w_a - w_b||`` (:func:`pair_distances`).
    ref : array-like of int of shape (n_samples,)
        The reference class ``c`` of each sample (the true or the predicted class).

    Returns
    -------
    margins : ndarray of shape (n_samples,)
        Signed distances; ``+-inf`` by the equal-rows rule of the module docstring.
    k : ndarray of int of shape (n_samples,)
        The competing class that attains the minimum (``c`` itself where no class
        competes, that is where the margin is ``+inf`` for want of competitors).

    Examples
    --------
    >>> import numpy as np
    >>> from amrlearn._math._margin import pair_distances, signed_margins
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]); b = np.array([0.0, 0.0, 1.0])
    >>> S = np.array([[3.0, 1.0]]) @ W.T + b
    >>> signed_margins(S, pair_distances(W), [0])  # class 2 = class 0 shifted up
    (array([-inf]), array([2]))
    >>> signed_margins(S, pair_distances(W), [2])
    (array([2.12132034]), array([1]))
    """
    scores = np.asarray(scores, dtype=np.float64)
    ref = np.asarray(ref)
    rows = np.arange(scores.shape[0])
    gaps = scores[rows, ref][:, None] - scores  # f_c - f_k
    d = dist[ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d > 0, gaps / d, np.where(gaps >= 0, np.inf, -np.inf))
    ratio[rows, ref] = np.inf  # k != c
    k = ratio.argmin(axis=1)
    return ratio[rows, k], k


def pair_distances_torch(weight):
    """The torch form of :func:`pair_distances`, differentiable with a finite gradient.

    Parameters
    ----------
    weight : Tensor of shape (n_classes, n_features)

    Returns
    -------
    dist : Tensor of shape (n_classes, n_classes)
        Zero on the diagonal and between equal rows, where its gradient is zero (not the
        infinite one of ``sqrt`` at 0).

    Examples
    --------
    >>> import torch
    >>> from amrlearn._math._margin import pair_distances_torch
    >>> pair_distances_torch(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    tensor([[0., 5.],
            [5., 0.]])
    """
    import torch

    diff = weight[:, None, :] - weight[None, :, :]
    d2 = (diff**2).sum(-1)
    zero = d2 == 0
    return torch.where(zero, 0.0, d2.masked_fill(zero, 1.0).sqrt())


def signed_margins_torch(logits, dist, ref):
    """The torch form of :func:`signed_margins`, differentiable (autograd).

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_classes)
        ``f_k = w_k^T Phi + b_k``.
    dist : Tensor of shape (n_classes, n_classes) or None
        ``||w_a - w_b||`` (:func:`pair_distances_torch`). ``None`` leaves the gaps
        unnormalized: ``min_{k != c} f_c - f_k``, the raw logit gap.
    ref : Tensor of int of shape (n_samples,)
        The reference class of each sample.

    Returns
    -------
    margins : Tensor of shape (n_samples,)
        Differentiable in ``logits`` and ``dist``.
    k : Tensor of int64 of shape (n_samples,)
        The competing class that attains the minimum.

    Examples
    --------
    >>> import torch
    >>> from amrlearn._math._margin import pair_distances_torch, signed_margins_torch
    >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> logits = torch.tensor([[3.0, 1.0], [0.0, 2.0]]) @ W.T
    >>> signed_margins_torch(logits, pair_distances_torch(W), torch.tensor([0, 0]))[0]
    tensor([ 1.4142, -1.4142])
    """
    import torch

    ref = ref.long()
    ref1 = ref[:, None]
    gaps = logits.gather(1, ref1) - logits  # f_c - f_k
    if dist is not None:
        d = dist.index_select(0, ref)
        pos = d > 0
        ratio = gaps / torch.where(pos, d, 1.0)  # safe denominator: finite gradient
        gaps = torch.where(pos, ratio, torch.where(gaps < 0, float("-inf"), float("inf")))
    margins, k = gaps.scatter(1, ref1, float("inf")).min(dim=1)  # k != c
    return margins, k
