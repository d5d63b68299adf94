"""The authors' l2 PGD as their test.sh runs it, to set beside ``amrlearn evaluate``.

watml/rob-margin's testModel.py calls advertorch's ``L2PGDAttack`` (eps from test.sh,
``nb_iter=1000``, ``eps_iter=0.01``, ``rand_init=True``, box [0, 1], summed
cross-entropy) and counts a point robust when the *last* iterate is classified right.
This script does the same steps, written from that description:

* start: a uniform random image in [0, 1], minus ``x``, shrunk into the l2 ball, then
  clipped to the box;
* step: ``delta += 0.01 * g / max(||g||, floor)``, clip ``x + delta`` to the box, then
  shrink ``delta`` into the ball; advertorch's ``floor`` is 1e-6 (amrlearn's L2PGD: 1e-12);
* no early stop, no best iterate: the 1000th iterate decides.

Usage (one thread; the checkpoints fetched as docs/reproduction.md says)::

    python their_pgd.py CHECKPOINT EPS [--n-points 100] [--floor 1e-6]

It evaluates the first ``--n-points`` of the 1,000-point subset that ``amrlearn evaluate``
draws (seed 0), and prints the robust accuracy and how often the floor shortened a step.
"""

import argparse
import json

import torch

from amrlearn.datasets import load_mnist
from amrlearn.evaluation._evaluate import _subset
from amrlearn.neural import load_checkpoint


def their_pgd(model, x, y, eps, steps=1000, step_size=0.01, floor=1e-6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = len(x)

    def shrink(d):
        norm = d.flatten(1).norm(dim=1).clamp_min(1e-30)
        return d * torch.clamp(eps / norm, max=1.0).view(n, 1, 1, 1)

    delta = shrink(torch.rand(x.shape, generator=gen) - x)
    delta = (x + delta).clamp(0, 1) - x
    short = 0
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x + delta)[0], y, reduction="sum")
        (g,) = torch.autograd.grad(loss, delta)
        gnorm = g.flatten(1).norm(dim=1)
        short += int((gnorm < floor).sum())
        delta = delta.detach() + step_size * g / gnorm.clamp_min(floor).view(n, 1, 1, 1)
        delta = shrink((x + delta).clamp(0, 1) - x)
    with torch.no_grad():
        robust = model((x + delta).clamp(0, 1))[0].argmax(1) == y
    return robust, short / (n * steps), delta.flatten(1).norm(dim=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("eps", type=float)
    parser.add_argument("--n-points", type=int, default=100)
    parser.add_argument("--floor", type=float, default=1e-6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_mnist(subset="test", flatten=False, return_X_y=True)
    idx = _subset(len(y), 1000, 0)[: args.n_points]
    x, t = torch.from_numpy(X[idx]), torch.from_numpy(y[idx]).long()
    model = load_checkpoint("CNN", args.checkpoint)
    with torch.no_grad():
        clean = model(x)[0].argmax(1) == t
    x0 = x.clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(model(x0)[0], t, reduction="sum")
    (g0,) = torch.autograd.grad(ce, x0)
    tiny = float((g0.flatten(1).norm(dim=1) < 1e-6).float().mean())
    robust, short, dist = their_pgd(model, x, t, args.eps, floor=args.floor)
    print(
        json.dumps(
            {
                "checkpoint": args.checkpoint.rsplit("/", 1)[-1],
                "eps": args.eps,
                "n_points": int(len(t)),
                "floor": args.floor,
                "clean": float(clean.float().mean()),
                "robust_their_pgd": float(robust.float().mean()),
                "share_of_steps_shortened_by_floor": short,
                "share_of_clean_points_grad_below_1e-6": tiny,
                "median_final_perturbation_norm": float(dist.median()),
            }
        )
    )


if __name__ == "__main__":
    main()
