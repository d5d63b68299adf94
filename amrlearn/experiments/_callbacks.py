"""The skorch callbacks of the experiments' nets, and the curves read back from a net.

Optimizer schedules (Deep Defense's fine-tuning, MMR's learning-rate drop), the progress
bar of a cell, the orthogonality penalty's curve, and a fitted net's per-epoch history.
"""

__all__ = ["epoch_bar", "finetune_rule", "history", "optimizer_schedule", "penalty_recorder"]


def finetune_rule(start, epochs, lr, momentum, weight_decay):
    """Deep Defense's fine-tuning optimizer from epoch ``start + 1``; ``None`` before.

    The authors halve the learning rate when the fine-tuning epoch index (from 0) equals
    ``0.8 * epochs`` (the last epoch of 5), and keep it halved."""
    halve_from = 0.8 * epochs

    def rule(epoch):
        i = epoch - start - 1  # fine-tuning epoch index, from 0
        if i < 0:
            return None
        half = halve_from.is_integer() and i >= halve_from
        return {
            "lr": lr / 2 if half else lr,
            "momentum": momentum,
            "nesterov": False,
            "weight_decay": weight_decay,
        }

    return rule


def optimizer_schedule(rule, no_decay=None):
    """A skorch callback that sets the optimizer's settings (``lr``, ``momentum``...) at
    each epoch's start to ``rule(epoch)`` (epochs from 1; ``None``: unchanged).

    ``no_decay``: a pattern of parameter names (``fnmatch``) whose parameter groups keep
    ``weight_decay=0`` (the groups must hold those parameters alone:
    ``optimizer__param_groups``)."""
    from fnmatch import fnmatch

    from skorch.callbacks import Callback

    class OptimizerSchedule(Callback):
        def on_epoch_begin(self, net, **kwargs):
            settings = rule(len(net.history))
            if not settings:
                return
            exempt = {
                id(p)
                for name, p in net.module_.named_parameters()
                if no_decay is not None and fnmatch(name, no_decay)
            }
            for group in net.optimizer_.param_groups:
                group.update(settings)
                if exempt and all(id(p) in exempt for p in group["params"]):
                    group["weight_decay"] = 0.0

    return OptimizerSchedule()


def epoch_bar(desc, total, verbose):
    """A skorch callback that shows one tqdm bar per cell: which cell, and how far."""
    from skorch.callbacks import Callback

    from ..utils import progress

    class EpochBar(Callback):
        def initialize(self):
            self.bar_ = progress(total=total, desc=desc, verbose=verbose, leave=False)
            return self

        def on_epoch_end(self, net, **kwargs):
            h = net.history[-1]
            post = {k: f"{h[k]:.3f}" for k in ("train_loss", "train_acc", "valid_acc") if k in h}
            self.bar_.set_postfix(post, refresh=False)
            self.bar_.update(1)

        def on_train_end(self, net, **kwargs):
            self.bar_.close()

    return EpochBar()


def penalty_recorder():
    """A skorch callback that records the orthogonality penalty of eq. (15) after each
    epoch as ``ortho_penalty`` in the history: its curve shows whether it has levelled off.
    """
    from skorch.callbacks import Callback

    from ..neural import orthogonality_penalty

    class PenaltyRecorder(Callback):
        def on_epoch_end(self, net, **kwargs):
            import torch

            with torch.no_grad():
                value = orthogonality_penalty(net.module_)
            net.history.record("ortho_penalty", float(value.cpu()))

    return PenaltyRecorder()


def cpu_recorder():
    """A skorch callback that records the CPU seconds of each epoch (this process, all its
    threads) as ``cpu`` in the history: a cost that other work on the machine does not
    inflate, unlike ``dur``."""
    import time

    from skorch.callbacks import Callback

    class CPURecorder(Callback):
        def on_epoch_begin(self, net, **kwargs):
            self.start_ = time.process_time()

        def on_epoch_end(self, net, **kwargs):
            net.history.record("cpu", time.process_time() - self.start_)

    return CPURecorder()


def history(net):
    """Per-epoch curves of a fitted net (Figure 5)."""
    h = net.history
    out = {"epoch": [int(e) for e in h[:, "epoch"]]}
    keys = ("train_loss", "train_acc", "valid_loss", "valid_acc", "dur", "cpu", "ortho_penalty")
    for key in keys:
        try:
            out[key] = [float(v) for v in h[:, key]]
        except KeyError:
            pass
    return out
