"Parity, gradients, streaming and bad-input tests for dfnb.mamba (the selective scan and the Mamba layers)."
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from dfnb.mamba import selective_scan, selective_scan_step, MambaBlock, Mamba

BACKENDS = ("numba", "torch")
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(b, d, L, n, dtype=torch.float32, seed=0, full=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
    u, delta = r(b, d, L), r(b, d, L) * 0.5
    A = -torch.rand(d, n, generator=g, dtype=dtype) * 2 - 0.05
    B, C = r(b, n, L), r(b, n, L)
    if not full: return [u, delta, A, B, C, None, None, None]
    return [u, delta, A, B, C, r(d), r(b, d, L), r(d) * 0.5]


def run(inputs, backend, softplus=True, grad=True, seed=1):
    "Output, last state and the gradients of every given input under a fixed random cotangent."
    xs = [None if t is None else t.detach().clone().requires_grad_(grad) for t in inputs]
    out, last = selective_scan(*xs[:6], z=xs[6], delta_bias=xs[7], delta_softplus=softplus,
                               return_last_state=True, backend=backend)
    if not grad: return out.detach(), last.detach(), []
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(out.shape, generator=g, dtype=out.dtype)
    gl = torch.randn(last.shape, generator=g, dtype=last.dtype)
    torch.autograd.backward([out, last], [go, gl])
    return out.detach(), last.detach(), [None if x is None else x.grad for x in xs]


def rel_err(a, b):
    "max |a - b| relative to the largest |b| (so gradients summed over many terms are judged on their scale)."
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def assert_parity(inputs, backend, tol=1e-5, softplus=True):
    o0, l0, g0 = run(inputs, "ref", softplus)
    o1, l1, g1 = run(inputs, backend, softplus)
    assert o1.dtype == o0.dtype and o1.shape == o0.shape
    assert rel_err(o1, o0) <= tol, f"{backend}: output rel err {rel_err(o1, o0):.2e}"
    assert rel_err(l1, l0) <= tol, f"{backend}: last state rel err {rel_err(l1, l0):.2e}"
    grads = dict(zip(NAMES, g0))
    for name, a, b in zip(NAMES, g1, g0):
        if b is None: continue
        assert a is not None and a.shape == b.shape, name
        if name == "delta_bias" and grads.get("delta") is not None:
            # the gradient of delta_bias is a sum over batch and time of delta's gradient, which can cancel: a float32
            # sum is accurate relative to the sum of the magnitudes of its terms, not to its (possibly small) result
            scale = grads["delta"].abs().sum((0, 2)).max().clamp_min(1e-30)
            err = ((a - b).abs().max() / scale).item()
            assert err <= tol, f"{backend}: grad of {name} error {err:.2e} of the summed magnitudes"
            continue
        assert rel_err(a, b) <= tol, f"{backend}: grad of {name} rel err {rel_err(a, b):.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 6, 100, 8), (1, 4, 1, 4), (3, 5, 67, 1), (1, 3, 130, 16), (2, 2, 64, 3)])
def test_parity_full(backend, shape):
    assert_parity(make_inputs(*shape), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_minimal_args_no_softplus(backend):
    u, delta, A, B, C, *_ = make_inputs(2, 4, 50, 5, full=False)
    assert_parity([u, delta.abs(), A, B, C, None, None, None], backend, softplus=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_long_sequence_float32(backend):
    "L = 6000 in float32: no overflow, no drift (the torch form's log-space decays, the kernel's checkpoints)."
    ins = make_inputs(1, 4, 6000, 4)
    o0, l0, _ = run(ins, "ref", grad=False)
    o1, l1, _ = run(ins, backend, grad=False)
    assert torch.isfinite(o1).all()
    assert rel_err(o1, o0) <= 1e-5 and rel_err(l1, l0) <= 1e-5


def test_strong_decay_and_large_steps():
    "Very negative delta*A (exp underflows to 0) and softplus in its linear regime (delta > 20)."
    u, delta, A, B, C, D, z, db = make_inputs(2, 3, 80, 4)
    delta = delta * 30                  # softplus threshold and exp(-100) regimes
    for be in BACKENDS: assert_parity([u, delta, A * 20, B, C, D, z, db], be)


def test_non_contiguous_inputs():
    u, delta, A, B, C, D, z, db = make_inputs(2, 5, 40, 6)
    tr = lambda t: t.transpose(-1, -2).contiguous().transpose(-1, -2)   # same values, other strides
    ins = [tr(u), delta, tr(A), tr(B), C[..., :].contiguous(), D, tr(z), db]
    assert not ins[0].is_contiguous() and not ins[3].is_contiguous()
    for be in BACKENDS: assert_parity(ins, be)
    # slices with gaps
    big = make_inputs(2, 10, 80, 6)
    sl = [big[0][:, ::2, ::2], big[1][:, ::2, ::2], big[2][::2], big[3][..., ::2], big[4][..., ::2],
          big[5][::2], big[6][:, ::2, ::2], big[7][::2]]
    for be in BACKENDS: assert_parity(sl, be)


@pytest.mark.parametrize("backend", ("ref", "numba", "torch"))
def test_gradcheck_float64(backend):
    ins = [t.requires_grad_() for t in make_inputs(1, 2, 5, 3, dtype=torch.float64)]
    f = lambda *xs: selective_scan(*xs[:6], z=xs[6], delta_bias=xs[7], delta_softplus=True,
                                   return_last_state=True, backend=backend)
    assert torch.autograd.gradcheck(f, ins, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_dtype_policy():
    ins = make_inputs(1, 2, 7, 3, dtype=torch.float64)
    out, last = selective_scan(*ins[:5], return_last_state=True, backend="numba")
    assert out.dtype == torch.float64 and last.dtype == torch.float64
    ins = make_inputs(1, 2, 7, 3)
    out, last = selective_scan(*ins[:5], return_last_state=True)
    assert out.dtype == torch.float32 and last.dtype == torch.float32


def test_auto_is_numba_on_cpu():
    ins = make_inputs(2, 3, 20, 4)
    torch.testing.assert_close(selective_scan(*ins[:5], backend="auto"), selective_scan(*ins[:5], backend="numba"),
                               rtol=0, atol=0)


# ---- bad input -------------------------------------------------------------------------------------------------

def test_bad_inputs():
    u, delta, A, B, C, D, z, db = make_inputs(2, 3, 10, 4)
    cases = [
        (dict(u=u[0]), ValueError, "`u`"),
        (dict(delta=delta[:, :, :5]), ValueError, "`delta`"),
        (dict(A=A[:2]), ValueError, "`A`"),
        (dict(B=B[:, :3]), ValueError, "`B`"),
        (dict(C=C[..., :9]), ValueError, "`C`"),
        (dict(D=D[:2]), ValueError, "`D`"),
        (dict(z=z[:1]), ValueError, "`z`"),
        (dict(delta_bias=db[None]), ValueError, "`delta_bias`"),
        (dict(A=-A), ValueError, "positive"),
        (dict(u=u.half()), TypeError, "float16"),
        (dict(B=B.bfloat16()), TypeError, "bfloat16"),
        (dict(u=u.long()), TypeError, "`u`"),
        (dict(backend="cuda"), ValueError, "`backend`"),
    ]
    base = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=db)
    for change, exc, msg in cases:
        kw = {**base, **change}
        with pytest.raises(exc, match=msg.replace("`", "\\`") if msg.startswith("`") else msg):
            selective_scan(**kw)
    with pytest.raises(ValueError, match="state"):
        selective_scan_step(torch.zeros(2, 3, 5), u[..., 0], delta[..., 0], A, B[..., 0], C[..., 0])
    with pytest.raises(ValueError, match="d_model"):
        MambaBlock(8)(torch.zeros(1, 4, 6))
    with pytest.raises(ValueError, match="norm"):
        Mamba(8, norm="batch")


# ---- streaming ---------------------------------------------------------------------------------------------------

def test_step_equals_scan():
    u, delta, A, B, C, D, z, db = make_inputs(2, 5, 30, 6)
    out, last = selective_scan(u, delta, A, B, C, D, z, db, delta_softplus=True, return_last_state=True, backend="ref")
    s = torch.zeros(2, 5, 6)
    ys = []
    for t in range(30):
        y, s = selective_scan_step(s, u[..., t], delta[..., t], A, B[..., t], C[..., t], D, z[..., t], db, True)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, -1), out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s, last, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [MambaBlock, Mamba])
@pytest.mark.parametrize("cfg", [dict(), dict(d_state=1, d_conv=1, expand=1), dict(d_state=5, d_conv=3, bias=True)])
def test_block_step_over_sequence_equals_forward(cls, cfg):
    torch.manual_seed(0)
    m = cls(12, **cfg)
    x = torch.randn(3, 25, 12)
    with torch.no_grad():
        y = m(x)
        state = m.init_state(3)
        ys = []
        for t in range(x.shape[1]):
            yt, state = m.step(x[:, t], state)
            ys.append(yt)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=1e-5, atol=1e-5)


