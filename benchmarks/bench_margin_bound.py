"""amrlearn ``lipschitz_margin_bound`` against ART's ``clever_u`` (pinned 1.20.1).

Same model (an MLP trained here on MNIST), same points, same radius, same sample
budget: amrlearn draws ``n_batches * batch_size`` points per sample and takes one
Jacobian per batch for all classes; ART's ``clever_u`` (with ``nb_batches=n_batches``,
``batch_size=batch_size``, ``pool_factor=n_batches``) draws a pool of the same
``n_batches * batch_size`` points for each of the K - 1 other classes and computes two
class gradients per point and class. ART fits a reverse Weibull to the batch maxima
where amrlearn takes the largest sampled norm (the paper's estimator), so the scores
differ somewhat; both are printed side by side. Neither clips to the data box.

    python benchmarks/bench_margin_bound.py [--quick] [--device cpu|cuda] [--out FILE.json]
"""

import numpy as np
import torch
from _bench_common import best_time, load_data, make_parser, resolve_device, train_mlp, write_result

from amrlearn.metrics import lipschitz_margin_bound


def main(argv=None):
    parser = make_parser(__doc__, full="the paper's 50 x 1024 budget", device="auto")
    args = parser.parse_args(argv)
    from art.estimators.classification import PyTorchClassifier
    from art.metrics import clever_u

    device = resolve_device(args.device)
    if args.full:
        n_points, n_batches, batch_size = 20, 50, 1024
    else:
        n_points, n_batches, batch_size = 3, 2, 64
    radius = 5.0
    data, Xtr, ytr, Xte, _ = load_data(6000, n_points)
    net = train_mlp(Xtr, ytr).to(device)
    n_classes = 10
    print(
        f"{data}: MLP, {n_points} points, radius {radius}, budget {n_batches} x {batch_size}, "
        f"device {device}"
    )

    ours, t_ours, _ = best_time(
        lambda: lipschitz_margin_bound(
            net, Xte, radius=radius, n_batches=n_batches, batch_size=batch_size, random_state=0
        ),
        device=device,
    )

    classifier = PyTorchClassifier(
        model=net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(Xte.shape[1],),
        nb_classes=n_classes,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )
    np.random.seed(0)  # noqa: NPY002 -- ART's clever draws from numpy's global generator
    art_scores, t_art, _ = best_time(
        lambda: np.array(
            [
                clever_u(
                    classifier,
                    x,
                    nb_batches=n_batches,
                    batch_size=batch_size,
                    radius=radius,
                    norm=2,
                    pool_factor=n_batches,
                    verbose=False,
                )
                for x in Xte
            ],
            dtype=float,
        ),
        device=device,
    )
    speedup = t_art / t_ours
    print(f"{'point':>5} {'amrlearn':>10} {'ART clever_u':>13}")
    for i, (a, b) in enumerate(zip(ours, art_scores)):
        print(f"{i:>5} {a:>10.4f} {b:>13.4f}")
    print(
        f"time per point: amrlearn {t_ours / n_points:.3f}s, ART {t_art / n_points:.3f}s "
        f"-> speedup x{speedup:.1f} (target >= 10)"
    )
    import art

    out = {
        "peer": f"adversarial-robustness-toolbox=={art.__version__}",
        "data": data,
        "n_points": n_points,
        "radius": radius,
        "n_batches": n_batches,
        "batch_size": batch_size,
        "art_pool_factor": n_batches,
        "amrlearn_s_per_point": t_ours / n_points,
        "art_s_per_point": t_art / n_points,
        "speedup": speedup,
        "amrlearn_bound": ours.tolist(),
        "art_clever_u": art_scores.tolist(),
        "relative_difference": (np.abs(ours - art_scores) / np.abs(art_scores)).tolist(),
    }
    write_result(out, "bench_margin_bound", device, args.out)
    return out


if __name__ == "__main__":
    main()
