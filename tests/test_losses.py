"""dfnb.losses against DeepFilterNet's own `df/loss.py` (PyPI `deepfilternet` 0.5.6, pure Python), values and
gradients, relative error <= 1e-6, on random and on speech spectra, several shapes. The reference is test-only:
install it with `pip install --no-deps deepfilternet==0.5.6 loguru` (`.ci/run` does); without it these tests skip.
`df` imports `torchaudio`, whose PyPI wheel does not import beside the CPU torch build: `tests/_stubs` holds an inert
stand-in that is put on the path only if no real torchaudio imports."""
import importlib, importlib.util, sys
from pathlib import Path
import numpy as np, pytest, torch
from dfnb import losses as L
from dfnb.official import official_model_dir, DfNet3Params
from dfnb.stft_erb import DfParams, analysis, synthesis
from dfnb.signals import espeak, pink_noise, mix_at_snr

TOL = 1e-6
WORST = {"value": 0.0, "gradient": 0.0}

@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(f"\ndfnb.losses vs df.loss: worst relative error, values {WORST['value']:.2e}, gradients {WORST['gradient']:.2e}")

@pytest.fixture(scope="module")
def df():
    "DeepFilterNet's `df` package with its config loaded from the official DFN3 config.ini."
    if importlib.util.find_spec("df") is None:
        pytest.skip("DeepFilterNet's reference is not installed: pip install --no-deps deepfilternet==0.5.6 loguru")
    try: importlib.import_module("torchaudio")
    except Exception: sys.path.insert(0, str(Path(__file__).parent / "_stubs")); sys.modules.pop("torchaudio", None)
    try:
        from df.config import config
        config.load(str(official_model_dir() / "config.ini"), allow_reload=True)
        for m in ("df.loss", "df.modules", "libdf"): importlib.import_module(m)
    except ImportError as e: pytest.skip(f"DeepFilterNet's reference does not import here ({e})")
    return sys.modules["df"]

def rel(a, b) -> float:
    a, b = torch.as_tensor(a).detach(), torch.as_tensor(b).detach()
    if a.is_complex(): a, b = torch.view_as_real(a), torch.view_as_real(b)
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / max(b.abs().max().item(), 1e-30))

def same(ours, theirs, inputs):
    "Values and gradients (w.r.t. every input) of two losses agree to TOL relative."
    xs1 = [x.detach().clone().requires_grad_(x.is_floating_point() or x.is_complex()) for x in inputs]
    xs2 = [x.detach().clone().requires_grad_(x.is_floating_point() or x.is_complex()) for x in inputs]
    a, b = ours(*xs1), theirs(*xs2)
    WORST["value"] = max(WORST["value"], rel(a, b))
    assert rel(a, b) <= TOL, (float(a), float(b))
    a.backward(); b.backward()
    for x1, x2 in zip(xs1, xs2):
        if x1.grad is None and x2.grad is None: continue
        WORST["gradient"] = max(WORST["gradient"], rel(x1.grad, x2.grad))
        assert rel(x1.grad, x2.grad) <= TOL, rel(x1.grad, x2.grad)
    return float(a.detach())

def spectra(kind, shape, dtype=torch.complex128, seed=0):
    "(clean, noisy) complex spectra [B, 1, T, F]: random, or eSpeak NG speech in pink noise through dfnb's front end."
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        S = torch.randn(*shape, dtype=dtype, generator=g) * 0.1
        return S, S + torch.randn(*shape, dtype=dtype, generator=g) * 0.05
    B, _, T, F = shape
    s = espeak("Loss functions compare what the model did with what it should have done.")[: T * 480]
    s = np.pad(s, (0, T * 480 - len(s)))
    x, _ = mix_at_snr(s, pink_noise(len(s), seed=seed), 3)
    S, X = (analysis(torch.from_numpy(np.stack([a] * B).astype(np.float32))).unsqueeze(1).to(dtype) for a in (s, x))
    return S, X

KINDS = [("random", (2, 1, 13, 481)), ("random", (1, 1, 7, 481)), ("speech", (2, 1, 60, 481))]

@pytest.mark.parametrize("kind, shape", KINDS)
@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.3), dict(gamma=0.3, factor_under=2, factor_complex=0.1), dict(gamma=0.6, factor_complex=0)])
def test_spectral_loss(df, kind, shape, kw):
    S, X = spectra(kind, shape)
    same(L.SpectralLoss(**kw), df.loss.SpectralLoss(**kw), [X, S])

