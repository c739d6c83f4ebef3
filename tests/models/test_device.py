"""Device plumbing of the neural models, checked on the CPU (this machine has no GPU).

* ``RunOptions.device`` is validated and resolved (``auto``, ``cuda`` on a machine without CUDA,
  ``cuda:N`` beyond the GPUs there are, with a faked CUDA runtime);
* every neural model in ``MODELS`` reads the run's device (``torch_device(options)``) and, during
  its fit, every module's parameters and every tensor entering a module are on that device;
* a training epoch reads nothing back to the host per batch: calls to ``Tensor.cpu``,
  ``.item``, ``.numpy``, ``.tolist`` and ``float(tensor)`` are bounded by a constant per epoch
  while each epoch runs several batches (DiffRec and L-DiffRec copy one (B,) loss vector per
  batch for their step sampler, which needs it before the next batch: they are bounded per
  batch instead).
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError
from genrec.evaluation.runner import protocol_block, run_benchmark
from genrec.models import MODELS, Pop
from genrec.models.neural import MixedPrecision
from genrec.options import RunOptions, resolve_device

from . import (
    test_bert4rec,
    test_bpr,
    test_cdae,
    test_diffrec,
    test_gru4rec,
    test_irgan,
    test_ldiffrec,
    test_listcvae,
    test_mmdense,
    test_mmvae_mmdiffrec,
    test_multdae,
    test_multvae,
    test_recvae,
    test_sasrec,
    test_tiger,
    test_vbpr,
)

# every MODELS entry that trains torch tensors -> the contract class giving its tiny config
# and world (the contract's own tests are not collected here: only the modules are imported)
NEURAL = {
    "bpr": test_bpr.TestBPR,
    "multdae": test_multdae.TestMultDAE,
    "cdae": test_cdae.TestCDAE,
    "multvae": test_multvae.TestMultVAE,
    "recvae": test_recvae.TestRecVAE,
    "diffrec": test_diffrec.TestDiffRec,
    "ldiffrec": test_ldiffrec.TestLDiffRec,
    "irgan": test_irgan.TestIRGAN,
    "listcvae": test_listcvae.TestListCVAE,
    "gru4rec": test_gru4rec.TestGRU4RecBPRMax,  # sampled negatives too
    "sasrec": test_sasrec.TestSASRecBCE,  # sampled negatives too
    "gsasrec": test_sasrec.TestGSASRec,
    "bert4rec": test_bert4rec.TestBERT4Rec,
    "tiger": test_tiger.TestTIGER,
    "vbpr": test_vbpr.TestVBPR,
    "mmdense": test_mmdense.TestMultimodalDense,
    "mmvae": test_mmvae_mmdiffrec.TestMultimodalVAE,
    "mmdiffrec": test_mmvae_mmdiffrec.TestMultimodalDiffRec,
}
NOT_NEURAL = {
    "pop",
    "itemknn",
    "ease",
    "ials",
    "bpr-implicit",
    "dense",
    "bm25",
    "llm",
    "gpt4rec",
}  # numpy, implicit or no fit
# the step sampler's (B,) losses, once per batch
PER_BATCH_COPIES = {"diffrec", "ldiffrec", "mmdiffrec"}
EPOCHS = 2
BATCH = 16  # several batches per epoch on the tiny worlds (120 users)
OPTIONS = RunOptions(seed=0, threads=1, device="cpu")


def test_every_model_is_classified():
    assert set(NEURAL) | NOT_NEURAL == set(MODELS)


def small(contract) -> tuple[dict, object]:
    """(config, world): the contract's tiny config cut to EPOCHS epochs of BATCH-row batches."""
    fields = {f.name for f in dataclasses.fields(contract.model_cls.Config)}
    cuts = {"max_epochs": EPOCHS, "epochs": EPOCHS, "pretrain_epochs": 1, "batch_size": BATCH}
    config = {**contract.config, **{k: v for k, v in cuts.items() if k in fields}}
    return config, contract().world()


class DeviceLog(torch.overrides.TorchFunctionMode):
    """The devices of every tensor passed to any torch function or method while active: the
    parameters, batches and masks of every operation a fit runs, whether it goes through a
    module call or through bare tensors."""

    def __init__(self):
        super().__init__()
        self.devices: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in (*args, *kwargs.values()):
            for tensor in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(tensor, torch.Tensor):
                    device = str(tensor.device)
                    self.devices[device] = self.devices.get(device, 0) + 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("name", sorted(NEURAL))
def test_the_run_device_reaches_every_tensor_and_module(name, monkeypatch):
    model_cls = MODELS[name]
    config, world = small(NEURAL[name])
    module = sys.modules[model_cls.__module__]
    asked = []
    real = module.torch_device
    monkeypatch.setattr(
        module, "torch_device", lambda options: asked.append(options) or real(options)
    )
    with DeviceLog() as log:
        model = model_cls(config).fit(world.split.train, options=OPTIONS)
    assert asked and all(o.device == "cpu" for o in asked)  # the fit read the run's device
    assert log.devices.get("cpu", 0) > 100 and set(log.devices) == {"cpu"}
    for value in vars(model).values():
        if isinstance(value, torch.nn.Module):
            assert {str(p.device) for p in value.parameters()} <= {"cpu"}


