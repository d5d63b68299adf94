"""Does the hand-written backward of AMR's margin term pay, against autograd?

The margin term of objective (15), ``mean_i [m_i]_0^tau`` over the correctly classified
samples with ``m_i`` the signed margin of eq. (14), is computed two ways from the same
logits and last-layer weight:

* fused: :func:`amrlearn.neural._penalties.amr_margin_loss`, one
  ``torch.autograd.Function`` whose forward is the torch form below, run without
  autograd, and whose backward is written by hand;
* autograd: :func:`amrlearn._math._margin.signed_margins_torch` on
  :func:`~amrlearn._math._margin.pair_distances_torch`, then
  :func:`~amrlearn.neural._penalties.amr_margin_term`, differentiated by autograd.

Each is timed forward and backward (to the logits and the weight), at the shapes of the
nets' last layers (10 classes; 84 features for LeNet, 1024 for the MLP), next to one
whole training step of the MLP (784-1024-10, cross-entropy, forward and backward) for
scale. The two are interleaved, ``--repeats`` rounds of ``--inner`` calls each, and each
keeps its fastest round. On the CPU the clock is this process's CPU time (single
thread: other processes on a shared machine do not enter it); on CUDA the wall clock.

Usage: ``python benchmarks/bench_margin_backward.py [--quick] [--repeats R]
[--inner N] [--threads T] [--device cpu|cuda|auto] [--out FILE.json]``.
"""

import time

import torch
from _bench_common import make_parser, resolve_device, write_result

from amrlearn._math._margin import pair_distances_torch, signed_margins_torch
from amrlearn.neural._penalties import amr_margin_loss, amr_margin_term

TAU = 0.5


def fused(logits, weight, y):
    return amr_margin_loss(logits, weight, y, TAU)


def autograd(logits, weight, y):
    m = signed_margins_torch(logits, pair_distances_torch(weight), y)[0]
    return amr_margin_term(m, logits.argmax(1) == y, TAU)


def _inputs(n, c, d, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(n, d, generator=g).to(device)
    weight = (torch.randn(c, d, generator=g) / d**0.5).to(device).requires_grad_(True)
    bias = torch.zeros(c, device=device)
    y = torch.randint(0, c, (n,), generator=g).to(device)
    logits = (phi @ weight.detach().T + bias).requires_grad_(True)
    return logits, weight, y


def _clock(device):
    return time.perf_counter if device.type == "cuda" else time.process_time


def _round(call, args, inner, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = _clock(device)()
    for _ in range(inner):
        logits, weight, _ = args
        logits.grad = weight.grad = None
        call(*args).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (_clock(device)() - start) / inner


def _mlp_step(n, device):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)
    ).to(device)
    x, y = torch.rand(n, 784, device=device), torch.randint(0, 10, (n,), device=device)

    def step():
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()

    return step


def main():
    parser = make_parser(__doc__, repeats=7, device="cpu")
    parser.add_argument("--inner", type=int, default=100, help="calls per timed round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = []
    for n, d in [(128, 84), (128, 1024), (512, 1024)]:
        inputs = _inputs(n, 10, d, device)
        # Same value and gradient, so that the timing compares like with like.
        grads = []
        for call in (fused, autograd):
            inputs[0].grad = inputs[1].grad = None
            value = call(*inputs)
            value.backward()
            grads.append((value.item(), inputs[0].grad.clone(), inputs[1].grad.clone()))
        assert abs(grads[0][0] - grads[1][0]) <= 1e-6 * max(1.0, abs(grads[0][0]))
        assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-7)
        assert torch.allclose(grads[0][2], grads[1][2], rtol=1e-4, atol=1e-6)
        times = {"fused": [], "autograd": [], "mlp_step": []}
        step = _mlp_step(n, device)
        for call in (fused, autograd):
            _round(call, inputs, 5, device)  # warm-up
        for _ in range(args.repeats):
            for name, call in (("fused", fused), ("autograd", autograd)):
                times[name].append(_round(call, inputs, args.inner, device))
            start = _clock(device)()
            for _ in range(max(1, args.inner // 10)):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times["mlp_step"].append((_clock(device)() - start) / max(1, args.inner // 10))
        best = {k: min(v) for k, v in times.items()}
        row = {
            "batch": n,
            "classes": 10,
            "features": d,
            **{f"{k}_us": round(1e6 * v, 1) for k, v in best.items()},
            "autograd_over_fused": round(best["autograd"] / best["fused"], 2),
            "saving_in_mlp_steps_pct": round(
                100 * (best["autograd"] - best["fused"]) / best["mlp_step"], 1
            ),
        }
        rows.append(row)
        print(row)
    write_result(
        {"threads": args.threads, "repeats": args.repeats, "inner": args.inner, "rows": rows},
        "bench_margin_backward",
        device,
        args.out,
    )


if __name__ == "__main__":
    main()
