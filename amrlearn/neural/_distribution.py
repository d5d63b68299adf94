"""Regularizers of the margin *distribution*, the paper's open question (section 6).

AMR (objective 15) raises the batch mean of the truncated margins ``[m_i]_0^tau``. The
paper's conclusion asks which other functionals of the margin distribution promote
robustness. Three, as pure torch functions of per-sample margins (no estimator state):

* :func:`soft_min_margin_term`: a soft minimum of the truncated margins, ``-T log mean
  exp(-[m_i]_0^tau / T)``. It moves between the two ends of the paper's trade-off: the
  average margin (AMR's term) as ``T -> inf`` and the minimum margin as ``T -> 0``, so a
  finite ``T`` weights the small margins, where attacks succeed first, more than the mean
  does, without the minimum's single-sample gradient.
* :func:`margin_spread_term`: the variance of the truncated margins of the correctly
  classified samples, the second moment of the large-margin-distribution machines
  (Zhang & Zhou 2014, LDM: maximize the mean margin and minimize its variance).
* :func:`deepfool_input_margin`: a one-step input-space estimate of each sample's
  distance to the boundary, ``(z_y - z_k) / ||grad_x (z_y - z_k)||`` for the runner-up
  class ``k`` (DeepFool's first step; the quantity MMA training maximizes, Ding et al.
  2020). Differentiable with respect to the parameters through a double backward.
"""

import torch

__all__ = ["deepfool_input_margin", "margin_spread_term", "soft_min_margin_term"]


def soft_min_margin_term(margin, tau, temperature):
    """Soft minimum of the truncated margins of a batch, ``-T log mean_i exp(-[m_i]_0^tau / T)``.

    A misclassified sample (``m_i <= 0``) enters with ``[m_i]_0^tau = 0``, as in AMR's
    term. The value lies between the batch minimum and the batch mean of ``[m_i]_0^tau``:
    it tends to the mean (:func:`~amrlearn.neural._penalties.amr_margin_term`) as
    ``temperature -> inf`` and to the minimum as ``temperature -> 0``. Its gradient puts
    the weight ``softmax(-[m]_0^tau / T)_i`` on sample ``i``: most on the smallest margins.

    Parameters
    ----------
    margin : Tensor of shape (n_samples,)
        Signed margins with respect to the true labels.
    tau : float
        Truncation threshold (> 0).
    temperature : float
        ``T`` (> 0), in the margins' units.

    Returns
    -------
    term : Tensor (scalar)
        To be subtracted, times a weight, from the loss.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._distribution import soft_min_margin_term
    >>> m = torch.tensor([1.0, 3.0, -2.0])
    >>> float(soft_min_margin_term(m, 5.0, 1e3))  # about the mean of [1, 3, 0]
    1.33...
    >>> float(soft_min_margin_term(m, 5.0, 1e-3))  # about the minimum
    0.001...
    """
    _check_positive(tau=tau, temperature=temperature)
    t = margin.clamp(0.0, tau) / -temperature
    log_mean = torch.logsumexp(t, dim=0) - torch.log(t.new_tensor(float(t.numel())))
    return -temperature * log_mean


def margin_spread_term(margin, correct, tau):
    """Variance of the truncated margins ``[m_i]_0^tau`` over the correctly classified samples.

    The second moment of the margin distribution (Zhang & Zhou 2014): with AMR's mean
    term, it pushes the small margins up and holds the large ones (already capped by
    ``tau``) back. 0 when fewer than two samples are correct.

    Parameters
    ----------
    margin : Tensor of shape (n_samples,)
        Signed margins with respect to the true labels.
    correct : Tensor of bool of shape (n_samples,)
        Which samples are correctly classified.
    tau : float
        Truncation threshold (> 0).

    Returns
    -------
    term : Tensor (scalar)
        To be added, times a weight, to the loss.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._distribution import margin_spread_term
    >>> m = torch.tensor([1.0, 3.0, 9.0, -2.0])
    >>> margin_spread_term(m, torch.tensor([True, True, True, False]), 5.0)  # of [1, 3, 5]
    tensor(2.6667)
    """
    _check_positive(tau=tau)
    kept = margin[correct].clamp(0.0, tau)
    if kept.numel() < 2:
        return margin.sum() * 0.0
    return ((kept - kept.mean()) ** 2).mean()


def deepfool_input_margin(logit_fn, x, y, *, create_graph=True, eps=1e-12):
    """One DeepFool step's estimate of each sample's input-space l2 distance to the boundary.

    ``d_i = (z_y - z_k)(x_i) / ||grad_x (z_y - z_k)(x_i)||`` with ``k`` the highest-scoring
    class other than ``y``: the distance to the boundary of the net's linearization at
    ``x_i`` (exact for an affine net). Negative on a misclassified sample.

    Parameters
    ----------
    logit_fn : callable
        Maps a batch of inputs to logits of shape (n_samples, n_classes).
    x : Tensor of shape (n_samples, ...)
    y : Tensor of int of shape (n_samples,)
    create_graph : bool, default=True
        Keep the graph of the input gradient, so that ``d`` is differentiable with
        respect to the parameters (a double backward; about twice a plain step's cost).
    eps : float, default=1e-12
        Floor of the gradient's norm.

    Returns
    -------
    d : Tensor of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from amrlearn.neural._distribution import deepfool_input_margin
    >>> lin = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ...     _ = lin.bias.zero_()
    >>> deepfool_input_margin(lin, torch.tensor([[3.0, 1.0]]), torch.tensor([0]))  # 2 / sqrt(2)
    tensor([1.4142], grad_fn=<DivBackward0>)
    """
    x = x.detach().requires_grad_(True)
    logits = logit_fn(x)
    y = y.long()
    other = logits.detach().scatter(1, y[:, None], float("-inf")).argmax(dim=1)
    gap = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, other[:, None]).squeeze(1)
    (grad,) = torch.autograd.grad(gap.sum(), x, create_graph=create_graph)
    norm = grad.flatten(1).norm(dim=1).clamp_min(eps)
    return gap / norm


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}.")
