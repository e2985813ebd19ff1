"""dfnb.mamba against an official pure-torch Mamba: alxndrTL's mamba.py (PyPI `mambapy`, its sequential and its
parallel-scan paths). The selective scan on its own, and whole blocks on the same weights: outputs and every
gradient, <= 1e-5 relative (to the largest magnitude of the compared tensor), for each dfnb backend, with
softplus, delta bias, the z gate and D all on. Skips with the reason when mambapy is not installed."""
import pytest, torch
mambapy = pytest.importorskip("mambapy", reason="the reference is not installed: pip install --no-deps mambapy")
from mambapy.mamba import MambaBlock as RefBlock, MambaConfig
from dfnb.mamba import selective_scan, MambaBlock

TOL = 1e-5
rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()

def _ref_block(d_model, d_state, d_conv, expand, pscan):
    cfg = MambaConfig(d_model=d_model, n_layers=1, d_state=d_state, expand_factor=expand, d_conv=d_conv, pscan=pscan)
    return RefBlock(cfg)

@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
@pytest.mark.parametrize("pscan", [False, True])
@pytest.mark.parametrize("shape", [(2, 16, 37, 8), (1, 8, 64, 16), (3, 4, 1, 4)])
def test_selective_scan_equals_mambapy(backend, pscan, shape):
    "The scan alone: mambapy's (B, L, ED) layout with delta already through softplus, against ours (B, ED, L)."
    b, d, L, n = shape
    torch.manual_seed(0)
    blk = _ref_block(d // 2, n, 4, 2, pscan)                              # only its config (d_inner = d) is used
    x, dl = torch.randn(b, L, d), torch.randn(b, L, d) - 1
    A, B, C, D = -torch.rand(d, n) * 3 - 0.1, torch.randn(b, L, n), torch.randn(b, L, n), torch.randn(d)
    ins = [x, dl, A, B, C, D]
    r = [t.clone().requires_grad_() for t in ins]; o = [t.clone().requires_grad_() for t in ins]
    scan = blk.selective_scan if pscan else blk.selective_scan_seq
    y_ref = scan(r[0], torch.nn.functional.softplus(r[1]), *r[2:])
    y = selective_scan(o[0].transpose(1, 2), o[1].transpose(1, 2), o[2], o[3].transpose(1, 2), o[4].transpose(1, 2), o[5],
                       delta_softplus=True, backend=backend).transpose(1, 2)
    assert rel(y, y_ref) <= TOL
    g = torch.randn_like(y)
    y_ref.backward(g); y.backward(g)
    for name, a, c in zip("x delta A B C D".split(), o, r): assert rel(a.grad, c.grad) <= TOL, (name, rel(a.grad, c.grad))

@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
@pytest.mark.parametrize("pscan", [False, True])
def test_mamba_block_equals_mambapy(backend, pscan):
    "Whole blocks on the same weights (the parameter names agree): outputs, input and parameter gradients."
    torch.manual_seed(0)
    ref = _ref_block(24, 8, 4, 2, pscan)
    ours = MambaBlock(24, d_state=8, d_conv=4, expand=2, scan_backend=backend)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert not missing, missing
    x = torch.randn(2, 45, 24)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yo = ref(xr), ours(xo)
    assert rel(yo, yr) <= TOL
    g = torch.randn_like(yr); yr.backward(g); yo.backward(g)
    assert rel(xo.grad, xr.grad) <= TOL
    pr = dict(ref.named_parameters())
    for name, p in ours.named_parameters(): assert rel(p.grad, pr[name].grad) <= TOL, (name, rel(p.grad, pr[name].grad))
