"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard 2016): the l2 multiclass minimum-norm attack.

The attack: :class:`DeepFool` runs the unrolled iterations of
:func:`~amrlearn._math._deepfool.deepfool_perturbation` (DeepFool's mathematics, pure
functions of tensors shared with Deep Defense, live in :mod:`amrlearn._math._deepfool` and
are re-exported here) and then tightens the point by bisection along the segment from
``x``.
"""

from numbers import Integral, Real

from .._math._deepfool import class_gap_gradients, deepfool_perturbation, deepfool_step
from ..utils._compat import Interval
from ..utils._inputs import CLIP_CONSTRAINT, check_clip
from ._base import MinimizationAttack
from ._search import _finish, boundary_search

__all__ = ["DeepFool", "class_gap_gradients", "deepfool_perturbation", "deepfool_step"]


class DeepFool(MinimizationAttack):
    """DeepFool, l2 and multiclass: jumps to the closest boundary of the linearized model.

    Each iteration computes every class's logit gap and its gradient (one Jacobian for
    the whole batch) and moves to the closest hyperplane of the linearization, with a
    small overshoot. The point found is then pulled back towards ``x`` by bisection along
    the segment, keeping it misclassified: on an affine model the result is the closest
    boundary point (eq. (7)) up to the bisection's precision, ``2**-refine_steps`` of the
    distance.

    Parameters
    ----------
    max_iter : int, default=50
        Maximal number of jumps; a sample stops once it is misclassified.
    overshoot : float, default=0.02
        Relative overshoot of each iterate (the paper's 0.02).
    refine_steps : int, default=20
        Bisection steps along the segment from ``x`` to the point found; ``0`` keeps the
        point as it is.
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        The data box. ``X`` must lie in it. ``None`` disables clipping.
    batch_size : int, default=256
        Samples attacked at once by ``__call__``.
    device : str, torch.device or None, default=None
        Where to run; ``None`` keeps the model where it is.
    verbose : int, default=0
        0 silences the progress bar.
    random_state : int, RandomState instance or None, default=None
        Unused (DeepFool is deterministic); kept for a uniform interface.

    See Also
    --------
    FMN : The fast minimum-norm attack.
    MinimumNormEnsemble : Runs several attacks and keeps the closest verified point.
    deepfool_perturbation : The differentiable iterations.

    Notes
    -----
    ``attack(model, X, y)`` returns ``(X_adv, distances)``: ``0`` where ``x`` is already
    misclassified, ``inf`` (and ``X_adv = x``) where no adversarial point was found.
    Every returned point is checked by a forward pass. The model must process samples
    independently and be differentiable by ``torch.func`` (eval mode does both).

    References
    ----------
    S.-M. Moosavi-Dezfooli, A. Fawzi, P. Frossard. DeepFool: a simple and accurate
    method to fool deep neural networks. CVPR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from amrlearn.attacks import DeepFool
    >>> from amrlearn.metrics import linear_margins
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(60, 3)).astype(np.float32); y = np.digitize(X.sum(1), [1.2, 1.8])
    >>> clf = LogisticRegression().fit(X, y)
    >>> X_adv, dist = DeepFool(clip=None)(clf, X, clf.predict(X))
    >>> bool(np.allclose(dist, linear_margins(clf, X), rtol=1e-4, atol=1e-7))
    True
    """

    _parameter_constraints: dict = {
        **MinimizationAttack._parameter_constraints,
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "overshoot": [Interval(Real, 0, None, closed="neither")],
        "refine_steps": [Interval(Integral, 0, None, closed="left")],
        "clip": CLIP_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        max_iter=50,
        overshoot=0.02,
        refine_steps=20,
        clip=(0.0, 1.0),
        batch_size=256,
        device=None,
        verbose=0,
        random_state=None,
    ):
        self.max_iter = max_iter
        self.overshoot = overshoot
        self.refine_steps = refine_steps
        self.clip = clip
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def run(self, fn, x, y, *, generator=None):
        """Attack one batch of tensors on the device.

        Parameters
        ----------
        fn : callable
            ``fn(x) -> logits``; its mode is the caller's business.
        x : tensor of shape (n, ...)
        y : tensor of shape (n,) of int64
            Class indices to move away from.
        generator : torch.Generator, default=None
            Unused.

        Returns
        -------
        x_adv : tensor like ``x``
        distances : tensor of shape (n,)
            ``||x_adv - x||``, ``inf`` where nothing adversarial was found.
        """
        import torch

        clip = check_clip(self.clip)
        x = x.detach()
        x_adv, _, _ = deepfool_perturbation(
            fn, x, y, max_iter=self.max_iter, overshoot=self.overshoot, clip=clip
        )
        with torch.no_grad():
            x_adv = boundary_search(fn, x, x_adv, y, steps=self.refine_steps)
            return _finish(fn, x, x_adv, y, clip)