def count_host_reads(monkeypatch) -> list[str]:
    """Patch the Tensor methods that copy to (or synchronise with) the host; return the log of
    the calls made from genrec's code."""
    log: list[str] = []
    for cls, name in (
        (torch.Tensor, "cpu"),
        (torch.Tensor, "item"),
        (torch.Tensor, "numpy"),
        (torch.Tensor, "tolist"),
        (torch.Tensor, "__float__"),
    ):
        original = getattr(cls, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("genrec"):  # genrec's own reads, not torch's (CPU Adam's step)
                log.append(f"{_name} in {caller}:{sys._getframe(1).f_lineno}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)
    return log


@pytest.mark.parametrize("name", sorted(NEURAL))
def test_training_reads_the_host_once_per_epoch_not_per_batch(name, monkeypatch):
    config, world = small(NEURAL[name])
    model = MODELS[name](config)
    train = world.split.train
    n_batches = -(-train.n_users // BATCH)  # at least this many batches per epoch
    log = count_host_reads(monkeypatch)
    model.fit(train, options=OPTIONS)
    monkeypatch.undo()
    epochs = getattr(model, "epochs_run_", EPOCHS)
    assert n_batches >= 6
    if name in PER_BATCH_COPIES:
        assert len(log) <= 3 * n_batches * epochs + 4, log  # .numpy of the CPU steps + to_numpy
    else:
        assert len(log) <= 4 * epochs + 8, log  # a constant per epoch: < n_batches


def test_auto_is_the_cpu_here_and_cpu_needs_no_torch_call():
    assert not torch.cuda.is_available()  # the premise of the tests below
    assert resolve_device("auto") == "cpu"
    assert RunOptions(device="auto").pinned().device == "cpu"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "", "cuda:", 0, None])
def test_bad_device_strings_name_the_allowed_ones(device):
    with pytest.raises(ConfigError, match="cpu, cuda, cuda:N, mps, auto") as err:
        RunOptions(device=device)
    assert repr(device) in str(err.value)


def test_cuda_without_a_gpu_says_so_and_how_to_fix_it():
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="no CUDA GPU.*--device cpu or --device auto"):
            RunOptions(device=device).pinned()


def test_a_fitted_model_refuses_a_missing_gpu_before_training():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        MODELS["multvae"]().fit(planted_clusters().split.train, options=RunOptions(device="cuda"))


def test_with_a_faked_cuda_runtime_auto_and_indices_resolve(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    options = RunOptions(device="auto", threads=1).pinned()
    assert options.device == "cuda"
    with pytest.raises(ConfigError, match="2 CUDA device.*cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_mixed_precision_is_off_on_the_cpu_and_steps_like_plain_training():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    twin = torch.nn.Linear(4, 1)
    twin.load_state_dict(net.state_dict())
    x = torch.randn(8, 4)
    amp = MixedPrecision(torch.device("cpu"))
    assert not amp.enabled and amp.scaler is None
    opt, twin_opt = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (net, twin))
    with amp.autocast():
        loss = net(x).square().mean()
    assert loss.dtype == torch.float32
    amp.step(loss, opt)
    twin_opt.zero_grad()
    twin(x).square().mean().backward()
    twin_opt.step()
    assert torch.equal(net.weight, twin.weight)


def test_results_record_the_device_they_ran_on():
    world = planted_clusters()
    result = run_benchmark(
        world.split,
        {"pop": Pop},
        protocol=protocol_block(world.data, world.split),
        options=RunOptions(seed=0, threads=1, device="auto"),
    )
    assert result.protocol["device"] == "cpu"
    assert result.to_dict()["protocol"]["device"] == "cpu"


def test_bfloat16_precision_autocasts_on_the_cpu_when_asked():
    amp = MixedPrecision(torch.device("cpu"), precision="bfloat16")
    assert amp.enabled and amp.scaler is None
    with amp.autocast():
        out = torch.nn.Linear(4, 2)(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    assert not MixedPrecision(torch.device("cpu"), precision="float32").enabled


def test_a_bfloat16_fit_trains_float32_weights_and_scores_finitely():
    config, world = small(NEURAL["sasrec"])
    options = dataclasses.replace(OPTIONS, precision="bfloat16")
    model = MODELS["sasrec"](config).fit(world.split.train, options=options)
    assert {p.dtype for p in model.net_.parameters()} == {torch.float32}
    histories = world.split.train.user_item_order[:5]
    assert torch.isfinite(torch.from_numpy(model.score(histories))).all()
    plain = MODELS["sasrec"](config).fit(world.split.train, options=OPTIONS)
    assert plain.loss_history_ != model.loss_history_  # the forward pass did change


def test_bad_precision_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="auto, float32, bfloat16.*'fp8'"):
        RunOptions(precision="fp8")