@pytest.mark.parametrize("kw", [dict(n_ffts=[256, 512]), dict(n_ffts=[256, 512, 1024, 2048], gamma=0.3, factor=500, f_complex=500),
                                dict(n_ffts=[512], gamma=0.3, f_complex=[2.0])])
@pytest.mark.parametrize("n", [4800, 4801 + 77])
def test_multires_spec_loss(df, kw, n):
    g = torch.Generator().manual_seed(1)
    y, s = torch.randn(2, n, dtype=torch.float64, generator=g), torch.randn(2, n, dtype=torch.float64, generator=g)
    same(L.MultiResSpecLoss(**kw), df.loss.MultiResSpecLoss(**kw), [y, s])

@pytest.mark.parametrize("kind, shape", KINDS)
@pytest.mark.parametrize("kw", [dict(mask="iam"), dict(mask="irm", gamma=0.3, f_under=2), dict(mask="wg", powers=[2, 4], factors=[1, 10]),
                                dict(mask="spec", gamma=0.3, gamma_pred=0.3), dict(mask="iam", f_max_idx=20, factor=3.0)])
def test_mask_loss(df, kind, shape, kw):
    import libdf
    S, X = (t.to(torch.complex64) for t in spectra(kind, shape))
    g = torch.rand(*shape[:3], 32, generator=torch.Generator().manual_seed(2)) * 0.98 + 0.01
    ref = df.loss.MaskLoss(libdf.DF(48000, 960, 480, 32, 2), **kw)
    same(lambda gg, s, x: L.MaskLoss(DfParams(), **kw)(gg, s, x), lambda gg, s, x: ref(gg, s, x), [g, S, X])

@pytest.mark.parametrize("kind, shape", KINDS)
def test_mask_spec_loss(df, kind, shape):
    import libdf
    S, X = (t.to(torch.complex64) for t in spectra(kind, shape))
    g = torch.rand(*shape[:3], 32, generator=torch.Generator().manual_seed(3))
    ref = df.loss.MaskSpecLoss(libdf.DF(48000, 960, 480, 32, 2), factor=2.0, gamma=0.3)
    same(lambda gg, s, x: L.MaskSpecLoss(DfParams(), 2.0, 0.3)(gg, s, x),
         lambda gg, s, x: ref(gg, torch.view_as_real(s), torch.view_as_real(x)), [g, S, X])

def test_local_snr_target_and_loss(df):
    for kind, shape in KINDS:
        S, X = (t.to(torch.complex64) for t in spectra(kind, shape))
        ours = L.LocalSnrTarget(DfNet3Params())(S, X - S)
        theirs = df.modules.LocalSnrTarget(ws=20, target_snr_range=[-16, 36])(S, noise=X - S)
        assert ours.shape == theirs.shape and rel(ours, theirs) <= TOL
        pred = torch.rand(shape[0], shape[2], 1) * 50 - 15
        same(L.LSNRLoss(1e-3), df.loss.LocalSnrLoss(1e-3), [pred, ours.detach()])

def test_df_alpha_loss(df):
    a = torch.rand(2, 40, 1, dtype=torch.float64); t = torch.linspace(-20, 20, 80, dtype=torch.float64).reshape(2, 40)
    same(L.DfAlphaLoss(), df.loss.DfAlphaLoss(), [a, t])
    # DeepFilterNet's DfAlphaLoss stores its factor but never applies it; dfnb's does (so a factor means what it says)
    same(lambda x, y: L.DfAlphaLoss(2.0, -5, -12)(x, y) / 2.0, df.loss.DfAlphaLoss(2.0, -5, -12), [a, t])

@pytest.mark.parametrize("n", [4800, 48000 + 13])
def test_sdr_losses(df, n):
    g = torch.Generator().manual_seed(4)
    s = torch.randn(3, n, dtype=torch.float64, generator=g); y = s + 0.3 * torch.randn(3, n, dtype=torch.float64, generator=g)
    same(lambda a, b: L.SiSdr()(a, b).sum(), lambda a, b: df.loss.SiSdr()(a, b).sum(), [y, s])
    same(L.SdrLoss(0.2), df.loss.SdrLoss(0.2), [y, s])
    same(L.SegSdrLoss([480, 960], 0.5, overlap=0.5), df.loss.SegSdrLoss([480, 960], 0.5, overlap=0.5), [y, s])

class _Synth(torch.nn.Module):
    "dfnb's synthesis, the one inverse STFT, handed to DeepFilterNet's Loss as its `istft`."
    def forward(self, spec):
        z = spec if spec.is_complex() else torch.view_as_complex(spec.contiguous())
        return synthesis(z.reshape(-1, *z.shape[-2:]), DfParams()).reshape(*z.shape[:-2], -1)

