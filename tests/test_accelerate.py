"""Training beyond one GPU: the nets under skorch's ``AccelerateMixin`` (accelerate, DDP).

In one process, an accelerate net is the plain net: same weights, predictions and
margins. In two CPU processes (gloo, rendezvous on 127.0.0.1), each process trains on
half of every batch and DDP averages the gradients; with the same batches overall (no
shuffling, half the per-process batch size) the averaged gradient is the single-process
gradient, so the weights, predictions and margins equal the single-process ones up to
floating-point summation order. The penalties look at the bare module inside the
``DistributedDataParallel`` wrapper, which the two-process run checks by keeping the
module wrapped after training (``unwrap_after_train=False``).
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amrlearn.metrics import margin_report
from amrlearn.neural import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier, models
from amrlearn.neural._features import bare_module
from amrlearn.utils._torch import as_logit_fn

accelerate = pytest.importorskip("accelerate")
from skorch.hf import AccelerateMixin  # noqa: E402  (needs accelerate)


class AccelerateAMRNet(AccelerateMixin, AMRNeuralNetClassifier):
    pass


class AccelerateAdvNet(AccelerateMixin, AdversarialNeuralNetClassifier):
    pass


def _data():
    rng = np.random.default_rng(0)
    X = rng.random((64, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1.0).astype(np.int64)
    return X, y


AMR_PARAMS = dict(
    module=models.MLP,
    module__in_features=6,
    module__hidden=8,
    module__n_classes=2,
    lam=0.5,
    beta=0.1,
    ortho_every=2,
    max_epochs=3,
    lr=0.1,
    iterator_train__shuffle=False,
    random_state=0,
    verbose=0,
)
ADV_PARAMS = dict(
    module=models.LR,
    module__in_features=6,
    module__n_classes=2,
    attack__eps=0.2,
    attack__steps=3,
    attack__step_size=0.1,
    attack__random_start=False,
    max_epochs=2,
    lr=0.1,
    iterator_train__shuffle=False,
    random_state=0,
    verbose=0,
)


def _accelerated(cls, params, **kwargs):
    return cls(
        accelerator=accelerate.Accelerator(cpu=True),
        device=None,
        callbacks__print_log__sink=print,  # accelerate's sink would ignore verbose=0
        **params,
        **kwargs,
    )


def _weights(net):
    return {k: v.detach().cpu().numpy() for k, v in bare_module(net.module_).state_dict().items()}


def test_bare_module_sees_through_wrappers():
    module = models.MLP(in_features=6, hidden=8, n_classes=2)
    assert bare_module(torch.nn.DataParallel(module)) is module
    assert bare_module(module) is module


@pytest.mark.parametrize(
    ("cls", "plain", "params"),
    [
        (AccelerateAMRNet, AMRNeuralNetClassifier, AMR_PARAMS),
        (AccelerateAdvNet, AdversarialNeuralNetClassifier, ADV_PARAMS),
    ],
)
def test_one_process_equals_plain_net(cls, plain, params):
    X, y = _data()
    ref = plain(**params, batch_size=16).fit(X, y)
    net = _accelerated(cls, params, batch_size=16).fit(X, y)
    assert getattr(net, "n_train_steps_", None) == getattr(ref, "n_train_steps_", None)
    for key, value in _weights(ref).items():
        np.testing.assert_allclose(_weights(net)[key], value, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(net.predict_proba(X), ref.predict_proba(X), rtol=1e-6)
    np.testing.assert_allclose(net.feature_margins(X, y), ref.feature_margins(X, y), rtol=1e-6)
    logits = as_logit_fn(net)(torch.as_tensor(X))
    np.testing.assert_allclose(
        logits.detach().numpy(), as_logit_fn(ref)(torch.as_tensor(X)).detach().numpy(), rtol=1e-6
    )


def test_one_process_margin_report():
    X, y = _data()
    net = _accelerated(AccelerateAMRNet, AMR_PARAMS, batch_size=16).fit(X, y)
    report = margin_report(net, X, y, upper=False)
    assert report["accuracy"] == pytest.approx(np.mean(net.predict(X) == y))
    assert np.isfinite(report["avg_feature_margin"]) and report["avg_feature_margin"] > 0


SCRIPT = """
import sys

import numpy as np
import torch
from accelerate import Accelerator
from skorch.hf import AccelerateMixin

sys.path.insert(0, {tests!r})
from test_accelerate import ADV_PARAMS, AMR_PARAMS, _data, _weights  # noqa: E402

from amrlearn.neural import AdversarialNeuralNetClassifier, AMRNeuralNetClassifier


class AMRNet(AccelerateMixin, AMRNeuralNetClassifier):
    pass


class AdvNet(AccelerateMixin, AdversarialNeuralNetClassifier):
    pass


class CPUAccelerator(Accelerator):
    # On several CPU processes, accelerate 1.15 wraps every prepared module in DDP, which
    # refuses the parameterless criterion (its multi-GPU branch skips such modules).
    def prepare_model(self, model, *args, **kwargs):
        if not any(p.requires_grad for p in model.parameters()):
            return model
        return super().prepare_model(model, *args, **kwargs)


torch.set_num_threads(1)
X, y = _data()
out = {{}}
for name, cls, params in [("amr", AMRNet, AMR_PARAMS), ("adv", AdvNet, ADV_PARAMS)]:
    accelerator = CPUAccelerator(cpu=True)
    assert accelerator.num_processes == 2, accelerator.num_processes
    net = cls(
        accelerator=accelerator, device=None, unwrap_after_train=False,
        callbacks__print_log__sink=print, batch_size=8, **params,
    ).fit(X, y)
    # Still wrapped: the penalties and margins look through the wrapper.
    assert isinstance(net.module_, torch.nn.parallel.DistributedDataParallel)
    for key, value in _weights(net).items():
        out[f"{{name}}_w_{{key}}"] = value
    out[f"{{name}}_proba"] = net.predict_proba(X)
    out[f"{{name}}_margins"] = net.feature_margins(X, y)
    if name == "amr":
        with torch.no_grad():
            out["amr_penalty"] = float(net.penalties_["ortho"].value(net.bare_module_))
if accelerator.is_main_process:
    np.savez({out!r}, **out)
accelerator.wait_for_everyone()
torch.distributed.destroy_process_group()  # a clean gloo shutdown in both processes
"""


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    """Two gloo processes with 8 samples each per step equal one process with 16."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch has no gloo backend")
    out = tmp_path / "out.npz"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            ACCELERATE_USE_CPU="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            WORLD_SIZE="2",
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE="2",
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("the two processes did not finish in 120 s")
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)

    got = np.load(out)
    X, y = _data()
    for name, plain, params in [
        ("amr", AMRNeuralNetClassifier, AMR_PARAMS),
        ("adv", AdversarialNeuralNetClassifier, ADV_PARAMS),
    ]:
        ref = plain(**params, batch_size=16).fit(X, y)
        for key, value in _weights(ref).items():
            np.testing.assert_allclose(got[f"{name}_w_{key}"], value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[f"{name}_proba"], ref.predict_proba(X), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            got[f"{name}_margins"], ref.feature_margins(X, y), rtol=1e-5, atol=1e-6
        )
        if name == "amr":
            with torch.no_grad():
                penalty = float(ref.penalties_["ortho"].value(ref.bare_module_))
            assert got["amr_penalty"] == pytest.approx(penalty, rel=1e-5)