def test_step_is_pure():
    m = Mamba(8, d_state=4)
    state = m.init_state(2)
    before = [t.clone() for t in state]
    x = torch.randn(2, 8)
    m.step(x, state)
    for a, b in zip(state, before): assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_block_backends_agree_with_ref(backend):
    torch.manual_seed(0)
    m = Mamba(16, d_state=8, scan_backend="ref")
    x = torch.randn(2, 40, 16, requires_grad=True)
    y0 = m(x); y0.square().sum().backward()
    g0 = [p.grad.clone() for p in m.parameters()] + [x.grad.clone()]
    m.zero_grad(); x.grad = None
    m.mixer.scan_backend = backend
    y1 = m(x); y1.square().sum().backward()
    g1 = [p.grad.clone() for p in m.parameters()] + [x.grad.clone()]
    assert rel_err(y1, y0) <= 1e-5
    for a, b in zip(g1, g0): assert rel_err(a, b) <= 1e-5


def test_block_init_follows_mamba():
    m = MambaBlock(64, d_state=16, expand=2)
    assert m.d_inner == 128 and m.dt_rank == 4
    assert m.x_proj.out_features == 4 + 2 * 16 and m.conv1d.padding == (3,)
    torch.testing.assert_close(-torch.exp(m.A_log), -torch.arange(1., 17.).repeat(128, 1))
    dt = torch.nn.functional.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-9 and dt.max() <= 0.1 + 1e-6
    assert torch.equal(m.D.detach(), torch.ones(128))
    assert m.dt_proj.weight.abs().max() <= 4 ** -0.5


