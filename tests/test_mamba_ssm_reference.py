"""dfnb.mamba against the official Mamba code itself: `selective_scan_ref` and `mamba_inner_ref` from
`mamba_ssm/ops/selective_scan_interface.py` (state-spaces/mamba), the pure-torch definitions its CUDA kernels are
tested against. The file imports the CUDA extension, causal-conv1d and a Triton layer norm at its top; only the two
pure-torch functions are used here, so it is loaded alone from the source distribution with stand-in modules for
those imports. `mamba_inner_ref` calls two CUDA ops, which get their torch definitions: `selective_scan_fn` is
the file's own `selective_scan_ref`, and `causal_conv1d_fn` a causal depthwise conv followed by SiLU. Outputs, last state and every gradient, <= 1e-5 relative (to the largest magnitude
of the compared tensor), for each dfnb backend, with `delta_softplus`, `delta_bias`, `z` and `D` on and off (real A).

The sdist (`pip download --no-deps --no-binary :all: mamba_ssm==VERSION`) and, when einops is not installed, the
einops wheel go to `$DFNB_MAMBA_SSM_CACHE` (default `$DFNB_CACHE/mamba_ssm`, `$DFNB_CACHE` = `~/.cache/dfnb`).
`mamba_ssm_ref()` returns the loaded module or None; `why_absent()` then says why and the tests skip with it.
`DFNB_NO_DOWNLOAD=1` uses the cache only."""
import importlib.util, os, subprocess, sys, tarfile, types
from contextlib import contextmanager
from pathlib import Path
import pytest, torch
import torch.nn.functional as F
from dfnb.mamba import selective_scan, MambaBlock

VERSION = "2.3.2.post1"
MEMBER = "mamba_ssm/ops/selective_scan_interface.py"
CACHE = Path(os.environ.get("DFNB_MAMBA_SSM_CACHE") or
             Path(os.environ.get("DFNB_CACHE", Path.home() / ".cache" / "dfnb")) / "mamba_ssm")
_state = {"mod": None, "why": None, "done": False}


def _pip_download(*args):
    env = dict(os.environ, MAMBA_SKIP_CUDA_BUILD="TRUE", CAUSAL_CONV1D_SKIP_CUDA_BUILD="TRUE")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), *args],
                       capture_output=True, text=True, timeout=600, env=env)
    if r.returncode: _state["why"] = f"pip download {' '.join(args)} failed: {(r.stderr or r.stdout).strip()[-300:]}"
    return r.returncode == 0


def _source():
    "The text of MEMBER from the cached (or freshly downloaded) sdist, or None."
    dst = CACHE / f"selective_scan_interface_{VERSION}.py"
    if dst.is_file(): return dst
    sdists = lambda: sorted(CACHE.glob(f"mamba_ssm-{VERSION}.tar.gz"))
    if not sdists():
        if os.environ.get("DFNB_NO_DOWNLOAD"): _state["why"] = f"mamba_ssm=={VERSION} sdist not in {CACHE.name}/ (DFNB_NO_DOWNLOAD set)"; return None
        CACHE.mkdir(parents=True, exist_ok=True)
        # --no-build-isolation: pip reads the sdist's metadata with the torch already installed (its setup.py imports torch)
        if not _pip_download("--no-binary", ":all:", "--no-build-isolation", f"mamba_ssm=={VERSION}") or not sdists(): return None
    with tarfile.open(sdists()[0]) as tf:
        m = next((m for m in tf.getmembers() if m.name.endswith(MEMBER)), None)
        if m is None: _state["why"] = f"{MEMBER} not in {sdists()[0].name}"; return None
        text = tf.extractfile(m).read()
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")                  # complete or absent: never a partial module
    tmp.write_bytes(text); os.replace(tmp, dst)
    return dst


def _einops():
    "einops (the file's one pure-Python dependency): installed, or its wheel from the cache put on sys.path."
    if importlib.util.find_spec("einops"): return True
    whl = lambda: sorted(CACHE.glob("einops-*.whl"))
    if not whl() and (os.environ.get("DFNB_NO_DOWNLOAD") or not _pip_download("--only-binary", ":all:", "einops")): return False
    if not whl(): return False
    sys.path.append(str(whl()[-1])); return True


def causal_conv1d_fn(x, weight, bias=None, activation=None):
    "Stand-in for causal-conv1d's CUDA op: depthwise conv over time, left-padded (output t sees inputs <= t), then SiLU."
    y = F.conv1d(x, weight.unsqueeze(1), bias, padding=weight.shape[-1] - 1, groups=x.shape[1])[..., :x.shape[-1]]
    return F.silu(y) if activation in ("silu", "swish") else y


@contextmanager
def _stand_ins():
    "Modules the file imports at its top (CUDA extension, causal-conv1d, Triton layer norm, amp decorators)."
    mods = {n: types.ModuleType(n) for n in ("selective_scan_cuda", "causal_conv1d", "causal_conv1d.cpp_functions", "mamba_ssm",
                                              "mamba_ssm.utils", "mamba_ssm.utils.torch", "mamba_ssm.ops", "mamba_ssm.ops.triton",
                                              "mamba_ssm.ops.triton.layer_norm")}
    mods["causal_conv1d"].causal_conv1d_fn = causal_conv1d_fn
    cf = mods["causal_conv1d.cpp_functions"]
    cf.causal_conv1d_fwd_function = cf.causal_conv1d_bwd_function = cf.causal_conv1d_update_function = None
    mods["mamba_ssm.utils.torch"].custom_fwd = mods["mamba_ssm.utils.torch"].custom_bwd = lambda f=None, **kw: f or (lambda g: g)
    mods["mamba_ssm.ops.triton.layer_norm"]._layer_norm_fwd = None
    saved = {n: sys.modules.get(n) for n in mods}
    sys.modules.update(mods)
    try: yield
    finally:
        for n, m in saved.items():
            if m is None: sys.modules.pop(n, None)
            else: sys.modules[n] = m


def mamba_ssm_ref():
    "mamba_ssm's `selective_scan_interface` module (CUDA imports stood in), or None (`why_absent()` says why)."
    if _state["done"]: return _state["mod"]
    _state["done"] = True
    try:
        src = _source()
        if src is None or not _einops():
            _state["why"] = _state["why"] or "einops unavailable"; return None
        with _stand_ins():
            spec = importlib.util.spec_from_file_location("mamba_ssm_selective_scan_interface_ref", src)
            mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        mod.selective_scan_fn = mod.selective_scan_ref      # what mamba_inner_ref calls: the CUDA op's torch definition
        _state["mod"] = mod
    except Exception as e:
        _state["why"] = f"loading {MEMBER} failed ({type(e).__name__}: {e})"
    return _state["mod"]


def why_absent() -> str: return _state["why"] or ""


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

