"""The training fast path (issue 21): the fused spectral loss equals the tensor formula it replaces (random spectra,
odd sizes, exact zeros, masked bands); the ONNX Runtime teacher resumes bit-identically; non-finite batches are found by
looking at the tensors, and an ordinary error whose message happens to say "inf" is raised, not skipped."""
import json
import pytest, torch
from dfnb.losses import compressed_mse, _cmse_eager, MultiResSpecLoss, stft_frames
from dfnb.train import train_cli, Trainer, TrainConfig, build_model, epoch_batches
from test_train_cli import args          # the same command line on the tiny `corpus` of conftest.py
from dfnb.dfnet4 import TINY


@pytest.mark.parametrize("seed", range(6))
def test_fused_loss_equals_tensor_formula_float64(seed):
    "Random shapes (odd sizes included), zeros, f_u and a masked band: value 1e-12, gradient 1e-9 of its scale (float64)."
    g = torch.Generator().manual_seed(seed)
    shape = tuple(int(v) for v in torch.randint(1, 40, (3,), generator=g))
    y = torch.randn(shape, dtype=torch.complex128, generator=g) * 10 ** float(torch.empty(()).uniform_(-4, 0, generator=g))
    s = y + 0.3 * y.abs().mean() * torch.randn(shape, dtype=torch.complex128, generator=g)
    y.view(-1)[::5] = 0
    kw = dict(gamma=0.3, f_m=float(torch.rand((), generator=g)) * 500, f_c=float(torch.rand((), generator=g)) * 500,
              f_u=1.0 + seed % 2, max_bin=torch.randint(0, shape[-1] + 1, (shape[0],), generator=g) if seed % 3 else None)
    a, b = y.clone().requires_grad_(), y.clone().requires_grad_()
    la = compressed_mse(a, s, **kw)
    keep = None if kw["max_bin"] is None else (torch.arange(shape[-1]) <= kw["max_bin"][:, None, None]).double().expand(shape)
    lb = _cmse_eager(b, s, kw["gamma"], kw["f_m"], kw["f_c"], kw["f_u"], keep)
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=0)
    la.backward(); lb.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-9 * float(b.grad.abs().max()) + 1e-300)


def test_multires_loss_gradient_through_frames_float64():
    "MultiResSpecLoss with stft_frames (fold backward) == with torch.stft (as_strided backward), odd length."
    torch.manual_seed(0)
    y, s = torch.randn(2, 1, 4799, dtype=torch.float64), torch.randn(2, 1, 4799, dtype=torch.float64)
    m = MultiResSpecLoss([256, 512], gamma=0.3, factor=500, f_complex=500).double()
    ya, yb = y.clone().requires_grad_(), y.clone().requires_grad_()
    la = m(ya, s)
    lb = sum(_cmse_eager(torch.stft(yb.reshape(-1, 4799), n, n // 4, window=getattr(m, f"win{n}").double(), normalized=True,
                                    return_complex=True).mT,
                         torch.stft(s.reshape(-1, 4799), n, n // 4, window=getattr(m, f"win{n}").double(), normalized=True,
                                    return_complex=True).mT, 0.3, 500, 500, 1.0) for n in (256, 512))
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=0)
    la.backward(); lb.backward()
    torch.testing.assert_close(ya.grad, yb.grad, rtol=1e-9, atol=1e-12)
    assert stft_frames(torch.zeros(1, 300), torch.hann_window(256), 64).shape == (1, 5, 129)


def test_onnx_teacher_resume_is_bit_identical(corpus, tmp_path):
    "The default teacher on a CPU (official DFN3 in ONNX Runtime): 1 + 2 resumed steps == 3 steps, bit for bit."
    a, b = tmp_path / "straight", tmp_path / "resumed"
    assert train_cli(args(corpus, a, "--teacher", "dfnet3")) == 0
    assert train_cli(args(corpus, b, "--teacher", "dfnet3", "--stop-at", "1")) == 0
    assert train_cli(args(corpus, b, "--teacher", "dfnet3", "--resume")) == 0
    ca, cb = (torch.load(d / "checkpoints" / "last.pt", weights_only=True) for d in (a, b))
    for k, v in ca["model_state_dict"].items(): assert torch.equal(v, cb["model_state_dict"][k]), k
    log = [json.loads(l) for l in (a / "log.jsonl").read_text().splitlines() if "lr" in l]
    assert "kd_spec" in log[-1]


def test_teacher_backend_choice(capsys, corpus, tmp_path):
    from dfnb.train import _teacher
    from dfnb.official import OnnxDfNet3
    from dfnb.dfnet3 import DfNet3
    assert isinstance(_teacher("dfnet3"), OnnxDfNet3) and isinstance(_teacher("dfnet3", "torch"), DfNet3)
    with pytest.raises(ValueError, match="official DFN3 only"): _teacher("some.pt", "onnx")
    assert train_cli(args(corpus, tmp_path / "run", "--teacher", "dfnet3", steps=1)) == 0
    err = capsys.readouterr().err
    assert "fused Numba spectral loss" in err and "OnnxDfNet3 (ONNX Runtime)" in err


def _trainer(corpus, tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=2, batch_size_scheduling="0/2", max_sample_len_s=0.6, seed=0)
    t = Trainer(build_model("dfnet4lite", TINY), corpus / "dataset.cfg", corpus, tmp_path / "run", cfg)
    return t, t.collate([t.train_ds[i] for i in epoch_batches(len(t.train_ds), 2, 0, 0)[0]])


def test_non_finite_outputs_are_found_in_the_tensors(corpus, tmp_path, monkeypatch):
    t, b = _trainer(corpus, tmp_path)
    real = t.net.forward
    monkeypatch.setattr(t.net, "forward", lambda *a: {k: v * float("inf") if k == "lsnr" else v for k, v in real(*a).items()})
    rec = t.train_step(b)
    assert rec.get("skipped") and t.n_skipped == 1


@pytest.mark.parametrize("msg", ["information about the batch", "inference failed", "infeasible shape"])
def test_errors_that_mention_inf_are_raised(corpus, tmp_path, monkeypatch, msg):
    "The old check matched 'nan'/'inf'/'finite' in the message text and skipped real errors; now they propagate."
    t, b = _trainer(corpus, tmp_path)
    def boom(*a): raise RuntimeError(msg)
    monkeypatch.setattr(t.net, "forward", boom)
    with pytest.raises(RuntimeError, match=msg): t.train_step(b)
    assert t.n_skipped == 0
