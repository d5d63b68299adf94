"""Pure torch maths shared by the attacks and the margin bounds.

Torch is imported inside the functions.
"""

import numpy as np

__all__ = ["flat_norm", "uniform_l2_ball"]


def flat_norm(t):
    """Per-sample l2 norm of ``t``, shaped ``(n, 1, ..., 1)`` to broadcast against ``t``.

    Examples
    --------
    >>> import torch
    >>> from amrlearn.utils._math import flat_norm
    >>> flat_norm(torch.ones(2, 1, 2, 2)).flatten().tolist()
    [2.0, 2.0]
    """
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


def uniform_l2_ball(shape, eps, *, generator=None, device=None, dtype=None):
    """Draw perturbations uniformly from the l2 ball of radius ``eps``.

    The direction is a normalized Gaussian vector and the radius is ``eps * U**(1/d)``
    with ``U`` uniform on [0, 1] and ``d`` the number of entries of one sample: the
    radius then has the density ``d r^(d-1) / eps^d`` of the uniform law on the ball
    (not ``eps * U``, which crowds the centre).

    Parameters
    ----------
    shape : tuple of int
        ``(n_samples, *sample_shape)``.
    eps : float or tensor of shape (n_samples,)
        Radius of the ball.
    generator : torch.Generator, default=None
        Source of randomness (torch's global one when None).
    device, dtype : torch device and dtype, default=None

    Returns
    -------
    delta : tensor of shape ``shape``

    Examples
    --------
    >>> import torch
    >>> from amrlearn.attacks import uniform_l2_ball
    >>> d = uniform_l2_ball((5, 3, 4), 0.5, generator=torch.Generator().manual_seed(0))
    >>> bool((d.flatten(1).norm(dim=1) <= 0.5).all())
    True
    """
    import torch

    direction = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    direction = direction / flat_norm(direction).clamp_min(torch.finfo(direction.dtype).tiny)
    d = int(np.prod(shape[1:]))
    u = torch.rand(shape[0], generator=generator, device=device, dtype=direction.dtype)
    eps = torch.as_tensor(eps, device=direction.device, dtype=direction.dtype)
    radius = eps * u.pow(1.0 / d)
    return direction * radius.view(-1, *[1] * (len(shape) - 1))
