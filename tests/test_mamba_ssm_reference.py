"""dfnb.mamba against the official Mamba code itself: `selective_scan_ref` and `mamba_inner_ref` from
`mamba_ssm/ops/selective_scan_interface.py` (state-spaces/mamba), the pure-torch definitions its CUDA kernels are
tested against. The file imports the CUDA extension, causal-conv1d and a Triton layer norm at its top; only the two
pure-torch functions are used here, so it is loaded alone from the source distribution with stand-in modules for
those imports. `mamba_inner_ref` calls two CUDA ops, which get their torch definitions: `selective_scan_fn` is
the file's own `selective_scan_ref`, and `causal_conv1d_fn` a causal depthwise conv followed by SiLU. Outputs, last state and every gradient, <= 1e-5 relative (to the largest magnitude
of the compared tensor), for each dfnb backend, with `delta_softplus`, `delta_bias`, `z` and `D` on and off (real A).

The loader is `dfnb.mamba.mamba_ssm_reference` (the notebook uses it too): the sdist
(`pip download --no-deps --no-binary :all: mamba_ssm==MAMBA_SSM_VERSION`) and, when einops is not installed, the einops
wheel go to `$DFNB_MAMBA_SSM_CACHE` (default `$DFNB_CACHE/mamba_ssm`, `$DFNB_CACHE` = `~/.cache/dfnb`); it returns
the loaded module or None, and `mamba_ssm_why_absent()` then says why and the tests skip with it.
`DFNB_NO_DOWNLOAD=1` uses the cache only."""
import pytest, torch
from dfnb.mamba import selective_scan, MambaBlock, mamba_ssm_reference as mamba_ssm_ref, mamba_ssm_why_absent as why_absent


TOL = 1e-5
rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.fixture(scope="module")
def ssi():
    mod = mamba_ssm_ref()
    if mod is None: pytest.skip(f"mamba_ssm reference unavailable: {why_absent()}")
    return mod


OPTS = {"all": dict(D=True, z=True, delta_bias=True, delta_softplus=True), "none": dict(),
        "softplus+bias": dict(delta_bias=True, delta_softplus=True), "D+z": dict(D=True, z=True)}


@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
@pytest.mark.parametrize("opts", list(OPTS))
@pytest.mark.parametrize("shape", [(2, 16, 150, 8), (1, 8, 64, 16), (3, 4, 1, 5)])
def test_selective_scan_equals_mamba_ssm(ssi, backend, opts, shape):
    "`selective_scan` against `selective_scan_ref`: output, last state, and the gradients of every input."
    b, d, L, n = shape
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    o = OPTS[opts]
    ins = dict(u=r(b, d, L), delta=r(b, d, L) * 0.5 - 1, A=-torch.rand(d, n, generator=g) * 3 - 0.1,
               B=r(b, n, L), C=r(b, n, L), D=r(d) if o.get("D") else None, z=r(b, d, L) if o.get("z") else None,
               delta_bias=r(d) * 0.3 if o.get("delta_bias") else None)
    if not o.get("delta_softplus"): ins["delta"] = ins["delta"].abs() * 0.3          # a positive step without softplus
    ins = {k: v for k, v in ins.items() if v is not None}
    mine = {k: v.clone().requires_grad_() for k, v in ins.items()}
    theirs = {k: v.clone().requires_grad_() for k, v in ins.items()}
    sp = bool(o.get("delta_softplus"))
    y, last = selective_scan(**mine, delta_softplus=sp, return_last_state=True, backend=backend)
    yr, lr = ssi.selective_scan_ref(**theirs, delta_softplus=sp, return_last_state=True)
    assert rel(y, yr) <= TOL and rel(last, lr) <= TOL, (rel(y, yr), rel(last, lr))
    gy, gl = r(*y.shape), r(*last.shape)
    torch.autograd.backward([y, last], [gy, gl]); torch.autograd.backward([yr, lr], [gy, gl])
    for k in ins: assert rel(mine[k].grad, theirs[k].grad) <= TOL, (k, rel(mine[k].grad, theirs[k].grad))


@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
def test_mamba_block_equals_mamba_inner_ref(ssi, backend):
    "`MambaBlock` against `mamba_inner_ref` on the same weights: output, input and every parameter gradient."
    torch.manual_seed(0)
    ours = MambaBlock(24, d_state=8, d_conv=4, expand=2, scan_backend=backend)
    ref = MambaBlock(24, d_state=8, d_conv=4, expand=2); ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 70, 24)
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yo = ours(xo)
    xz = ref.in_proj(xr).transpose(1, 2)                                     # [b, 2 d_inner, L], the layout it expects
    yr = ssi.mamba_inner_ref(xz, ref.conv1d.weight, ref.conv1d.bias, ref.x_proj.weight, ref.dt_proj.weight,
                             ref.out_proj.weight, ref.out_proj.bias, -torch.exp(ref.A_log.float()), D=ref.D.float(),
                             delta_bias=ref.dt_proj.bias.float(), delta_softplus=True)
    assert rel(yo, yr) <= TOL, rel(yo, yr)
    gy = torch.randn_like(yr); yo.backward(gy); yr.backward(gy)
    assert rel(xo.grad, xr.grad) <= TOL
    pr = dict(ref.named_parameters())
    for name, p in ours.named_parameters(): assert rel(p.grad, pr[name].grad) <= TOL, (name, rel(p.grad, pr[name].grad))