def test_onnx_export_of_step(tmp_path):
    pytest.importorskip("onnx"); ort = pytest.importorskip("onnxruntime")
    m = Mamba(8, d_state=4).eval()
    conv, ssm = m.init_state(1)
    x = torch.randn(1, 8)

    class Step(torch.nn.Module):
        def __init__(s): super().__init__(); s.m = m
        def forward(s, x, conv, ssm):
            y, (c, h) = s.m.step(x, (conv, ssm)); return y, c, h

    p = tmp_path / "step.onnx"
    torch.onnx.export(Step(), (x, conv, ssm), str(p), input_names=["x", "conv", "ssm"],
                      output_names=["y", "conv_out", "ssm_out"], dynamo=False)
    sess = ort.InferenceSession(str(p))
    st_ = dict(conv=conv.numpy(), ssm=ssm.numpy())
    xs = torch.randn(6, 1, 8)
    ref = m(xs.transpose(0, 1)).detach()[0]
    for t in range(6):
        y, c, h = sess.run(None, dict(x=xs[t].numpy(), **st_))
        st_ = dict(conv=c, ssm=h)
        np.testing.assert_allclose(y[0], ref[t].numpy(), rtol=1e-4, atol=1e-5)


# ---- property tests ------------------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=st.integers(1, 3), d=st.integers(1, 5), L=st.integers(1, 140), n=st.integers(1, 9), seed=st.integers(0, 10**6),
       backend=st.sampled_from(BACKENDS))
def test_property_parity(b, d, L, n, seed, backend):
    assert_parity(make_inputs(b, d, L, n, seed=seed), backend)


@settings(max_examples=15, deadline=None)
@given(L=st.integers(2, 60), cut=st.integers(1, 59), seed=st.integers(0, 10**6))
def test_property_split_sequence(L, cut, seed):
    "Scanning [0, cut) and then [cut, L) from the carried state equals one scan over [0, L) (checked via step)."
    cut = min(cut, L - 1)
    u, delta, A, B, C, *_ = make_inputs(1, 3, L, 4, seed=seed, full=False)
    out, last = selective_scan(u, delta.abs(), A, B, C, return_last_state=True)
    _, mid = selective_scan(u[..., :cut], delta.abs()[..., :cut], A, B[..., :cut], C[..., :cut], return_last_state=True)
    s = mid
    for t in range(cut, L):
        y, s = selective_scan_step(s, u[..., t], delta.abs()[..., t], A, B[..., t], C[..., t])
        torch.testing.assert_close(y, out[..., t], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s, last, rtol=1e-5, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 10**6))
def test_property_linearity_in_u(scale, seed):
    "Without gate and softplus the scan is linear in u (for fixed delta, B, C)."
    u, delta, A, B, C, D, *_ = make_inputs(2, 3, 33, 5, seed=seed)
    delta = delta.abs()
    y1 = selective_scan(u * scale, delta, A, B, C, D)
    y0 = selective_scan(u, delta, A, B, C, D)
    torch.testing.assert_close(y1, y0 * scale, rtol=1e-4, atol=1e-5 * scale)