def _their_loss(df, ini: Path):
    import libdf
    from df.config import config
    config.load(str(ini), allow_reload=True)
    return df.loss.Loss(libdf.DF(48000, 960, 480, 32, 2), istft=_Synth())

LOSS_CFG = {"maskloss": {"factor": "1", "mask": "iam", "gamma": "0.6", "gamma_pred": "0.6", "f_under": "2"},
            "spectralloss": {"factor_magnitude": "1000", "factor_complex": "100", "gamma": "0.3", "factor_under": "1"},
            "multiresspecloss": {"factor": "500", "factor_complex": "500", "gamma": "0.3", "fft_sizes": "256,512,1024"},
            "sdrloss": {"factor": "0.2", "segmental_ws": "480,960"}, "localsnrloss": {"factor": "1e-3"}}

@pytest.mark.parametrize("which", ["shipped", "all_terms"])
def test_loss_from_config_equals_deepfilternets(df, which, tmp_path):
    import configparser
    if which == "shipped": ini = official_model_dir() / "config.ini"
    else:
        cp = configparser.ConfigParser(); cp.read(official_model_dir() / "config.ini")
        for sec, kv in LOSS_CFG.items(): cp[sec] = kv
        ini = tmp_path / "config.ini"
        with open(ini, "w") as f: cp.write(f)
    ours, theirs = L.Loss.from_config(ini), _their_loss(df, ini)
    S, X = (t.to(torch.complex64) for t in spectra("speech", (2, 1, 60, 481)))
    Y = 0.7 * S + 0.3 * X
    m = torch.rand(2, 1, 60, 32, generator=torch.Generator().manual_seed(5)) * 0.9 + 0.05
    lsnr = torch.rand(2, 60, 1, generator=torch.Generator().manual_seed(6)) * 50 - 15
    same(lambda y, mm, ll: ours(S, X, y, mm, ll), lambda y, mm, ll: theirs(S, X, y, mm, ll, torch.zeros(2)), [Y, m, lsnr])
    if which == "shipped": assert set(ours.terms) == {"MultiResSpecLoss", "LocalSnrLoss"}
    else: assert set(ours.terms) == {"MaskLoss", "SpectralLoss", "MultiResSpecLoss", "SdrLoss", "LocalSnrLoss"}

def test_df_alpha_loss_is_wired_when_its_factor_is_set():
    "DeepFilterNet reads [DfAlphaLoss] factor but never applies it; dfnb adds the term when the factor is non-zero."
    loss = L.Loss.from_config({"dfalphaloss": {"factor": "1.0"}, "localsnrloss": {"factor": "0"}})
    S = torch.randn(1, 1, 30, 481, dtype=torch.complex64); X = S + 0.1 * torch.randn_like(S)
    total = loss(S, X, X, torch.rand(1, 1, 30, 32), torch.zeros(1, 30, 1), alpha=torch.rand(1, 30, 1))
    assert set(loss.terms) == {"DfAlphaLoss"} and total > 0

def test_mask_loss_factor_df():
    "The migration guide's MaskLoss(factor_erb=..., factor_df=...): factor_df weighs the DF bins of the final spectrum."
    S = torch.randn(1, 1, 20, 481, dtype=torch.complex64); X = S + 0.1 * torch.randn_like(S); g = torch.rand(1, 1, 20, 32)
    base = L.MaskLoss(factor_erb=0.1)(g, S, X)
    with_df = L.MaskLoss(factor_erb=0.1, factor_df=0.1)(g, S, X, enhanced=X)
    assert torch.isclose(L.MaskLoss(factor=0.1)(g, S, X), base) and with_df > base
    assert torch.isclose(L.MaskLoss(factor_erb=0.1, factor_df=0.1)(g, S, X, enhanced=S), base)   # perfect DF bins cost nothing

def test_bad_input():
    with pytest.raises(ValueError, match="at least one FFT size"): L.MultiResSpecLoss([])
    with pytest.raises(ValueError, match="mask must be one of"): L.MaskLoss(mask="ibm")
    with pytest.raises(ValueError, match="not finite"): L.MaskLoss()(torch.full((1, 1, 2, 32), float("nan")), torch.zeros(1, 1, 2, 481, dtype=torch.complex64), torch.zeros(1, 1, 2, 481, dtype=torch.complex64))
    with pytest.raises(ValueError, match="real view"): L.as_complex(torch.zeros(3, 4))
